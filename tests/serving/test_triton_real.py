"""A gwinfer-exported repository in a REAL NVIDIA Triton Inference Server, driven by the real tritonclient.

The tiny model of the serving tests is exported with ``backend="python"`` (``model.py`` running
``model.onnx`` with onnxruntime in Triton's Python backend: the ``tritonserver`` bundled with
nvidia-pytriton has no onnxruntime backend) and served by ``tritonserver`` (:mod:`gwinfer.serving.triton`).
Its metadata and outputs over HTTP and gRPC must equal those of ``gwinfer serve`` on the native export of
the same model and of onnxruntime in-process.

Skipped (with the reason) when no Triton is found -- ``$GWINFER_TRITON_ENV``, ``.triton-env`` (``make
triton-env``), ``/work/tritonenv``, ``tritonserver`` on PATH -- or when it cannot run here (missing
library, numpy>=2 in its venv, the server not coming up: the log's last errors are in the reason). A
model that the running server fails to load is a failure, not a skip.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from support import started_triton, tiny_point_model, usable_triton

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
grpcclient = pytest.importorskip("tritonclient.grpc")
httpclient = pytest.importorskip("tritonclient.http")

from tritonclient.utils import InferenceServerException  # noqa: E402

from gwinfer.models import save_model  # noqa: E402
from gwinfer.serving.export.model import export_model  # noqa: E402
from gwinfer.serving.repository.config import read_config  # noqa: E402
from gwinfer.serving.server.run import Server  # noqa: E402
from gwinfer.serving.triton.launcher import TritonUnavailable, check_install, find_triton  # noqa: E402

pytestmark = pytest.mark.triton

T = 64
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    install = usable_triton()
    root = tmp_path_factory.mktemp("triton-real")
    path = root / "tiny" / "model.pt"
    save_model(
        path,
        tiny_point_model(T, seed=0),
        metadata={"time_grid": {"t_start": 0.0, "t_end": 126.0, "dt": 2.0}, "approximant": "IMRPhenomT"},
    )
    native, python = root / "native", root / "python"
    export_model(path, native)  # tiny: platform onnxruntime_onnx
    export_model(path, python, backend="python")  # tiny: backend python, model.py + model.onnx
    # a long batching window and a small max batch: concurrent requests are certainly merged
    export_model(path, python, name="tiny-batch", backend="python", max_batch_size=8, max_queue_delay_us=300_000)

    triton = started_triton(python, install, strict=False)
    gw = Server(native, grpc_port=0).start()
    gw_py = Server(python, grpc_port=0).start()  # gwinfer serves the python-backend export's model.onnx too
    clients = {
        "http": httpclient.InferenceServerClient(triton.url),
        "grpc": grpcclient.InferenceServerClient(triton.grpc_url),
        "gw-http": httpclient.InferenceServerClient(gw.url),
        "gw-grpc": grpcclient.InferenceServerClient(gw.grpc_url),
        "gwpy-http": httpclient.InferenceServerClient(gw_py.url),
    }
    session = ort.InferenceSession(str(python / "tiny" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    try:
        yield {"triton": triton, "clients": clients, "session": session, "native": native, "python": python}
    finally:
        for c in clients.values():
            c.close()
        gw_py.stop()
        gw.stop()
        triton.stop()


def waveforms(batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 2, T)).astype(np.float32)


def infer(client, x: np.ndarray, model: str = "tiny") -> np.ndarray:
    module = grpcclient if isinstance(client, grpcclient.InferenceServerClient) else httpclient
    inp = module.InferInput("waveform", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(model, [inp], outputs=[module.InferRequestedOutput("theta")]).as_numpy("theta")


def test_models_loaded(setup):
    c = setup["clients"]["http"]
    index = {e["name"]: e for e in c.get_model_repository_index()}
    for name in ("tiny", "tiny-batch"):
        assert index[name].get("state") == "READY", f"Triton did not load {name}: {index[name]}"
    assert c.is_server_ready() and setup["clients"]["grpc"].is_server_ready()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_metadata_and_config(setup, protocol):
    c, gw = setup["clients"][protocol], setup["clients"]["gw-" + protocol]
    if protocol == "http":
        meta, gw_meta = c.get_model_metadata("tiny"), gw.get_model_metadata("tiny")
        cfg = c.get_model_config("tiny")
    else:
        meta, gw_meta = c.get_model_metadata("tiny", as_json=True), gw.get_model_metadata("tiny", as_json=True)
        cfg = c.get_model_config("tiny", as_json=True)["config"]
    assert meta["name"] == "tiny" and meta["versions"] == ["1"] and meta["platform"] == "python"
    assert gw_meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == gw_meta["inputs"] and meta["outputs"] == gw_meta["outputs"]
    shape = [-1, 2, T] if protocol == "http" else ["-1", "2", str(T)]  # protobuf JSON gives int64 as strings
    assert meta["inputs"] == [{"name": "waveform", "datatype": "FP32", "shape": shape}]
    # Triton read the generated config.pbtxt as written
    ours = read_config(setup["python"] / "tiny")
    assert cfg["backend"] == ours["backend"] == "python" and not cfg.get("platform")
    assert int(cfg["max_batch_size"]) == ours["max_batch_size"] == 64
    assert [(i["name"], i["data_type"], [int(d) for d in i["dims"]]) for i in cfg["input"]] == [
        ("waveform", "TYPE_FP32", [2, T])
    ]
    assert [(o["name"], o["data_type"], [int(d) for d in o["dims"]]) for o in cfg["output"]] == [
        ("theta", "TYPE_FP32", [3])
    ]
    assert int(cfg["dynamic_batching"]["max_queue_delay_microseconds"]) == 2000
    assert [(g["kind"], int(g["count"])) for g in cfg["instance_group"]] == [("KIND_CPU", 1)]


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_outputs_equal_gwinfer_and_onnxruntime(setup, protocol, batch):
    x = waveforms(batch, seed=100 + batch)
    got = infer(setup["clients"][protocol], x)
    assert got.dtype == np.float32 and got.shape == (batch, 3) and np.all(np.isfinite(got))
    ref = setup["session"].run(None, {"waveform": x})[0]
    np.testing.assert_allclose(got, ref, **TOL)
    np.testing.assert_allclose(got, infer(setup["clients"]["gw-" + protocol], x), **TOL)  # gwinfer serve, native
    np.testing.assert_allclose(got, infer(setup["clients"]["gwpy-http"], x), **TOL)  # gwinfer serve, python export


def test_dynamic_batching_merges_requests(setup):
    """Concurrent requests of different sizes reach model.py's execute together and are split back right."""
    c = setup["clients"]["http"]
    before = c.get_inference_statistics("tiny-batch")["model_stats"][0]
    sizes = [1, 3, 2, 1, 2, 1]
    xs = [waveforms(b, seed=200 + i) for i, b in enumerate(sizes)]
    out: dict[int, np.ndarray] = {}

    def send(i: int) -> None:
        client = httpclient.InferenceServerClient(setup["triton"].url)
        try:
            out[i] = infer(client, xs[i], model="tiny-batch")
        finally:
            client.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(sizes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for i, x in enumerate(xs):
        np.testing.assert_allclose(out[i], setup["session"].run(None, {"waveform": x})[0], **TOL)
    after = c.get_inference_statistics("tiny-batch")["model_stats"][0]
    items = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert items == sum(sizes)
    assert executions < len(sizes), f"{len(sizes)} concurrent requests ran in {executions} executions"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_requests_are_refused_and_server_goes_on(setup, protocol):
    c = setup["clients"][protocol]
    with pytest.raises(InferenceServerException, match="shape"):
        infer(c, waveforms(2, seed=1)[:, :, : T - 1])
    with pytest.raises(InferenceServerException):
        infer(c, waveforms(65, seed=1))  # above max_batch_size
    x = waveforms(1, seed=3)
    np.testing.assert_allclose(infer(c, x), setup["session"].run(None, {"waveform": x})[0], **TOL)


# --- the helpers, without a Triton (fake installs) -------------------------------------------------------
def test_lookup_and_checks_without_triton(tmp_path, monkeypatch):
    from gwinfer.serving.triton import launcher as tr

    monkeypatch.setenv(tr.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(TritonUnavailable, match="is not a folder"):
        find_triton()
    monkeypatch.setenv(tr.ENV_VAR, str(tmp_path))
    with pytest.raises(TritonUnavailable, match="neither bin/tritonserver nor nvidia-pytriton"):
        find_triton()
    monkeypatch.delenv(tr.ENV_VAR)
    monkeypatch.setattr(tr, "DEFAULT_ENVS", (tmp_path / "none",))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TritonUnavailable, match="no Triton found"):
        find_triton()
    # a plain install folder (bin/tritonserver + backends/), e.g. /opt/tritonserver
    (tmp_path / "opt" / "bin").mkdir(parents=True)
    (tmp_path / "opt" / "backends" / "onnxruntime").mkdir(parents=True)
    (tmp_path / "opt" / "bin" / "tritonserver").write_text("")
    plain = find_triton(tmp_path / "opt")
    assert plain.binary == tmp_path / "opt" / "bin" / "tritonserver" and plain.stub is None
    cmd = tr.triton_command(plain, tmp_path, 1234, 1235, None, plain.backends)
    assert f"--model-repository={tmp_path}" in cmd and "--http-port=1234" in cmd and "--grpc-port=1235" in cmd
    assert "--allow-metrics=false" in cmd and f"--backend-directory={plain.backends}" in cmd
    assert "--http-address=127.0.0.1" in cmd and not any(c.startswith("--backend-config") for c in cmd)

    # a pytriton-like venv: numpy 2 and a missing onnxruntime are refused before anything starts
    tree = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "pytriton" / "tritonserver"
    for d in ("bin", "backends/python", "python_backend_stubs/3.11"):
        (tree / d).mkdir(parents=True)
    for f in (
        "bin/tritonserver",
        "backends/python/libtriton_python.so",
        "python_backend_stubs/3.11/triton_python_backend_stub",
    ):
        (tree / f).write_text("")
    fake = tr.TritonInstall(
        tree / "bin" / "tritonserver",
        "test",
        env=tmp_path / "venv",
        backends=tree / "backends",
        stub=tree / "python_backend_stubs/3.11/triton_python_backend_stub",
        pytriton=True,
        python={"version": "3.11", "numpy": "2.1.0", "onnxruntime": "1.20.0"},
    )
    with pytest.raises(TritonUnavailable, match="numpy<2"):
        check_install(fake)
    fake.python.update(numpy="1.26.4", onnxruntime=None)
    repo = tmp_path / "repo" / "m"
    repo.mkdir(parents=True)
    (repo / "config.pbtxt").write_text('name: "m"\nbackend: "python"\n')
    with pytest.raises(TritonUnavailable, match="onnxruntime is not importable"):
        check_install(fake, repo.parent)
    # the backend folder handed to tritonserver: the stub next to libtriton_python.so
    backends = tr.prepare_backends(fake, tmp_path / "work")
    assert sorted(p.name for p in (backends / "python").iterdir()) == [
        "libtriton_python.so",
        "triton_python_backend_stub",
    ]
    assert (backends / "python" / "triton_python_backend_stub").resolve() == fake.stub
    plain = tr.TritonInstall(fake.binary, "test", library_path=[tmp_path / "lib"], bin_path=[tmp_path / "bin"])
    env = plain.environment({"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/x"})
    assert env["PATH"] == f"{tmp_path / 'bin'}:/usr/bin" and env["LD_LIBRARY_PATH"] == f"{tmp_path / 'lib'}:/x"
