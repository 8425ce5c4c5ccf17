"""Load test: 1000 requests from 8 concurrent client threads (HTTP and gRPC, mixed batch sizes) against a
real gwinfer server on 127.0.0.1 with dynamic batching on; zero errors, every answer equal to onnxruntime
in-process on the same seeded input."""

from __future__ import annotations

import re
import threading
import time
import urllib.request

import numpy as np
import pytest
from support import tiny_point_model

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
grpcclient = pytest.importorskip("tritonclient.grpc")
httpclient = pytest.importorskip("tritonclient.http")

from gwinfer.models import save_model  # noqa: E402
from gwinfer.serving.export.model import export_model  # noqa: E402
from gwinfer.serving.server.run import Server  # noqa: E402

T = 64
REQUESTS = 1000
CLIENTS = 8
BATCHES = (1, 1, 2, 3, 5, 8, 16, 64)  # drawn per request (seeded)


def test_1000_requests_from_8_clients(tmp_path):
    path = tmp_path / "tiny" / "model.pt"
    save_model(
        path,
        tiny_point_model(T, seed=0),
        metadata={"time_grid": {"t_start": 0.0, "t_end": 126.0, "dt": 2.0}, "approximant": "IMRPhenomT"},
    )
    repo = tmp_path / "repo"
    export_model(path, repo)  # 2 ms batching window: concurrent requests are run together
    session = ort.InferenceSession(str(repo / "tiny" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(2024)
    sizes = rng.choice(BATCHES, REQUESTS)
    inputs = [rng.standard_normal((int(b), 2, T)).astype(np.float32) for b in sizes]
    refs = [session.run(None, {"waveform": x})[0] for x in inputs]

    errors: list[str] = []
    answers: dict[int, np.ndarray] = {}
    latency: list[float] = []
    lock = threading.Lock()

    with Server(repo, grpc_port=0) as server:

        def worker(k: int) -> None:
            grpc = k % 2 == 1  # half the clients over gRPC
            mod = grpcclient if grpc else httpclient
            client = mod.InferenceServerClient(server.grpc_url if grpc else server.url)
            mine: dict[int, np.ndarray] = {}
            times: list[float] = []
            try:
                for i in range(k, REQUESTS, CLIENTS):
                    x = inputs[i]
                    inp = mod.InferInput("waveform", list(x.shape), "FP32")
                    inp.set_data_from_numpy(x)
                    t0 = time.perf_counter()
                    try:
                        mine[i] = client.infer("tiny", [inp], request_id=str(i)).as_numpy("theta")
                    except Exception as err:  # noqa: BLE001 (counted: the test wants zero)
                        with lock:
                            errors.append(f"request {i}: {type(err).__name__}: {err}")
                    times.append(time.perf_counter() - t0)
            finally:
                client.close()
            with lock:
                answers.update(mine)
                latency.extend(times)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(CLIENTS)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        wall = time.perf_counter() - t0
        text = urllib.request.urlopen(f"http://{server.url}/metrics", timeout=10).read().decode()

    def metric(name: str) -> float:
        m = re.search(rf'^{name}{{model="tiny",version="1"}} (\S+)$', text, re.M)
        return float(m.group(1)) if m else 0.0

    assert not errors, errors[:5]
    assert len(answers) == REQUESTS
    assert metric("nv_inference_request_success") == REQUESTS and metric("nv_inference_request_failure") == 0
    assert metric("nv_inference_count") == sizes.sum()
    assert metric("nv_inference_exec_count") < REQUESTS  # concurrent requests were batched together
    for i in range(REQUESTS):
        # the server batches concurrent requests together: same numbers up to float32 summation order
        np.testing.assert_allclose(answers[i], refs[i], rtol=1e-5, atol=1e-5, err_msg=f"request {i}")
    lat = np.array(latency) * 1e3
    print(
        f"\n{REQUESTS} requests, {CLIENTS} clients: {REQUESTS / wall:.0f} requests/s, "
        f"p50 {np.percentile(lat, 50):.2f} ms, p99 {np.percentile(lat, 99):.2f} ms, 0 errors"
    )
