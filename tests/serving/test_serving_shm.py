"""The system shared-memory extension of the gwinfer server (127.0.0.1, free ports), driven by the real
tritonclient.http / tritonclient.grpc clients and tritonclient.utils.shared_memory regions."""

from __future__ import annotations

import os

import numpy as np
import pytest
from support import tiny_point_model

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
grpcclient = pytest.importorskip("tritonclient.grpc")
httpclient = pytest.importorskip("tritonclient.http")
shm = pytest.importorskip("tritonclient.utils.shared_memory")

if not os.path.isdir("/dev/shm"):
    pytest.skip("no /dev/shm", allow_module_level=True)

from tritonclient.utils import InferenceServerException  # noqa: E402

from gwinfer.models import save_model  # noqa: E402
from gwinfer.serving.export.model import export_model  # noqa: E402
from gwinfer.serving.server.run import Server  # noqa: E402

T = 64
BATCH = 6
IN_BYTES = BATCH * 2 * T * 4  # float32 waveform (batch, 2, T)
OUT_BYTES = BATCH * 3 * 4  # float32 theta (batch, 3)
PREFIX = f"/gwinfer_test_{os.getpid()}"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-shm")
    path = root / "tiny" / "model.pt"
    save_model(
        path,
        tiny_point_model(T, seed=0),
        metadata={"time_grid": {"t_start": 0.0, "t_end": 126.0, "dt": 2.0}, "approximant": "IMRPhenomT"},
    )
    repo = root / "repo"
    export_model(path, repo, max_queue_delay_us=0)
    session = ort.InferenceSession(str(repo / "tiny" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    # one input region holding two tensors (at 0 and IN_BYTES), one output region
    h_in = shm.create_shared_memory_region("in", PREFIX + "_in", 2 * IN_BYTES)
    h_out = shm.create_shared_memory_region("out", PREFIX + "_out", 2 * OUT_BYTES)
    server = Server(repo, grpc_port=0).start()
    http = httpclient.InferenceServerClient(server.url)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    http.register_system_shared_memory("in", PREFIX + "_in", 2 * IN_BYTES)
    grpc.register_system_shared_memory("out", PREFIX + "_out", 2 * OUT_BYTES)  # the registry is shared
    yield {"server": server, "http": http, "grpc": grpc, "session": session, "h_in": h_in, "h_out": h_out}
    http.close()
    grpc.close()
    server.stop()
    for h in (h_in, h_out):
        shm.destroy_shared_memory_region(h)


def waveforms(batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 2, T)).astype(np.float32)


def binary_http(setup, x: np.ndarray) -> np.ndarray:
    inp = httpclient.InferInput("waveform", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    return setup["http"].infer("tiny", [inp]).as_numpy("theta")


def http_shm(
    setup,
    shape: list[int],
    in_size: int,
    in_offset: int = 0,
    out: tuple | None = ("out", OUT_BYTES, 0),
    region: str = "in",
):
    inp = httpclient.InferInput("waveform", shape, "FP32")
    inp.set_shared_memory(region, in_size, in_offset)
    outs = [httpclient.InferRequestedOutput("theta", binary_data=True)]
    if out is not None:
        outs[0].set_shared_memory(*out)
    return setup["http"].infer("tiny", [inp], outputs=outs)


def grpc_shm(
    setup,
    shape: list[int],
    in_size: int,
    in_offset: int = 0,
    out: tuple | None = ("out", OUT_BYTES, 0),
    region: str = "in",
):
    inp = grpcclient.InferInput("waveform", shape, "FP32")
    inp.set_shared_memory(region, in_size, in_offset)
    outs = [grpcclient.InferRequestedOutput("theta")]
    if out is not None:
        outs[0].set_shared_memory(*out)
    return setup["grpc"].infer("tiny", [inp], outputs=outs)


def read_out(setup, offset: int = 0) -> np.ndarray:
    return shm.get_contents_as_numpy(setup["h_out"], np.float32, [BATCH, 3], offset=offset)


def test_metadata_and_status(setup):
    assert "system_shared_memory" in setup["http"].get_server_metadata()["extensions"]
    assert "system_shared_memory" in setup["grpc"].get_server_metadata().extensions
    status = setup["http"].get_system_shared_memory_status()
    assert status == [
        {"name": "in", "key": PREFIX + "_in", "offset": 0, "byte_size": 2 * IN_BYTES},
        {"name": "out", "key": PREFIX + "_out", "offset": 0, "byte_size": 2 * OUT_BYTES},
    ]
    one = setup["grpc"].get_system_shared_memory_status("in").regions
    assert list(one) == ["in"] and one["in"].key == PREFIX + "_in" and one["in"].byte_size == 2 * IN_BYTES
    assert setup["http"].get_system_shared_memory_status("out") == [status[1]]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_shm_inputs_and_outputs_equal_binary_path(setup, protocol):
    x0, x1 = waveforms(BATCH, 1), waveforms(BATCH, 2)
    shm.set_shared_memory_region(setup["h_in"], [x0, x1])  # x1 at offset IN_BYTES
    ref0, ref1 = binary_http(setup, x0), binary_http(setup, x1)
    np.testing.assert_allclose(ref0, setup["session"].run(None, {"waveform": x0})[0], rtol=1e-6, atol=1e-6)
    run = http_shm if protocol == "http" else grpc_shm
    # input and output in shared memory
    result = run(setup, [BATCH, 2, T], IN_BYTES)
    np.testing.assert_array_equal(read_out(setup), ref0)
    # second tensor of the region, written at an output offset
    result = run(setup, [BATCH, 2, T], IN_BYTES, in_offset=IN_BYTES, out=("out", OUT_BYTES, OUT_BYTES))
    np.testing.assert_array_equal(read_out(setup, OUT_BYTES), ref1)
    if protocol == "http":
        (entry,) = result.get_response()["outputs"]
        assert (
            entry["parameters"]
            == {"shared_memory_region": "out", "shared_memory_byte_size": OUT_BYTES, "shared_memory_offset": OUT_BYTES}
            and "data" not in entry
        )
    else:
        out = result.get_response().outputs[0]
        assert out.parameters["shared_memory_region"].string_param == "out" and list(out.shape) == [BATCH, 3]
    # shared-memory input, output in the response; a smaller batch from the start of the region
    result = run(setup, [2, 2, T], 2 * 2 * T * 4, out=None)
    np.testing.assert_array_equal(result.as_numpy("theta"), binary_http(setup, x0[:2]))
    # the client rewrites its region: the next answer follows
    shm.set_shared_memory_region(setup["h_in"], [x1])
    run(setup, [BATCH, 2, T], IN_BYTES)
    np.testing.assert_array_equal(read_out(setup), ref1)


def expect(fn, *args, status: str, match: str, **kwargs) -> None:
    with pytest.raises(InferenceServerException) as err:
        fn(*args, **kwargs)
    assert err.value.status() == status, err.value
    assert match in err.value.message(), err.value.message()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_shm_requests_are_refused_and_server_keeps_serving(setup, protocol):
    status = "400" if protocol == "http" else "StatusCode.INVALID_ARGUMENT"
    run = http_shm if protocol == "http" else grpc_shm
    client = setup[protocol]
    x = waveforms(BATCH, 3)
    ref = binary_http(setup, x)
    shape = [BATCH, 2, T]
    cases = [
        (lambda: run(setup, shape, IN_BYTES, region="nope"), "unknown shared-memory region 'nope'"),
        (lambda: run(setup, shape, IN_BYTES, in_offset=IN_BYTES + 4), "exceeds region 'in'"),
        (lambda: run(setup, shape, IN_BYTES - 4), f"shared_memory_byte_size {IN_BYTES - 4} != "),
        (lambda: run(setup, shape, IN_BYTES, out=("out", OUT_BYTES - 4, 0)), "smaller than the"),
        (lambda: run(setup, shape, IN_BYTES, out=("out", OUT_BYTES, 2 * OUT_BYTES - 8)), "exceeds region 'out'"),
        (lambda: run(setup, shape, IN_BYTES, out=("gone", OUT_BYTES, 0)), "unknown shared-memory region 'gone'"),
        (lambda: client.register_system_shared_memory("x", PREFIX + "_missing", 16), "does not exist"),
        (lambda: client.register_system_shared_memory("in", PREFIX + "_in", 16), "'in' is already registered"),
        (lambda: client.register_system_shared_memory("x", PREFIX + "_in", 2 * IN_BYTES + 1), "exceeds the"),
        (lambda: client.register_system_shared_memory("x", PREFIX + "_in", 16, offset=2 * IN_BYTES), "exceeds the"),
        (lambda: client.register_system_shared_memory("x", "../etc/passwd", 16), "not a path"),
        (lambda: client.get_system_shared_memory_status("nope"), "unknown shared-memory region 'nope'"),
    ]
    for fn, match in cases:
        expect(fn, status=status, match=match)
        np.testing.assert_array_equal(binary_http(setup, x), ref)  # still serving
    names = [r["name"] for r in setup["http"].get_system_shared_memory_status()]
    assert names == ["in", "out"]  # nothing half-registered


def test_unregister_and_register_again(setup):
    http, grpc = setup["http"], setup["grpc"]
    x = waveforms(BATCH, 4)
    shm.set_shared_memory_region(setup["h_in"], [x])
    h_tmp = shm.create_shared_memory_region("tmp", PREFIX + "_tmp", IN_BYTES)
    try:
        shm.set_shared_memory_region(h_tmp, [x])
        grpc.register_system_shared_memory("tmp", PREFIX + "_tmp", IN_BYTES)
        http_shm(setup, [BATCH, 2, T], IN_BYTES, region="tmp")
        np.testing.assert_array_equal(read_out(setup), binary_http(setup, x))
        http.unregister_system_shared_memory("tmp")
        http.unregister_system_shared_memory("never-registered")  # not an error (Triton's answer)
        expect(http_shm, setup, [BATCH, 2, T], IN_BYTES, region="tmp", status="400", match="unknown")
        grpc.register_system_shared_memory("tmp", PREFIX + "_tmp", IN_BYTES // 2, offset=IN_BYTES // 2)
        assert http.get_system_shared_memory_status("tmp")[0]["offset"] == IN_BYTES // 2
        # the second half of the object is the region's start: the last BATCH/2 waveforms
        result = grpc_shm(setup, [BATCH // 2, 2, T], IN_BYTES // 2, region="tmp", out=None)
        np.testing.assert_array_equal(result.as_numpy("theta"), binary_http(setup, x[BATCH // 2 :]))
        grpc.unregister_system_shared_memory("tmp")
    finally:
        shm.destroy_shared_memory_region(h_tmp)
    assert [r["name"] for r in http.get_system_shared_memory_status()] == ["in", "out"]
