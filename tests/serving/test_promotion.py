"""Production/development labels, the shadow monitor on the live stream and ``gwinfer promote``.

Two different tiny models exported as versions 1 and 2 of ``tiny`` (their outputs differ, so who answered
is visible in the values); version 3 is a model for another input length copied in by hand: it loads
but every inference fails (a broken development version).
"""

from __future__ import annotations

import http.client
import json
import math
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from support import tiny_point_model

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")

from tritonclient.utils import InferenceServerException  # noqa: E402

from gwinfer.cli import main  # noqa: E402
from gwinfer.errors import GwinferError  # noqa: E402
from gwinfer.models import save_model  # noqa: E402
from gwinfer.serving.export.model import export_model  # noqa: E402
from gwinfer.serving.promotion import check_monitor, promote  # noqa: E402
from gwinfer.serving.protocol.errors import ServingError  # noqa: E402
from gwinfer.serving.repository.config import parse_config, read_config, set_version_policy  # noqa: E402
from gwinfer.serving.repository.labels import Labels, parse_labels, read_labels, write_labels  # noqa: E402
from gwinfer.serving.server.app import App  # noqa: E402
from gwinfer.serving.server.run import Server  # noqa: E402
from gwinfer.serving.server.shadow import PairStats, ShadowMonitor  # noqa: E402

T = 64
STRIDE = 16
META = {"time_grid": {"t_start": 0.0, "t_end": 126.0, "dt": 2.0}, "approximant": "IMRPhenomT"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("promotion")
    repo = root / "repo"
    for version, seed in ((1, 0), (2, 1)):
        path = root / f"m{seed}" / "model.pt"
        save_model(path, tiny_point_model(T, seed), metadata=META)
        export_model(path, repo, name="tiny", version=version)
        export_model(path, root / "stream", name="tiny-stream", version=version, stream_stride=STRIDE)
    short = root / "short" / "model.pt"  # input length 32: loads as a version of tiny, fails every inference
    grid = {"t_start": 0.0, "t_end": 62.0, "dt": 2.0}
    save_model(short, tiny_point_model(32, 2), metadata=META | {"time_grid": grid})
    export_model(short, root / "other", name="tiny")
    shutil.copytree(root / "other" / "tiny" / "1", repo / "tiny" / "3")
    sessions = {}
    for v in (1, 2):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sessions[v] = ort.InferenceSession(
            str(repo / "tiny" / str(v) / "model.onnx"), opts, providers=["CPUExecutionProvider"]
        )
    return {"repo": repo, "sessions": sessions, "stream": root / "stream"}


def make_repo(base, tmp_path: Path, versions=(1, 2), labels: dict | None = None) -> Path:
    """A copy of the base repository with some versions of tiny and a labels.json."""
    repo = tmp_path / "repo"
    (repo / "tiny").mkdir(parents=True)
    shutil.copyfile(base["repo"] / "tiny" / "config.pbtxt", repo / "tiny" / "config.pbtxt")
    for v in versions:
        shutil.copytree(base["repo"] / "tiny" / str(v), repo / "tiny" / str(v))
    if labels is not None:
        (repo / "tiny" / "labels.json").write_text(json.dumps(labels))
    return repo


def reference(base, version: int, x: np.ndarray) -> np.ndarray:
    return base["sessions"][version].run(["theta"], {"waveform": x})[0]


def waveforms(batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 2, T)).astype(np.float32)


def infer(client, x: np.ndarray, version: str = "") -> tuple[str, np.ndarray]:
    t = httpclient.InferInput("waveform", list(x.shape), "FP32")
    t.set_data_from_numpy(x)
    res = client.infer("tiny", [t], model_version=version)
    return res.get_response()["model_version"], res.as_numpy("theta")


def get(server, path: str) -> tuple[int, dict | str]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read().decode()
        return resp.status, (json.loads(body) if body.startswith(("{", "[")) else body)
    finally:
        conn.close()


def post(server, path: str, body: bytes = b"{}") -> tuple[int, dict]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request("POST", path, body=body)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def wait_requests(server, n: int, timeout: float = 15.0) -> dict:
    t0 = time.monotonic()
    while True:
        mon = get(server, "/v2/models/tiny/monitor")[1]
        if (mon["requests"] + mon["errors"] >= n and mon["pending"] == 0) or time.monotonic() - t0 > timeout:
            return mon
        time.sleep(0.01)


def expected_stats(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    prod = np.concatenate([p for p, _ in pairs]).astype(np.float64)
    dev = np.concatenate([d for _, d in pairs]).astype(np.float64)
    d = np.abs(dev - prod)
    return {
        "mean_abs_diff": d.mean(),
        "max_abs_diff": d.max(),
        "rel_rms_diff": math.sqrt((d**2).sum() / (prod**2).sum()),
        "elements": d.size,
    }


# --- labels.json, version_policy ---------------------------------------------------------------------
def test_labels_file_validated_and_atomic(base, tmp_path):
    repo = make_repo(base, tmp_path)
    model_dir = repo / "tiny"
    assert read_labels(model_dir) is None
    write_labels(model_dir, Labels(1, 2))
    assert json.loads((model_dir / "labels.json").read_text()) == {"production": 1, "development": 2}
    assert read_labels(model_dir) == Labels(1, 2)
    with pytest.raises(GwinferError, match=r"production version 5 does not exist; versions: \[1, 2\]"):
        write_labels(model_dir, Labels(5))
    for bad, match in (
        ({"production": 1, "development": 1}, "both version 1"),
        ({"development": 2}, "no 'production'"),
        ({"production": True}, "integer >= 1"),
        ({"production": "1"}, "integer >= 1"),
        ({"production": 1, "staging": 2}, "unknown key"),
        ([1], "JSON object"),
    ):
        with pytest.raises(GwinferError, match=match):
            parse_labels(bad)
    (model_dir / "labels.json").write_text('{"production": 1,')
    with pytest.raises(GwinferError, match="not valid JSON"):
        read_labels(model_dir)
    (model_dir / "labels.json").write_text('{"production": 7}')
    with pytest.raises(GwinferError, match="production version 7 does not exist"):
        read_labels(model_dir)

    # atomic: a reader never sees a partial file while a writer rewrites it; no temporary files are left
    stop, seen, errors = threading.Event(), set(), []

    def reader():
        while not stop.is_set():
            try:
                seen.add(json.loads((model_dir / "labels.json").read_text())["production"])
            except Exception as err:  # noqa: BLE001
                errors.append(repr(err))

    write_labels(model_dir, Labels(1))
    th = threading.Thread(target=reader)
    th.start()
    for i in range(150):
        write_labels(model_dir, Labels(1 + i % 2, 2 - i % 2))
    stop.set()
    th.join()
    assert not errors and seen == {1, 2}
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2", "config.pbtxt", "labels.json"]

    # a server refuses unversioned requests (503) on unusable labels, explicit versions still work
    (model_dir / "labels.json").write_text('{"production": 9}')
    app = App(repo)
    try:
        with pytest.raises(ServingError, match="no usable production label") as err:
            app.model("tiny")
        assert err.value.status == 503 and app.model("tiny", "1").version == 1
    finally:
        app.close()


def test_set_version_policy_keeps_the_rest(base, tmp_path):
    text = (base["repo"] / "tiny" / "config.pbtxt").read_text()
    text = text.replace(
        "max_batch_size",
        "# hand-written comment { [ <\nversion_policy: { latest: { num_versions: 2 } }\nmax_batch_size",
        1,
    )
    new = set_version_policy(text, [2])
    assert "# hand-written comment { [ <" in new and "latest" not in new
    cfg, old = parse_config(new), parse_config(text)
    assert cfg.pop("version_policy") == {"specific": {"versions": [2]}}
    old.pop("version_policy")
    assert cfg == old
    assert set_version_policy(new, [1]).count("version_policy") == 1


def test_export_keeps_a_promoted_version_policy(base, tmp_path):
    repo = make_repo(base, tmp_path, versions=(1, 2))
    cfg_path = repo / "tiny" / "config.pbtxt"
    cfg_path.write_text(set_version_policy(cfg_path.read_text(), [1]))
    path = tmp_path / "m" / "model.pt"
    save_model(path, tiny_point_model(T, 5), metadata=META)
    export_model(path, repo, name="tiny")  # version 3: exported, not promoted
    assert read_config(repo / "tiny")["version_policy"] == {"specific": {"versions": [1]}}


# --- routing, metadata, tritonclient ------------------------------------------------------------------
@pytest.fixture(scope="module")
def labelled(base, tmp_path_factory):
    repo = make_repo(base, tmp_path_factory.mktemp("labelled"), labels={"production": 1, "development": 2})
    with Server(repo, grpc_port=0) as server:
        yield {"server": server, "repo": repo, "client": httpclient.InferenceServerClient(server.url)}


def test_labels_route_unversioned_requests_to_production(base, labelled):
    server, c = labelled["server"], labelled["client"]
    x = waveforms(3, seed=1)
    version, got = infer(c, x)
    assert version == "1"
    np.testing.assert_allclose(got, reference(base, 1, x), rtol=1e-6, atol=1e-6)
    version, got = infer(c, x, "2")  # explicit versions still work
    assert version == "2"
    np.testing.assert_allclose(got, reference(base, 2, x), rtol=1e-6, atol=1e-6)
    assert not np.allclose(reference(base, 1, x), reference(base, 2, x), atol=1e-3)  # the versions differ
    meta = c.get_model_metadata("tiny")
    assert meta["versions"] == ["1", "2"] and meta["labels"] == {"production": "1", "development": "2"}
    assert c.is_model_ready("tiny")
    index = {(e["name"], e["version"]): e.get("label") for e in c.get_model_repository_index()}
    assert index == {("tiny", "1"): "production", ("tiny", "2"): "development"}
    # the real tritonclient.grpc: metadata, index, unversioned inference, load
    g = grpcclient.InferenceServerClient(server.grpc_url)
    assert g.get_model_metadata("tiny").versions == ["1", "2"]
    assert len(g.get_model_repository_index().models) == 2
    t = grpcclient.InferInput("waveform", list(x.shape), "FP32")
    t.set_data_from_numpy(x)
    res = g.infer("tiny", [t])
    assert res.get_response().model_version == "1"
    np.testing.assert_allclose(res.as_numpy("theta"), reference(base, 1, x), rtol=1e-6, atol=1e-6)
    g.load_model("tiny")
    g.close()
    # tritonclient.http's load_model is the repository extension's POST .../load
    c.load_model("tiny")
    with pytest.raises(InferenceServerException, match="no model 'nope'"):
        c.load_model("nope")
    with pytest.raises(InferenceServerException, match="not supported"):
        c.load_model("tiny", config='{"max_batch_size": 2}')
    # a load with invalid labels is refused and changes nothing
    labels_path = labelled["repo"] / "tiny" / "labels.json"
    good = labels_path.read_text()
    labels_path.write_text('{"production": 3}')
    try:
        status, body = post(server, "/v2/repository/models/tiny/load")
        assert status == 400 and "production version 3 does not exist" in body["error"]
    finally:
        labels_path.write_text(good)
    assert infer(c, x)[0] == "1"


def test_shadow_metrics_equal_an_independent_computation(base, tmp_path):
    repo = make_repo(base, tmp_path, labels={"production": 1, "development": 2})
    with Server(repo, grpc_port=0) as server:
        c = httpclient.InferenceServerClient(server.url)
        check_shadow_metrics(base, server, c)
        c.close()


def check_shadow_metrics(base, server, c) -> None:
    pairs = []
    for i, batch in enumerate((1, 3, 5, 2)):
        x = waveforms(batch, seed=100 + i)
        infer(c, x, "1" if i == 3 else "")  # production requests, with or without the version
        pairs.append(x)
    infer(c, waveforms(4, seed=99), "2")  # requests to the development version are not mirrored
    g = grpcclient.InferenceServerClient(server.grpc_url)  # gRPC requests are mirrored too
    x = waveforms(2, seed=200)
    t = grpcclient.InferInput("waveform", list(x.shape), "FP32")
    t.set_data_from_numpy(x)
    g.infer("tiny", [t])
    g.close()
    pairs.append(x)
    mon = wait_requests(server, len(pairs))
    assert mon["production"] == "1" and mon["development"] == "2" and mon["fraction"] == 1.0
    assert mon["requests"] == len(pairs) and mon["errors"] == 0 and mon["dropped"] == 0
    exp = expected_stats([(reference(base, 1, x), reference(base, 2, x)) for x in pairs])
    assert mon["count"] == exp["elements"] // 3
    got = mon["outputs"]["theta"]
    assert got["elements"] == exp["elements"] and got["nonfinite"] == 0
    for key in ("mean_abs_diff", "max_abs_diff", "rel_rms_diff"):
        assert got[key] == pytest.approx(exp[key], rel=1e-5), key
    lat = mon["development_latency_s"]
    assert lat["samples"] == mon["requests"] and 0 < lat["p50"] <= lat["p99"] < 5
    text = get(server, "/metrics")[1]
    line = 'gwinfer_shadow_mean_abs_diff{model="tiny",output="theta",production="1",development="2"} '
    assert float(text.split(line)[1].split()[0]) == pytest.approx(exp["mean_abs_diff"], rel=1e-6)
    assert f'gwinfer_shadow_requests_total{{model="tiny",production="1",development="2"}} {mon["requests"]}' in text
    assert (
        'gwinfer_shadow_development_latency_seconds{model="tiny",production="1",development="2",quantile="0.99"}'
    ) in text


def test_shadow_monitor_sampling_backlog_and_errors():
    class Dev:
        name, version = "m", 2

        def __init__(self):
            self.gate = threading.Event()

        def runner(self, inputs):
            self.gate.wait(5)
            if inputs["x"].sum() < 0:
                raise RuntimeError("boom\nsecond line")
            return {"y": inputs["x"] * 2}

    dev = Dev()
    mon = ShadowMonitor(fraction=0.5, max_pending=2)
    x = np.ones((1, 3), np.float32)
    queued = [mon.offer(dev, 1, {"x": x}, {"y": x}, 1) for _ in range(8)]  # 4 sampled, 2 fit, 2 dropped
    assert queued == [False, True, False, True, False, False, False, False]
    dev.gate.set()
    assert mon.wait_idle()
    assert not mon.offer(dev, 1, {"x": -x}, {"y": x}, 1)  # the 9th is not sampled, the 10th is (and fails)
    assert mon.offer(dev, 1, {"x": -x}, {"y": x}, 1)
    assert mon.wait_idle()
    snap = mon.snapshot("m", 1, 2)
    assert (snap["requests"], snap["count"], snap["errors"], snap["dropped"]) == (2, 2, 1, 2)
    assert snap["last_error"] == "RuntimeError: boom second line"
    assert snap["outputs"]["y"] == {
        "elements": 6,
        "mean_abs_diff": 1.0,
        "max_abs_diff": 1.0,
        "rel_rms_diff": 1.0,
        "nonfinite": 0,
    }
    assert 'gwinfer_shadow_errors_total{model="m",production="1",development="2"} 1' in mon.render()
    assert ShadowMonitor(fraction=0.0).offer(dev, 1, {"x": x}, {"y": x}, 1) is False
    with pytest.raises(GwinferError, match="fraction"):
        ShadowMonitor(fraction=1.5)
    parts = PairStats.compare({"y": np.array([1.0, np.nan])}, {"y": np.array([2.0, 1.0])})
    assert parts["y"] == (2, 1.0, 1.0, 1.0, 1.0, 1)
    mon.close()


# --- a failing or slow development version -----------------------------------------------------------
def test_failing_or_slow_development_never_affects_production(base, tmp_path):
    repo = make_repo(base, tmp_path, versions=(1, 2, 3), labels={"production": 1, "development": 3})
    with Server(repo) as server:
        c = httpclient.InferenceServerClient(server.url)
        for i in range(5):
            x = waveforms(2, seed=i)
            version, got = infer(c, x)
            assert version == "1"
            np.testing.assert_allclose(got, reference(base, 1, x), rtol=1e-6, atol=1e-6)
        mon = wait_requests(server, 5)
        assert mon["development"] == "3" and mon["errors"] == 5 and mon["requests"] == 0
        assert "\n" not in mon["last_error"] and mon["last_error"]
        text = get(server, "/metrics")[1]
        assert 'nv_inference_request_failure{model="tiny",version="1"}' not in text
        assert 'nv_inference_request_success{model="tiny",version="1"} 5' in text
        # a slow development version (1 s per call): production requests do not wait for it
        slow = server.state.models["tiny"][3]

        def runner(inputs):
            time.sleep(1.0)
            return {"theta": np.zeros((inputs["waveform"].shape[0], 3), np.float32)}

        slow.runner = runner
        server.state.shadow.max_pending = 2
        latencies = []
        t_all = time.perf_counter()
        for i in range(8):
            t0 = time.perf_counter()
            assert infer(c, waveforms(1, seed=i))[0] == "1"
            latencies.append(time.perf_counter() - t0)
        total = time.perf_counter() - t_all
        assert total < 4.0 and max(latencies) < 0.8, (total, latencies)
        mon = get(server, "/v2/models/tiny/monitor")[1]
        assert mon["dropped"] >= 4  # at most 2 pending: the rest is dropped, never queued without bound
        # promote refuses a version that cannot answer
        with pytest.raises(GwinferError, match="version 3 of model 'tiny' fails a test inference on zeros"):
            promote(repo, "tiny", 3)
        c.close()


# --- promote -----------------------------------------------------------------------------------------
def test_promote_refuses_with_one_line_reasons(base, labelled, tmp_path, capsys):
    server, c = labelled["server"], labelled["client"]
    repo, url = labelled["repo"], f"http://{server.url}"
    infer(c, waveforms(2, seed=7))
    mon = wait_requests(server, 1)
    labels_before = (repo / "tiny" / "labels.json").read_text()
    config_before = (repo / "tiny" / "config.pbtxt").read_text()
    for kwargs, match in (
        (dict(version=7), r"unknown version 7 of model 'tiny'; versions: \[1, 2\]"),
        (dict(version=2, max_mean_abs_diff=1.0), "need --url"),
        (dict(version=2, url=url, max_mean_abs_diff=1e-9), r"refusing: mean_abs_diff of output 'theta' is .* > 1e-09"),
        (dict(version=2, url=url, max_rel_rms_diff=1e-9), r"refusing: rel_rms_diff of output 'theta'"),
        (dict(version=2, url=url, min_count=10**6), rf"refusing: only {mon['count']} mirrored inference"),
        (dict(version=1, url=url, min_count=1, stage="development"), "apply to promotion to production"),
        (dict(version=1, stage="development"), "is the production version"),
        (dict(version=2, url="127.0.0.1:9", min_count=1), "cannot reach"),
        (dict(version=2, url="127.0.0.1:9"), "labels.json left unchanged: the server did not load"),
    ):
        with pytest.raises(GwinferError, match=match):
            promote(repo, kwargs.pop("model", "tiny"), kwargs.pop("version"), **kwargs)
    with pytest.raises(GwinferError, match="no model 'nope'"):
        promote(repo, "nope", 1)
    # the command line: exit status 2 and one line
    rc = main(
        [
            "promote",
            "--repo",
            str(repo),
            "--model",
            "tiny",
            "--version",
            "2",
            "--url",
            url,
            "--max-mean-abs-diff",
            "1e-9",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("gwinfer: error: refusing: mean_abs_diff")
    assert (repo / "tiny" / "labels.json").read_text() == labels_before
    assert (repo / "tiny" / "config.pbtxt").read_text() == config_before
    # the monitor check itself: errors and non-finite differences refuse
    with pytest.raises(GwinferError, match="failed on 2 mirrored request"):
        check_monitor(
            {"development": "2", "production": "1", "count": 5, "errors": 2, "last_error": "x"},
            "tiny",
            2,
            1,
            1,
            None,
            None,
        )
    with pytest.raises(GwinferError, match="non-finite"):
        check_monitor(
            {
                "development": "2",
                "production": "1",
                "count": 5,
                "errors": 0,
                "outputs": {"theta": {"nonfinite": 1, "mean_abs_diff": 0.0, "rel_rms_diff": 0.0}},
            },
            "tiny",
            2,
            1,
            1,
            1.0,
            None,
        )


def test_promotion_under_load_drops_nothing(base, tmp_path):
    repo = make_repo(base, tmp_path, versions=(1,), labels={"production": 1})
    with Server(repo, grpc_port=0) as server:
        url = f"http://{server.url}"
        c = httpclient.InferenceServerClient(server.url)
        assert infer(c, waveforms(1, seed=0))[0] == "1"
        # a new version appears while the server runs; label it development: the server loads it
        tmp = repo / "tiny" / ".incoming"
        shutil.copytree(base["repo"] / "tiny" / "2", tmp)
        tmp.rename(repo / "tiny" / "2")
        assert (
            main(
                [
                    "promote",
                    "--repo",
                    str(repo),
                    "--model",
                    "tiny",
                    "--version",
                    "2",
                    "--stage",
                    "development",
                    "--url",
                    url,
                ]
            )
            == 0
        )
        assert get(server, "/v2/models/tiny")[1]["labels"] == {"production": "1", "development": "2"}
        for i in range(4):
            assert infer(c, waveforms(2, seed=i))[0] == "1"
        assert wait_requests(server, 4)["requests"] == 4

        # 8 clients send continuously while promote switches production to version 2
        xs = [waveforms(1, seed=50 + i) for i in range(8)]
        refs = [{"1": reference(base, 1, x), "2": reference(base, 2, x)} for x in xs]
        stop, results, failures = threading.Event(), [], []

        def client(i: int) -> None:
            cl = httpclient.InferenceServerClient(server.url)
            while not stop.is_set():
                t_send = time.perf_counter()
                try:
                    version, got = infer(cl, xs[i])
                    ok = np.allclose(got, refs[i][version], rtol=1e-6, atol=1e-6)
                    results.append((t_send, version, ok))
                except Exception as err:  # noqa: BLE001
                    failures.append(repr(err))
            cl.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        time.sleep(0.8)
        out = promote(repo, "tiny", 2, url=url, min_count=4, max_mean_abs_diff=10.0)
        t_promoted = time.perf_counter()
        time.sleep(0.8)
        stop.set()
        for th in threads:
            th.join()
        assert not failures, failures[:3]
        assert all(ok for _, _, ok in results)  # each answer is the output of the version it names
        before = [v for t, v, _ in results if t < t_promoted]
        after = [v for t, v, _ in results if t > t_promoted]
        assert "1" in before and len(after) >= 8 and set(after) == {"2"}, (len(before), len(after), set(after))
        assert out["labels"]["production"] == 2 and "development" not in out["labels"]
        assert "production 1, development 2 -> production 2" in out["message"]

        assert read_labels(repo / "tiny") == Labels(2, None, out["labels"]["updated"])
        assert read_config(repo / "tiny")["version_policy"] == {"specific": {"versions": [2]}}
        assert get(server, "/v2/models/tiny/config")[1]["version_policy"] == {"specific": {"versions": [2]}}
        assert get(server, "/v2/models/tiny")[1]["labels"] == {"production": "2"}
        mon = get(server, "/v2/models/tiny/monitor")[1]
        assert mon["production"] == "2" and mon["development"] is None
        text = get(server, "/metrics")[1]
        failures_block = text.split("# TYPE nv_inference_request_failure counter")[1].split("#")[0]
        assert "nv_inference_request_failure" not in failures_block
        assert infer(c, waveforms(1, seed=3), "1")[0] == "1"  # the old version still answers when asked
        # roll back, keeping the previous production under shadow
        out = promote(repo, "tiny", 1, url=url, keep_previous=True)
        assert out["labels"]["production"] == 1 and out["labels"]["development"] == 2
        assert infer(c, waveforms(1, seed=4))[0] == "1"
        assert promote(repo, "tiny", 1)["changed"] is False
        c.close()


# --- streaming models: labels route new sequences, live ones stay where they started ------------------
def test_streaming_sequences_keep_their_version_across_a_promotion(base, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(base["stream"], repo)
    labels = repo / "tiny-stream" / "labels.json"
    labels.write_text('{"production": 1, "development": 2}')
    rng = np.random.default_rng(0)

    def step(c, seq: int, start=False, end=False, version=""):
        u = rng.standard_normal((1, 2, STRIDE)).astype(np.float32)
        t = httpclient.InferInput("update", list(u.shape), "FP32")
        t.set_data_from_numpy(u)
        res = c.infer(
            "tiny-stream", [t], model_version=version, sequence_id=seq, sequence_start=start, sequence_end=end
        )
        return res.get_response()["model_version"]

    with Server(repo) as server:
        c = httpclient.InferenceServerClient(server.url)
        assert step(c, 5, start=True) == "1" and step(c, 5) == "1"
        assert get(server, "/v2/models/tiny-stream/monitor")[1]["requests"] == 0  # sequences are not mirrored
        labels.write_text('{"production": 2}')
        assert post(server, "/v2/repository/models/tiny-stream/load")[0] == 200
        assert step(c, 5) == "1"  # the live sequence stays on version 1 ...
        assert step(c, 6, start=True) == "2"  # ... new ones start on the new production version
        with pytest.raises(InferenceServerException, match="not live"):
            step(c, 5, version="2")  # an explicit version is never redirected
        assert step(c, 5, end=True) == "1" and step(c, 6) == "2"
        with pytest.raises(InferenceServerException, match="not live"):
            step(c, 5)  # ended
        c.close()
