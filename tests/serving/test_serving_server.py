"""A real KServe v2 server on 127.0.0.1 (free port) driven by the real tritonclient.http client."""

from __future__ import annotations

import http.client
import json
import re
import threading

import numpy as np
import pytest
from support import tiny_point_model

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpclient = pytest.importorskip("tritonclient.http")

from tritonclient.utils import InferenceServerException  # noqa: E402

from gwinfer.errors import GwinferError  # noqa: E402
from gwinfer.models import load_model, save_model  # noqa: E402
from gwinfer.serving.client import ServedModel  # noqa: E402
from gwinfer.serving.export.model import export_model  # noqa: E402
from gwinfer.serving.server.run import Server  # noqa: E402

T = 64
STRIDE = 16
MAX_BODY = 200_000


def tiny_model(seed: int = 0):
    return tiny_point_model(T, seed)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    path = root / "tiny" / "model.pt"
    save_model(
        path,
        tiny_model(),
        metadata={"time_grid": {"t_start": 0.0, "t_end": 126.0, "dt": 2.0}, "approximant": "IMRPhenomT"},
    )
    repo = root / "repo"
    export_model(path, repo)  # tiny, version 1
    export_model(path, repo, version=2)
    export_model(path, repo, name="tiny_ts", fmt="torchscript")
    export_model(path, repo, stream_stride=STRIDE)  # tiny-stream
    model, _ = load_model(path)
    server = Server(repo, max_body_bytes=MAX_BODY).start()
    client = httpclient.InferenceServerClient(server.url)
    yield {"server": server, "client": client, "model": model, "repo": repo}
    client.close()
    server.stop()


def torch_predict(model, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def waveforms(batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 2, T)).astype(np.float32)


def raw(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def metric(server, name: str, labels: str = "") -> float:
    text = raw(server, "GET", "/metrics")[1].decode()
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_health_metadata_index(setup):
    c = setup["client"]
    assert c.is_server_live() and c.is_server_ready()
    assert c.get_server_metadata()["name"] == "gwinfer"
    assert c.is_model_ready("tiny") and c.is_model_ready("tiny", "1") and c.is_model_ready("tiny_ts")
    meta = c.get_model_metadata("tiny")
    assert meta["versions"] == ["1", "2"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "waveform", "datatype": "FP32", "shape": [-1, 2, T]}]
    assert meta["outputs"] == [{"name": "theta", "datatype": "FP32", "shape": [-1, 3]}]
    assert c.get_model_metadata("tiny", "1")["versions"] == ["1"]
    index = c.get_model_repository_index()
    assert {(e["name"], e["version"], e["state"]) for e in index} == {
        ("tiny", "1", "READY"),
        ("tiny", "2", "READY"),
        ("tiny_ts", "1", "READY"),
        ("tiny-stream", "1", "READY"),
    }
    cfg = c.get_model_config("tiny")
    assert cfg["max_batch_size"] == 64 and cfg["input"][0]["dims"] == [2, T]


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("name,inp,out", [("tiny", "waveform", "theta"), ("tiny_ts", "waveform__0", "theta__0")])
def test_infer_equals_torch(setup, binary, name, inp, out):
    x = waveforms(5, seed=11)
    t = httpclient.InferInput(inp, list(x.shape), "FP32")
    t.set_data_from_numpy(x, binary_data=binary)
    res = setup["client"].infer(name, [t], outputs=[httpclient.InferRequestedOutput(out, binary_data=binary)])
    got = res.as_numpy(out)
    assert got.dtype == np.float32 and got.shape == (5, 3)
    np.testing.assert_allclose(got, torch_predict(setup["model"], x), rtol=1e-5, atol=1e-5)
    # the default request (no outputs named) asks for binary outputs; gzip/deflate request bodies
    for algo in (None, "gzip", "deflate"):
        res = setup["client"].infer(
            name, [t], model_version="1", request_compression_algorithm=algo, response_compression_algorithm=algo
        )
        np.testing.assert_allclose(res.as_numpy(out), got, rtol=0, atol=1e-6)


def test_served_model_client_and_concurrency(setup):
    x = waveforms(3, seed=5)
    ref = torch_predict(setup["model"], x)
    with ServedModel(setup["server"].url, "tiny") as m:
        assert m.inputs == {"waveform": ("FP32", [-1, 2, T])}
        np.testing.assert_allclose(m(x), ref, rtol=1e-5, atol=1e-5)
        with pytest.raises(GwinferError, match="expects"):
            m(x[:, :, :10])
    with ServedModel(setup["server"].url, "tiny_ts", binary=False) as m:
        np.testing.assert_allclose(m.infer({"waveform__0": x})["theta__0"], ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(GwinferError, match="unknown model"):
        ServedModel(setup["server"].url, "nope")

    # concurrent single-waveform requests are batched server-side and each gets its own answer
    xs = waveforms(12, seed=6)
    refs = torch_predict(setup["model"], xs)
    results: dict[int, np.ndarray] = {}
    execs_before = metric(setup["server"], "nv_inference_exec_count", '{model="tiny",version="2"}')

    def worker(i: int) -> None:
        with ServedModel(setup["server"].url, "tiny") as m:
            results[i] = m(xs[i : i + 1])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for i in range(12):
        np.testing.assert_allclose(results[i], refs[i : i + 1], rtol=1e-5, atol=1e-5)
    execs = metric(setup["server"], "nv_inference_exec_count", '{model="tiny",version="2"}') - execs_before
    assert 1 <= execs <= 12


def _infer_json(inputs: list, outputs: list | None = None) -> bytes:
    req = {"inputs": inputs}
    if outputs is not None:
        req["outputs"] = outputs
    return json.dumps(req).encode()


def test_bad_requests_are_4xx_and_server_keeps_serving(setup):
    server, c = setup["server"], setup["client"]
    x = waveforms(2, seed=1)
    fail_before = metric(server, "nv_inference_request_failure", '{model="tiny",version="2"}')

    def check(name, inp_name, arr, datatype="FP32", binary=True, match=""):
        t = httpclient.InferInput(inp_name, list(arr.shape), datatype)
        t.set_data_from_numpy(arr, binary_data=binary)
        with pytest.raises(InferenceServerException) as err:
            c.infer(name, [t])
        assert err.value.status().startswith("4"), err.value
        assert match in err.value.message()

    check("tiny", "wave", x, match="unexpected input")
    check("tiny", "waveform", x[:, :, :32], match="shape")
    check("tiny", "waveform", x.astype(np.float64), datatype="FP64", match="datatype")
    check("tiny", "waveform", x.astype(np.float64), datatype="FP64", binary=False, match="datatype")
    check("missing", "waveform", x, match="unknown model")
    check("tiny", "waveform", np.zeros((65, 2, T), np.float32), match="batch")
    bad = x.copy()
    bad[1, 0, 3] = np.nan
    check("tiny", "waveform", bad, match="NaN or inf")
    check("tiny", "waveform", bad, binary=False, match="NaN or inf")
    check("tiny", "waveform", np.full_like(x, 1e30), match="accepted |x| <= 1e+06")
    zero = x.copy()
    zero[1] = 0.0
    check("tiny", "waveform", zero, match="all zeros in batch row(s) [1]")
    with pytest.raises(InferenceServerException, match="unknown version"):
        c.get_model_metadata("tiny", "9")
    with pytest.raises(InferenceServerException, match="unknown output"):
        t = httpclient.InferInput("waveform", list(x.shape), "FP32")
        t.set_data_from_numpy(x)
        c.infer("tiny", [t], outputs=[httpclient.InferRequestedOutput("nope")])

    path = "/v2/models/tiny/infer"
    status, body = raw(server, "POST", path, b"\x00garbage{")
    assert status == 400 and "malformed JSON" in json.loads(body)["error"]
    status, body = raw(server, "POST", path, b'{"inputs": []}')
    assert status == 400
    deep = b"[" * 100_000 + b"]" * 100_000  # deeper than json's recursion limit: 400, not 500
    status, body = raw(server, "POST", path, deep)
    assert status == 400 and "nested too deeply" in json.loads(body)["error"], body
    status, body = raw(server, "POST", "/v2/repository/index", deep)
    assert status == 400, body
    status, _ = raw(server, "POST", path, b"{}" + x.tobytes(), {"Inference-Header-Content-Length": "999999999"})
    assert status == 400
    status, _ = raw(server, "POST", path, b"{}", {"Inference-Header-Content-Length": "x1"})
    assert status == 400
    good_input = {"name": "waveform", "shape": [2, 2, T], "datatype": "FP32"}
    status, body = raw(
        server,
        "POST",
        path,
        _infer_json([good_input | {"parameters": {"binary_data_size": 8}}]),
    )  # binary size promised but not sent
    assert status == 400
    status, body = raw(server, "POST", path, _infer_json([good_input | {"data": ["a"] * (4 * T)}]))
    assert status == 400 and "FP32" in json.loads(body)["error"]
    status, body = raw(server, "POST", path, _infer_json([good_input | {"data": [1.0] * 3}]))
    assert status == 400 and "data values" in json.loads(body)["error"]
    for value in (1e39, -1e39):  # beyond float32 in a JSON body: inf once cast, refused like NaN
        status, body = raw(server, "POST", path, _infer_json([good_input | {"data": [value] + [0.5] * (4 * T - 1)}]))
        assert status == 400 and "NaN or inf" in json.loads(body)["error"], body
    # oversized: refused on the announced Content-Length, before the body is sent
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.putrequest("POST", path)
    conn.putheader("Content-Length", str(MAX_BODY + 10))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and "limit" in json.loads(resp.read())["error"]
    conn.close()
    status, body = raw(server, "GET", "/v2/nowhere")
    assert status == 404 and "error" in json.loads(body)
    # a JSON part beyond max_json_bytes is refused unparsed (parsing would hold the event loop)
    from gwinfer.serving.protocol.errors import ServingError
    from gwinfer.serving.protocol.http_codec import json_header

    big = _infer_json([good_input | {"data": [0.1] * 1000}])
    with pytest.raises(ServingError, match="binary data") as err:
        json_header(big, None, max_json_bytes=1024)
    assert err.value.status == 413 and json_header(big, None, max_json_bytes=len(big))[0]["inputs"]

    # still serving, with correct answers
    assert c.is_server_live()
    t = httpclient.InferInput("waveform", list(x.shape), "FP32")
    t.set_data_from_numpy(x)
    np.testing.assert_allclose(
        c.infer("tiny", [t]).as_numpy("theta"), torch_predict(setup["model"], x), rtol=1e-5, atol=1e-5
    )
    # JSON inference request through the raw endpoint: plain JSON answer
    status, body = raw(server, "POST", path, _infer_json([good_input | {"data": x.reshape(-1).tolist()}]))
    assert status == 200
    out = json.loads(body)["outputs"][0]
    np.testing.assert_allclose(
        np.array(out["data"], np.float32).reshape(out["shape"]), torch_predict(setup["model"], x), rtol=1e-5, atol=1e-5
    )
    fails = metric(server, "nv_inference_request_failure", '{model="tiny",version="2"}') - fail_before
    assert fails >= 9


def test_metrics_count_requests(setup):
    server, c = setup["server"], setup["client"]
    key = '{model="tiny",version="1"}'
    before = metric(server, "nv_inference_request_success", key)
    items_before = metric(server, "nv_inference_count", key)
    lat_before = metric(server, "gwinfer_request_latency_seconds_count")
    x = waveforms(4, seed=2)
    t = httpclient.InferInput("waveform", list(x.shape), "FP32")
    t.set_data_from_numpy(x)
    for _ in range(3):
        c.infer("tiny", [t], model_version="1")
    assert metric(server, "nv_inference_request_success", key) - before == 3
    assert metric(server, "nv_inference_count", key) - items_before == 12
    assert metric(server, "gwinfer_request_latency_seconds_count") - lat_before == 3
    text = raw(server, "GET", "/metrics")[1].decode()
    assert "# TYPE gwinfer_batch_size histogram" in text and 'gwinfer_http_requests_total{route="infer"' in text


def test_token_auth(setup):
    with Server(setup["repo"], token="s3cret") as server:
        assert raw(server, "GET", "/v2/health/live")[0] == 200
        status, body = raw(server, "GET", "/v2/models/tiny")
        assert status == 401 and "token" in json.loads(body)["error"]
        assert raw(server, "GET", "/v2/models/tiny", headers={"Authorization": "Bearer wrong"})[0] == 401
        with ServedModel(server.url, "tiny", token="s3cret") as m:
            x = waveforms(1, seed=3)
            np.testing.assert_allclose(m(x), torch_predict(setup["model"], x), rtol=1e-5, atol=1e-5)


def test_streaming_through_server(setup):
    model = setup["model"]
    rng = np.random.default_rng(9)
    stream = rng.standard_normal((2, STRIDE * 8)).astype(np.float32)
    other = rng.standard_normal((2, STRIDE)).astype(np.float32)
    with ServedModel(setup["server"].url, "tiny-stream") as m:
        assert m.inputs == {"update": ("FP32", [-1, 2, STRIDE])}
        online = []
        for i in range(8):
            out = m.infer(
                {"update": stream[None, :, i * STRIDE : (i + 1) * STRIDE]},
                sequence_id=42,
                sequence_start=i == 0,
                sequence_end=i == 7,
            )
            if i == 1:  # a bad request and another sequence in between change nothing
                bad = httpclient.InferInput("update", [1, 2, STRIDE + 1], "FP32")
                bad.set_data_from_numpy(np.zeros((1, 2, STRIDE + 1), np.float32))
                with pytest.raises(InferenceServerException, match="shape"):
                    setup["client"].infer("tiny-stream", [bad], sequence_id=42)
                m.infer({"update": other[None]}, sequence_id=7, sequence_start=True, sequence_end=True)
            assert bool(out["ready"][0, 0]) == ((i + 1) * STRIDE >= T)
            if out["ready"][0, 0]:
                online.append(out["theta"][0])
        ends = range(T, stream.shape[1] + 1, STRIDE)
        offline = torch_predict(model, np.stack([stream[:, e - T : e] for e in ends]))
        np.testing.assert_allclose(np.array(online), offline, rtol=1e-5, atol=1e-5)
        with pytest.raises(GwinferError, match="not live"):  # ended with sequence_end
            m.infer({"update": other[None]}, sequence_id=42)
        with pytest.raises(GwinferError, match="sequence_id"):
            m.infer({"update": other[None]})


def test_cli_serve_in_subprocess(setup):
    """`serve` (the CLI handler) in a separate process answers tritonclient, and stops on SIGTERM."""
    import os
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "import argparse, sys; from gwinfer.cli.serving import add_parsers; p = argparse.ArgumentParser(); "
        "add_parsers(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--repo", str(setup["repo"]), "--port", str(port), "--grpc-port", "0"],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        stderr=subprocess.PIPE,
    )
    try:
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        t0 = time.monotonic()
        while True:
            try:
                if client.is_server_ready():
                    break
            except Exception:  # noqa: BLE001 (not listening yet)
                pass
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() - t0 < 40, "server did not start"
            time.sleep(0.1)
        x = waveforms(2, seed=4)
        t = httpclient.InferInput("waveform", list(x.shape), "FP32")
        t.set_data_from_numpy(x)
        np.testing.assert_allclose(
            client.infer("tiny", [t]).as_numpy("theta"), torch_predict(setup["model"], x), rtol=1e-5, atol=1e-5
        )
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stderr.close()


def test_ports_threads_and_token_sources(tmp_path, monkeypatch, capsys):
    from gwinfer.cli import main
    from gwinfer.serving.server.options import check_port
    from gwinfer.serving.server.run import TOKEN_ENV, resolve_token

    for argv, message in (
        (["--port", "70000"], "port 70000 must be an integer in [1, 65535]"),
        (["--port", "0"], "port 0 must be"),
        (["--grpc-port", "8000"], "must differ from the HTTP port"),
        (["--threads", "0"], "threads = 0 must be an integer >= 1"),
    ):
        assert main(["serve", "--repo", str(tmp_path), *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("gwinfer: error: ") and message in err and err.count("\n") == 1, err
    assert check_port(8000) == 8000
    (tmp_path / "tok").write_text("s3cret\nignored\n")
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert resolve_token("arg", tmp_path / "tok") == "arg"
    assert resolve_token(None, tmp_path / "tok") == "s3cret"
    assert resolve_token() == "from-env"
    monkeypatch.delenv(TOKEN_ENV)
    assert resolve_token() is None
    with pytest.raises(GwinferError, match="does not exist"):
        resolve_token(None, tmp_path / "missing")


def test_a_broken_model_is_unavailable_alone(tmp_path):
    """A model folder with a malformed config.pbtxt is listed UNAVAILABLE with its reason; the others serve."""
    repo = tmp_path / "repo"
    path = tmp_path / "m.pt"
    save_model(path, tiny_model(), metadata={"time_grid": {"t_start": 0.0, "t_end": 126.0, "dt": 2.0}})
    export_model(path, repo, name="good")
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "config.pbtxt").write_text("name: 'broken' input [ { oops")
    server = Server(repo).start()
    try:
        index = {e["name"]: e for e in json.loads(raw(server, "POST", "/v2/repository/index", b"{}")[1])}
        assert index["good"]["state"] == "READY"
        assert index["broken"]["state"] == "UNAVAILABLE" and "config.pbtxt" in index["broken"]["reason"]
        x = waveforms(1, seed=3)
        t = httpclient.InferInput("waveform", list(x.shape), "FP32")
        t.set_data_from_numpy(x)
        c = httpclient.InferenceServerClient(server.url)
        assert c.infer("good", [t]).as_numpy("theta").shape == (1, 3)
        with pytest.raises(InferenceServerException):
            c.infer("broken", [t])
        c.close()
    finally:
        server.stop()


def test_slow_clients_are_cut_off_and_valid_ones_served(tmp_path):
    """20 connections trickling their headers are closed after the header deadline, a body that stalls gets
    408, and a valid request is answered all the while."""
    import socket
    import time

    path = tmp_path / "m.pt"
    save_model(path, tiny_model(), metadata={"time_grid": {"t_start": 0.0, "t_end": 126.0, "dt": 2.0}})
    export_model(path, tmp_path / "repo", name="tiny")
    server = Server(tmp_path / "repo", header_timeout=1.0, body_timeout=1.0).start()
    try:
        host, port = server.url.split(":")
        slow = []
        for _ in range(20):
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            slow.append(s)
        stalled = socket.create_connection((host, int(port)), timeout=5)
        stalled.sendall(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        x = waveforms(1, seed=5)
        t = httpclient.InferInput("waveform", list(x.shape), "FP32")
        t.set_data_from_numpy(x)
        c = httpclient.InferenceServerClient(server.url)
        assert c.infer("tiny", [t]).as_numpy("theta").shape == (1, 3)
        time.sleep(1.6)
        for s in slow:
            assert s.recv(100) == b""  # closed by the server
            s.close()
        answer = stalled.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 408") and "did not arrive within 1 s" in answer, answer
        stalled.close()
        assert c.infer("tiny", [t]).as_numpy("theta").shape == (1, 3)
        c.close()
    finally:
        server.stop()


def test_the_index_follows_the_disk(tmp_path):
    """A version folder deleted from the repository stops answering (UNAVAILABLE, 503); one added on disk
    is listed as not loaded until a load request."""
    import shutil

    path = tmp_path / "m.pt"
    save_model(path, tiny_model(), metadata={"time_grid": {"t_start": 0.0, "t_end": 126.0, "dt": 2.0}})
    repo = tmp_path / "repo"
    export_model(path, repo, name="tiny")
    export_model(path, repo, name="tiny", version=2)
    server = Server(repo).start()
    try:
        shutil.rmtree(repo / "tiny" / "2")
        export_model(path, repo, name="tiny", version=3)
        index = {e["version"]: e for e in json.loads(raw(server, "POST", "/v2/repository/index", b"{}")[1])}
        assert index["1"]["state"] == "READY"
        assert index["2"]["state"] == "UNAVAILABLE" and "removed" in index["2"]["reason"]
        assert index["3"]["state"] == "UNAVAILABLE" and "not loaded" in index["3"]["reason"]
        x = waveforms(1, seed=2)
        status, body = raw(server, "POST", "/v2/models/tiny/versions/2/infer", json.dumps(
            {"inputs": [{"name": "waveform", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
        ).encode())  # fmt: skip
        assert status == 503 and "removed" in json.loads(body)["error"]
    finally:
        server.stop()


def test_json_answers_never_hold_bare_nan():
    """JSON has no NaN or inf: non-finite outputs (a streaming window not yet full) are null in a JSON answer
    (strict JSON that any parser reads) and IEEE values in a binary one."""
    from types import SimpleNamespace

    from gwinfer.serving.protocol.http_codec import encode_response
    from gwinfer.serving.repository.specs import TensorSpec

    mv = SimpleNamespace(name="m", version=1, outputs=[TensorSpec("theta", "FP32", (3,))])
    out = {"theta": np.array([[1.5, np.nan, np.inf]], np.float32)}
    body, head = encode_response(mv, {}, out, [("theta", False, None)])
    assert head is None and b"NaN" not in body and b"Infinity" not in body
    assert json.loads(body, parse_constant=lambda c: pytest.fail(f"bare {c}"))["outputs"][0]["data"] == [
        1.5,
        None,
        None,
    ]
    body, head = encode_response(mv, {}, out, [("theta", True, None)])
    assert np.array_equal(np.frombuffer(body[head:], np.float32), out["theta"][0], equal_nan=True)


def test_connections_beyond_the_concurrency_cap_get_503(tmp_path):
    """``max_concurrency`` connections held open (unfinished requests) fill the server: the next request is
    answered 503 at once (not queued for ever); once they go, requests are served again."""
    import socket
    import time

    (tmp_path / "repo").mkdir()
    server = Server(tmp_path / "repo", max_concurrency=3).start()
    try:
        held = [socket.create_connection((server.host, server.port), timeout=5) for _ in range(3)]
        time.sleep(0.3)
        status, body = raw(server, "GET", "/v2/health/ready")
        assert status == 503, body
        for s in held:
            s.close()
        deadline = time.monotonic() + 10
        while raw(server, "GET", "/v2/health/ready")[0] != 200:
            assert time.monotonic() < deadline, "the server did not recover after the held connections closed"
            time.sleep(0.1)
    finally:
        server.stop()
