"""The KServe v2 gRPC endpoint on 127.0.0.1 (free ports) driven by the real tritonclient.grpc client."""

from __future__ import annotations

import http.client
import re
import threading

import numpy as np
import pytest
from support import tiny_point_model

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
grpc = pytest.importorskip("grpc")
grpcclient = pytest.importorskip("tritonclient.grpc")
httpclient = pytest.importorskip("tritonclient.http")

from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from gwinfer.errors import GwinferError  # noqa: E402
from gwinfer.models import save_model  # noqa: E402
from gwinfer.serving.client import ServedModel  # noqa: E402
from gwinfer.serving.export.model import export_model  # noqa: E402
from gwinfer.serving.server.run import Server  # noqa: E402

T = 64
STRIDE = 16
MAX_BODY = 200_000
TOKEN = "s3cret"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-grpc")
    path = root / "tiny" / "model.pt"
    save_model(
        path,
        tiny_point_model(T, seed=0),
        metadata={"time_grid": {"t_start": 0.0, "t_end": 126.0, "dt": 2.0}, "approximant": "IMRPhenomT"},
    )
    repo = root / "repo"
    export_model(path, repo)  # tiny, version 1
    export_model(path, repo, version=2)
    export_model(path, repo, stream_stride=STRIDE)  # tiny-stream
    session = ort.InferenceSession(str(repo / "tiny" / "2" / "model.onnx"), providers=["CPUExecutionProvider"])
    server = Server(repo, max_body_bytes=MAX_BODY, grpc_port=0).start()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    channel = grpc.insecure_channel(server.grpc_url)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)  # for requests tritonclient cannot build
    yield {"server": server, "client": client, "stub": stub, "session": session, "repo": repo}
    channel.close()
    client.close()
    server.stop()


def waveforms(batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 2, T)).astype(np.float32)


def grpc_input(x: np.ndarray, name: str = "waveform", datatype: str = "FP32"):
    t = grpcclient.InferInput(name, list(x.shape), datatype)
    t.set_data_from_numpy(x)
    return t


def http_infer(server, x: np.ndarray, version: str = "") -> np.ndarray:
    c = httpclient.InferenceServerClient(server.url)
    t = httpclient.InferInput("waveform", list(x.shape), "FP32")
    t.set_data_from_numpy(x)
    try:
        return c.infer("tiny", [t], model_version=version).as_numpy("theta")
    finally:
        c.close()


def metric(server, name: str, labels: str = "") -> float:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def expect_status(code: str, fn, *args, match: str = "", **kwargs) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as err:
        fn(*args, **kwargs)
    assert err.value.status() == f"StatusCode.{code}", err.value
    assert match in err.value.message(), err.value.message()
    return err.value


def test_health_metadata_config_index(setup):
    c = setup["client"]
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("tiny") and c.is_model_ready("tiny", "1") and c.is_model_ready("tiny-stream")
    assert not c.is_model_ready("nope") and not c.is_model_ready("tiny", "9")
    meta = c.get_server_metadata()
    assert meta.name == "gwinfer" and "model_repository" in meta.extensions
    meta = c.get_model_metadata("tiny")
    assert list(meta.versions) == ["1", "2"] and meta.platform == "onnxruntime_onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("waveform", "FP32", [-1, 2, T])]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [("theta", "FP32", [-1, 3])]
    assert list(c.get_model_metadata("tiny", "1").versions) == ["1"]
    stream = c.get_model_metadata("tiny-stream")
    assert [(t.name, t.datatype) for t in stream.outputs] == [("theta", "FP32"), ("ready", "BOOL")]
    cfg = c.get_model_config("tiny").config
    assert cfg.max_batch_size == 64 and list(cfg.input[0].dims) == [2, T]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 2000
    assert c.get_model_config("tiny-stream").config.sequence_batching.max_sequence_idle_microseconds > 0
    index = c.get_model_repository_index()
    assert {(m.name, m.version, m.state) for m in index.models} == {
        ("tiny", "1", "READY"),
        ("tiny", "2", "READY"),
        ("tiny-stream", "1", "READY"),
    }
    expect_status("NOT_FOUND", c.get_model_metadata, "nope", match="unknown model 'nope'")
    expect_status("NOT_FOUND", c.get_model_config, "tiny", "9", match="unknown version '9'")


@pytest.mark.parametrize("batch", [1, 5])
def test_infer_equals_http_and_onnxruntime(setup, batch):
    server, c = setup["server"], setup["client"]
    x = waveforms(batch, seed=10 + batch)
    ref = setup["session"].run(["theta"], {"waveform": x})[0]
    res = c.infer("tiny", [grpc_input(x)], request_id="r1")
    got = res.as_numpy("theta")
    assert got.dtype == np.float32 and got.shape == (batch, 3)
    response = res.get_response()
    assert (response.model_name, response.model_version, response.id) == ("tiny", "2", "r1")
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, http_infer(server, x), rtol=0, atol=1e-6)
    # an explicit version, a named output, gzip-compressed messages
    res = c.infer(
        "tiny",
        [grpc_input(x)],
        model_version="1",
        outputs=[grpcclient.InferRequestedOutput("theta")],
        compression_algorithm="gzip",
    )
    assert res.get_response().model_version == "1"
    np.testing.assert_allclose(res.as_numpy("theta"), http_infer(server, x, version="1"), rtol=0, atol=1e-6)


def test_typed_contents_and_concurrency(setup):
    server, stub = setup["server"], setup["stub"]
    x = waveforms(3, seed=21)
    ref = setup["session"].run(["theta"], {"waveform": x})[0]
    req = service_pb2.ModelInferRequest(model_name="tiny")
    req.inputs.add(name="waveform", datatype="FP32", shape=list(x.shape)).contents.fp32_contents.extend(x.ravel())
    resp = stub.ModelInfer(req, timeout=10)
    got = np.frombuffer(resp.raw_output_contents[0], "<f4").reshape(list(resp.outputs[0].shape))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)

    # concurrent batch-1 requests are batched server-side (shared Batcher) and each gets its own answer
    xs = waveforms(8, seed=22)
    refs = setup["session"].run(["theta"], {"waveform": xs})[0]
    results: dict[int, np.ndarray] = {}
    execs_before = metric(server, "nv_inference_exec_count", '{model="tiny",version="2"}')

    def worker(i: int) -> None:
        results[i] = setup["client"].infer("tiny", [grpc_input(xs[i : i + 1])]).as_numpy("theta")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for i in range(8):
        np.testing.assert_allclose(results[i], refs[i : i + 1], rtol=1e-5, atol=1e-6)
    assert 1 <= metric(server, "nv_inference_exec_count", '{model="tiny",version="2"}') - execs_before <= 8


def _raw_request(x: np.ndarray, raw: list[bytes] | None = None, **tensor) -> service_pb2.ModelInferRequest:
    req = service_pb2.ModelInferRequest(model_name="tiny")
    req.inputs.add(**({"name": "waveform", "datatype": "FP32", "shape": list(x.shape)} | tensor))
    req.raw_input_contents.extend([x.tobytes()] if raw is None else raw)
    return req


def test_bad_requests_give_status_codes_and_server_keeps_serving(setup):
    server, c, stub = setup["server"], setup["client"], setup["stub"]
    x = waveforms(2, seed=1)
    fail_before = metric(server, "nv_inference_request_failure", '{model="tiny",version="2"}')

    expect_status("NOT_FOUND", c.infer, "missing", [grpc_input(x)], match="unknown model 'missing'")
    expect_status("NOT_FOUND", c.infer, "tiny", [grpc_input(x)], model_version="9", match="unknown version")
    expect_status("INVALID_ARGUMENT", c.infer, "tiny", [grpc_input(x, name="wave")], match="unexpected input 'wave'")
    expect_status("INVALID_ARGUMENT", c.infer, "tiny", [grpc_input(x[:, :, :32])], match="expected [-1, 2, 64]")
    expect_status(
        "INVALID_ARGUMENT",
        c.infer,
        "tiny",
        [grpc_input(x.astype(np.float64), datatype="FP64")],
        match="datatype 'FP64'; expected 'FP32'",
    )
    expect_status(
        "INVALID_ARGUMENT", c.infer, "tiny", [grpc_input(np.zeros((65, 2, T), np.float32))], match="batch in [1, 64]"
    )
    expect_status(
        "INVALID_ARGUMENT",
        c.infer,
        "tiny",
        [grpc_input(x)],
        outputs=[grpcclient.InferRequestedOutput("nope")],
        match="unknown output 'nope'",
    )
    expect_status(
        "INVALID_ARGUMENT",
        c.infer,
        "tiny",
        [grpc_input(x)],
        outputs=[grpcclient.InferRequestedOutput("theta", class_count=2)],
        match="not supported",
    )
    big = np.zeros((64, 2, 8 * T), np.float32)  # 256 KiB > MAX_BODY: refused by grpc before it is parsed
    expect_status("RESOURCE_EXHAUSTED", c.infer, "tiny", [grpc_input(big)])

    # malformed contents (requests tritonclient never builds)
    def bad(req: service_pb2.ModelInferRequest, match: str) -> None:
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(req, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and match in err.value.details(), err.value

    bad(_raw_request(x, raw=[x.tobytes()[:-4]]), "bytes; expected 256 x 4 = 1024 bytes")
    bad(_raw_request(x, raw=[x.tobytes(), x.tobytes()]), "2 entries for 1 inputs")
    bad(
        _raw_request(x, raw=[], contents=service_pb2.InferTensorContents(fp32_contents=[1.0, 2.0])),
        "2 values in contents.fp32_contents",
    )
    bad(
        _raw_request(x, raw=[], contents=service_pb2.InferTensorContents(fp64_contents=x.ravel())),
        "0 values in contents.fp32_contents",
    )
    bad(_raw_request(x, contents=service_pb2.InferTensorContents(fp32_contents=x.ravel())), "both")
    bad(_raw_request(x, shape=[]), "expected [-1, 2, 64]")
    bad(service_pb2.ModelInferRequest(model_name="tiny"), "has no inputs")

    # still serving, with correct answers; failures counted in the metrics shared with HTTP
    assert c.is_server_live()
    np.testing.assert_allclose(
        c.infer("tiny", [grpc_input(x)]).as_numpy("theta"),
        setup["session"].run(["theta"], {"waveform": x})[0],
        rtol=1e-5,
        atol=1e-6,
    )
    assert metric(server, "nv_inference_request_failure", '{model="tiny",version="2"}') - fail_before >= 13
    assert metric(server, "gwinfer_grpc_requests_total", '{method="ModelInfer",code="INVALID_ARGUMENT"}') >= 13


def test_streaming_sequence_equals_http(setup):
    server, c = setup["server"], setup["client"]
    stream = np.random.default_rng(9).standard_normal((2, STRIDE * 6)).astype(np.float32)
    updates = [stream[None, :, i * STRIDE : (i + 1) * STRIDE] for i in range(6)]
    via_http = []
    with ServedModel(server.url, "tiny-stream") as m:
        for i, u in enumerate(updates):
            via_http.append(m.infer({"update": u}, sequence_id=42, sequence_start=i == 0, sequence_end=i == 5))
    for i, u in enumerate(updates):
        res = c.infer(
            "tiny-stream", [grpc_input(u, name="update")], sequence_id=43, sequence_start=i == 0, sequence_end=i == 5
        )
        assert bool(res.as_numpy("ready")[0, 0]) == ((i + 1) * STRIDE >= T)
        assert res.get_response().parameters["samples"].int64_param == min((i + 1) * STRIDE, T)
        np.testing.assert_allclose(res.as_numpy("theta"), via_http[i]["theta"], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(res.as_numpy("ready"), via_http[i]["ready"])
    expect_status(
        "INVALID_ARGUMENT",
        c.infer,
        "tiny-stream",
        [grpc_input(updates[0], name="update")],
        sequence_id=43,
        match="not live",
    )  # ended with sequence_end, as over HTTP
    expect_status(
        "INVALID_ARGUMENT", c.infer, "tiny-stream", [grpc_input(updates[0], name="update")], match="sequence_id"
    )
    # one App: a sequence started over HTTP goes on over gRPC, with string ids too
    with ServedModel(server.url, "tiny-stream") as m:
        m.infer({"update": updates[0]}, sequence_id="s-1", sequence_start=True)
    res = c.infer("tiny-stream", [grpc_input(updates[1], name="update")], sequence_id="s-1", sequence_end=True)
    np.testing.assert_allclose(res.as_numpy("theta"), via_http[1]["theta"], rtol=0, atol=1e-6)

    # the bidirectional stream (start_stream / async_stream_infer): answers in order, errors in-band
    answers: list = []
    done = threading.Event()

    def callback(result, error):
        answers.append(error if error is not None else result)
        if len(answers) == len(updates) + 1:
            done.set()

    stream_client = grpcclient.InferenceServerClient(server.grpc_url)
    stream_client.start_stream(callback=callback)
    for i, u in enumerate(updates):
        stream_client.async_stream_infer(
            "tiny-stream", [grpc_input(u, name="update")], sequence_id=44, sequence_start=i == 0, sequence_end=i == 5
        )
        if i == 1:
            stream_client.async_stream_infer(
                "tiny-stream", [grpc_input(updates[0][:, :, :5], name="update")], sequence_id=44
            )
    assert done.wait(10), f"{len(answers)} stream answers"
    stream_client.stop_stream()
    stream_client.close()
    assert isinstance(answers[2], InferenceServerException) and "shape" in answers[2].message()
    oks = answers[:2] + answers[3:]
    for i, res in enumerate(oks):
        np.testing.assert_allclose(res.as_numpy("theta"), via_http[i]["theta"], rtol=0, atol=1e-6)


def test_token_and_port_in_use(setup):
    with Server(setup["repo"], token=TOKEN, grpc_port=0) as server:
        c = grpcclient.InferenceServerClient(server.grpc_url)
        assert c.is_server_live() and c.is_server_ready()  # health checks exempt
        expect_status("UNAUTHENTICATED", c.get_model_metadata, "tiny", match="authorization: Bearer")
        expect_status("UNAUTHENTICATED", c.is_model_ready, "tiny")
        x = waveforms(1, seed=3)
        expect_status("UNAUTHENTICATED", c.infer, "tiny", [grpc_input(x)], headers={"authorization": "Bearer wrong"})
        res = c.infer("tiny", [grpc_input(x)], headers={"authorization": f"Bearer {TOKEN}"})
        np.testing.assert_allclose(
            res.as_numpy("theta"), setup["session"].run(["theta"], {"waveform": x})[0], rtol=1e-5, atol=1e-6
        )
        errors: list = []
        got = threading.Event()
        c.start_stream(callback=lambda result, error: (errors.append(error), got.set()))
        try:  # the stream is refused as it opens, possibly before this message is sent
            c.async_stream_infer("tiny", [grpc_input(x)])
        except InferenceServerException:
            pass
        assert got.wait(10) and "UNAUTHENTICATED" in str(errors[0].status())
        c.stop_stream()
        c.close()
        with pytest.raises(GwinferError, match="cannot listen for gRPC"):
            Server(setup["repo"], grpc_port=server.grpc_port).start()
    with pytest.raises(GwinferError, match="no gRPC endpoint"):
        Server(setup["repo"]).grpc_url


def test_cli_grpc_port(monkeypatch):
    import argparse

    import gwinfer.serving.server.run as server_module
    from gwinfer.cli.serving import add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers())
    calls: list = []
    monkeypatch.setattr(server_module, "serve", lambda repo, options: calls.append(options))
    for argv, expected in (
        (["serve", "--repo", "r"], 8001),
        (["serve", "--repo", "r", "--grpc-port", "9001"], 9001),
        (["serve", "--repo", "r", "--grpc-port", "0"], None),
    ):
        args = parser.parse_args(argv)
        assert args.func(args) == 0
        assert calls[-1].grpc_port == expected


def test_cli_serve_grpc_in_subprocess(setup):
    """`serve --grpc-port P` (the CLI handler) answers tritonclient.grpc in another process; SIGTERM stops it."""
    import os
    import socket
    import subprocess
    import sys
    import time

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    code = (
        "import argparse, sys; from gwinfer.cli.serving import add_parsers; p = argparse.ArgumentParser(); "
        "add_parsers(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "serve",
            "--repo",
            str(setup["repo"]),
            "--port",
            str(ports[0]),
            "--grpc-port",
            str(ports[1]),
        ],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        stderr=subprocess.PIPE,
    )
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{ports[1]}")
    try:
        t0 = time.monotonic()
        while True:
            try:
                if client.is_server_ready():
                    break
            except InferenceServerException:  # not listening yet
                pass
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() - t0 < 40, "server did not start"
            time.sleep(0.1)
        x = waveforms(2, seed=4)
        np.testing.assert_allclose(
            client.infer("tiny", [grpc_input(x)]).as_numpy("theta"),
            setup["session"].run(["theta"], {"waveform": x})[0],
            rtol=1e-5,
            atol=1e-6,
        )
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=20)
        proc.stderr.close()
