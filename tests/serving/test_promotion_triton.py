"""``gwinfer promote --url`` against a REAL Triton server: the same repository and command switch it too.

promote writes labels.json (ignored by Triton) and config.pbtxt's ``version_policy { specific { versions:
[N] } }``, then POSTs ``/v2/repository/models/<name>/load``; a Triton in ``--model-control-mode=explicit``
reloads the model with the new policy while clients keep sending, and no request fails. Skipped
without a usable Triton (see tests/serving/test_triton_real.py for where it is looked for).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from support import started_triton, tiny_point_model, usable_triton

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
httpclient = pytest.importorskip("tritonclient.http")

from gwinfer.models import save_model  # noqa: E402
from gwinfer.serving.export.model import export_model  # noqa: E402
from gwinfer.serving.promotion import promote  # noqa: E402

pytestmark = pytest.mark.triton
T = 64


def test_promote_switches_a_real_triton_without_failed_requests(tmp_path):
    install = usable_triton()
    repo = tmp_path / "repo"
    meta = {"time_grid": {"t_start": 0.0, "t_end": 126.0, "dt": 2.0}, "approximant": "IMRPhenomT"}
    for version, seed in ((1, 0), (2, 1)):
        path = tmp_path / f"m{seed}" / "model.pt"
        save_model(path, tiny_point_model(T, seed), metadata=meta)
        export_model(path, repo, name="tiny", version=version, backend="python")
    promote(repo, "tiny", 1)  # without a policy Triton would serve the latest version, 2
    x = np.random.default_rng(0).standard_normal((1, 2, T)).astype(np.float32)

    def call(client) -> str:
        t = httpclient.InferInput("waveform", [1, 2, T], "FP32")
        t.set_data_from_numpy(x)
        return client.infer("tiny", [t]).get_response()["model_version"]

    server = started_triton(repo, install, extra_args=("--model-control-mode=explicit", "--load-model=tiny"))
    try:
        c = httpclient.InferenceServerClient(server.url)
        assert call(c) == "1"
        stop, results, failures = threading.Event(), [], []

        def client() -> None:
            cl = httpclient.InferenceServerClient(server.url)
            while not stop.is_set():
                t_send = time.perf_counter()
                try:
                    results.append((t_send, call(cl)))
                except Exception as err:  # noqa: BLE001
                    failures.append(repr(err))
            cl.close()

        threads = [threading.Thread(target=client) for _ in range(4)]
        for th in threads:
            th.start()
        time.sleep(0.5)
        promote(repo, "tiny", 2, url=server.url)
        t_promoted = time.perf_counter()
        time.sleep(0.5)
        stop.set()
        for th in threads:
            th.join()
        assert not failures, failures[:3]
        assert {v for t, v in results if t > t_promoted} == {"2"}
        assert "1" in {v for t, v in results if t < t_promoted}
        c.close()
    finally:
        server.stop()
