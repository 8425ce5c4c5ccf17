"""Streaming entries in a REAL NVIDIA Triton (Python backend, sequence batching) next to gwinfer serve.

``export_model(..., stream_stride=S, backend="python")`` writes ``model.py`` =
:mod:`gwinfer.serving.triton.stream_model` (per-correlation-id snapshots keyed on the sequence batcher's
START / END / CORRID control tensors). The same sequences go through Triton and through gwinfer serve
(native export); both must equal onnxruntime in-process on the full windows cut from the stream (the
plain, non-streaming export). Skipped with the reason when no Triton can run here (as test_triton_real).
"""

from __future__ import annotations

import numpy as np
import pytest
from support import started_triton, tiny_point_model, usable_triton

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")
httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")

from tritonclient.utils import InferenceServerException  # noqa: E402

from gwinfer.models import (  # noqa: E402
    build_estimator,
    save_estimator,
    save_model,  # noqa: E402
)
from gwinfer.serving.export.model import export_model  # noqa: E402
from gwinfer.serving.export.posterior import run_graph  # noqa: E402
from gwinfer.serving.repository.config import read_config  # noqa: E402
from gwinfer.serving.runtime.sequences import snapshot_state, snapshotter  # noqa: E402
from gwinfer.serving.server.run import Server  # noqa: E402
from gwinfer.serving.triton import stream_model as tsm  # noqa: E402

pytestmark = pytest.mark.triton

T, S = 64, 16
D = 3
TOL = dict(rtol=1e-5, atol=1e-5)  # Triton's venv has its own onnxruntime build


def test_standalone_snapshotter_is_gwinfers():
    """The numpy copy inside model.py gives gwinfer.serving.runtime.sequences' windows and ready flags."""
    rng = np.random.default_rng(0)
    for kernel, stride in ((64, 16), (10, 3), (8, 8)):
        a, b = snapshot_state(2, kernel, stride), tsm.snapshot_state(2, kernel, stride)
        for _ in range(6):
            u = rng.standard_normal((2, stride)).astype(np.float32)
            wa, a = snapshotter(u, a)
            wb, b, ready = tsm.snapshotter(u, b, kernel, stride)
            np.testing.assert_array_equal(wa, wb)
            assert ready == a.ready and b[1] == a.filled
    with pytest.raises(ValueError, match="expected"):
        tsm.snapshotter(np.zeros((2, 5), np.float32), tsm.snapshot_state(2, 10, 4), 10, 4)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    install = usable_triton()
    root = tmp_path_factory.mktemp("triton-stream")
    point = save_model(
        root / "tiny" / "model.pt",
        tiny_point_model(T, seed=1),
        metadata={"time_grid": {"t_start": 0.0, "t_end": 126.0, "dt": 2.0}},
    )
    torch.manual_seed(0)
    est = build_estimator(
        {
            "kind": "iaf",
            "config": {
                "embedding": {"kind": "svd", "context_dim": 8, "hidden": [16], "components": 8},
                "transforms": 2,
                "hidden": [16, 16],
            },
        },
        D,
        (2, T),
    )
    est.fit_standardization(
        torch.tensor([30.0, 25.0, 800.0]) + torch.tensor([5.0, 4.0, 200.0]) * torch.randn(256, D),
        3.0 * torch.randn(256, 2, T),
    )
    post = save_estimator(root / "post" / "model.pt", est.eval(), metadata={"names": ["m1", "m2", "dl"]})
    native, python = root / "native", root / "python"
    plain = export_model(point, native)  # offline reference graph
    plain_post = export_model(post, native)
    for repo, backend in ((native, "native"), (python, "python")):
        export_model(point, repo, stream_stride=S, backend=backend)  # tiny-stream
        export_model(post, repo, stream_stride=S, backend=backend)  # post-stream
    triton = started_triton(python, install, strict=False)
    gw = Server(native, grpc_port=0).start()
    clients = {
        "triton": httpclient.InferenceServerClient(triton.url),
        "triton-grpc": grpcclient.InferenceServerClient(triton.grpc_url),
        "gw": httpclient.InferenceServerClient(gw.url),
        "gw-grpc": grpcclient.InferenceServerClient(gw.grpc_url),
    }
    sess = ort.InferenceSession(str(plain / "model.onnx"), providers=["CPUExecutionProvider"])
    try:
        yield {"clients": clients, "session": sess, "plain_post": plain_post / "model.onnx", "python": python}
    finally:
        for c in clients.values():
            c.close()
        gw.stop()
        triton.stop()


def step(client, model: str, inputs: dict[str, np.ndarray], seq: int, start: bool = False, end: bool = False):
    module = grpcclient if isinstance(client, grpcclient.InferenceServerClient) else httpclient
    tensors = []
    for name, a in inputs.items():
        t = module.InferInput(name, list(a.shape), "FP32")
        t.set_data_from_numpy(np.ascontiguousarray(a))
        tensors.append(t)
    return client.infer(model, tensors, sequence_id=seq, sequence_start=start, sequence_end=end)


def offline(sess, stream: np.ndarray, end: int) -> np.ndarray:
    return sess.run(None, {"waveform": stream[None, :, end - T : end]})[0]


def test_loaded_with_sequence_controls(setup):
    index = {e["name"]: e for e in setup["clients"]["triton"].get_model_repository_index()}
    for name in ("tiny-stream", "post-stream"):
        assert index[name].get("state") == "READY", f"Triton did not load {name}: {index[name]}"
    cfg = setup["clients"]["triton"].get_model_config("tiny-stream")
    ours = read_config(setup["python"] / "tiny-stream")
    assert cfg["backend"] == "python" and not cfg["sequence_batching"].get("state")  # no implicit state
    kinds = {c["name"]: c["control"][0]["kind"] for c in cfg["sequence_batching"]["control_input"]}
    assert kinds == {
        "START": "CONTROL_SEQUENCE_START",
        "END": "CONTROL_SEQUENCE_END",
        "CORRID": "CONTROL_SEQUENCE_CORRID",
    }
    assert (
        int(cfg["sequence_batching"]["oldest"]["max_candidate_sequences"])
        == ours["sequence_batching"]["oldest"]["max_candidate_sequences"]
    )


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_two_interleaved_sequences_equal_gwinfer_and_offline(setup, protocol):
    suffix = "-grpc" if protocol == "grpc" else ""
    tri, gw = setup["clients"]["triton" + suffix], setup["clients"]["gw" + suffix]
    rng = np.random.default_rng(7 if protocol == "http" else 8)
    streams = {
        101: rng.standard_normal((2, S * 9)).astype(np.float32),
        202: (0.5 * rng.standard_normal((2, S * 9)) + 1.0).astype(np.float32),
    }
    n = 9
    for i in range(n):  # requests of the two sequences alternate
        for seq, stream in streams.items():
            upd = stream[None, :, i * S : (i + 1) * S]
            a = step(tri, "tiny-stream", {"update": upd}, seq, start=i == 0, end=i == n - 1)
            b = step(gw, "tiny-stream", {"update": upd}, seq, start=i == 0, end=i == n - 1)
            end = (i + 1) * S
            assert bool(a.as_numpy("ready")[0, 0]) == bool(b.as_numpy("ready")[0, 0]) == (end >= T)
            if end >= T:
                ref = offline(setup["session"], stream, end)
                np.testing.assert_allclose(a.as_numpy("theta"), ref, **TOL)
                np.testing.assert_allclose(a.as_numpy("theta"), b.as_numpy("theta"), **TOL)


def test_posterior_stream_equals_gwinfer_and_offline(setup):
    rng = np.random.default_rng(3)
    stream = (3.0 * rng.standard_normal((2, S * 6))).astype(np.float32)
    for i in range(6):
        z = rng.standard_normal((1, 40, D)).astype(np.float32)
        inputs = {"update": stream[None, :, i * S : (i + 1) * S], "noise": z}
        a = step(setup["clients"]["triton"], "post-stream", inputs, 55, start=i == 0)
        b = step(setup["clients"]["gw"], "post-stream", inputs, 55, start=i == 0)
        end = (i + 1) * S
        assert bool(a.as_numpy("ready")[0, 0]) == (end >= T)
        if end >= T:
            ref = run_graph(setup["plain_post"], stream[None, :, end - T : end], z)
            for k, name in enumerate(("samples", "log_prob")):
                np.testing.assert_allclose(a.as_numpy(name), ref[k], rtol=1e-5, atol=1e-4)
                np.testing.assert_allclose(a.as_numpy(name), b.as_numpy(name), rtol=1e-5, atol=1e-4)


def test_bad_stream_requests_are_refused_and_state_kept(setup):
    c = setup["clients"]["triton"]
    rng = np.random.default_rng(9)
    stream = rng.standard_normal((2, S * 5)).astype(np.float32)
    with pytest.raises(InferenceServerException, match="not live|START"):
        step(c, "tiny-stream", {"update": stream[None, :, :S]}, 77)  # never started
    step(c, "tiny-stream", {"update": stream[None, :, :S]}, 77, start=True)
    with pytest.raises(InferenceServerException, match="shape"):
        step(c, "tiny-stream", {"update": stream[None, :, : S - 1]}, 77)
    for i in range(1, 5):  # the failed request changed nothing: the windows are still the stream's
        r = step(c, "tiny-stream", {"update": stream[None, :, i * S : (i + 1) * S]}, 77, end=i == 4)
    np.testing.assert_allclose(r.as_numpy("theta"), offline(setup["session"], stream, 5 * S), **TOL)
    with pytest.raises(InferenceServerException, match="not live|START"):
        step(c, "tiny-stream", {"update": stream[None, :, :S]}, 77)  # ended
