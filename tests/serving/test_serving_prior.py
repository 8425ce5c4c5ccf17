"""Served posteriors answer with draws inside their training prior, as ``gwinfer sample`` does (issue 14, row 23).

A tiny fitted (untrained) IAF on strain (2, 64) whose metadata records a training prior narrow enough that
about a third of its raw draws fall outside (m2 > m1 mostly) is exported and served on 127.0.0.1 by
``gwinfer serve``; tritonclient (HTTP and gRPC) is the client. References are independent of the serving
path: the exported graph run in-process on the same (strain, noise), and the prior's support written out
by hand (:func:`inside`).
"""

from __future__ import annotations

import http.client
import json
import shutil

import numpy as np
import pytest
from support import started_triton, usable_triton

torch = pytest.importorskip("torch")
pytest.importorskip("zuko")
pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("bilby")
grpcclient = pytest.importorskip("tritonclient.grpc")
httpclient = pytest.importorskip("tritonclient.http")

from tritonclient.utils import InferenceServerException  # noqa: E402

from gwinfer.errors import GwinferError  # noqa: E402
from gwinfer.models import build_estimator, save_estimator  # noqa: E402
from gwinfer.serving.client import posterior_draws, sample_posterior  # noqa: E402
from gwinfer.serving.export.entry import export_info  # noqa: E402
from gwinfer.serving.export.model import export_model  # noqa: E402
from gwinfer.serving.export.posterior import run_graph  # noqa: E402
from gwinfer.serving.export.prior import PRIOR_FILE, exported_prior  # noqa: E402
from gwinfer.serving.repository.config import config_parameters, format_config, parse_config, read_config  # noqa: E402
from gwinfer.serving.runtime.versions import load_repository  # noqa: E402
from gwinfer.serving.server.run import Server  # noqa: E402

X_SHAPE = (2, 64)
NAMES = ["mass_1", "mass_2", "luminosity_distance"]
D = len(NAMES)
PRIOR = """# a narrow test prior: the tiny model's draws (m1 ~ 30 +- 5, m2 ~ 25 +- 4, dL ~ 800 +- 200) often leave it
mass_1 = Uniform(name='mass_1', minimum=20, maximum=40)
mass_2 = Uniform(name='mass_2', minimum=15, maximum=35)
mass_ratio = Constraint(name='mass_ratio', minimum=0, maximum=1)
luminosity_distance = PowerLaw(name='luminosity_distance', alpha=2, minimum=400, maximum=1200)
geocent_time = Uniform(name='geocent_time', minimum=0.1, maximum=0.2)
"""
NARROW = PRIOR.replace("minimum=400, maximum=1200", "minimum=5000, maximum=5001")  # nothing lands there


def inside(s: np.ndarray) -> np.ndarray:
    """PRIOR's support written out: samples (..., 3) -> mask (...)."""
    m1, m2, dl = s[..., 0], s[..., 1], s[..., 2]
    return (20 <= m1) & (m1 <= 40) & (15 <= m2) & (m2 <= 35) & (m2 < m1) & (400 <= dl) & (dl <= 1200)


def tiny_iaf():
    torch.manual_seed(0)
    cfg = {"embedding": {"kind": "svd", "context_dim": 8, "hidden": [16], "components": 8}}
    model = build_estimator({"kind": "iaf", "config": {**cfg, "transforms": 2, "hidden": [16, 16]}}, D, X_SHAPE)
    theta = torch.tensor([30.0, 25.0, 800.0]) + torch.tensor([5.0, 4.0, 200.0]) * torch.randn(256, D)
    model.fit_standardization(theta, 3.0 * torch.randn(256, *X_SHAPE))
    return model.eval()


def strain(batch: int, seed: int) -> np.ndarray:
    return (3.0 * np.random.default_rng(seed).standard_normal((batch, *X_SHAPE))).astype(np.float32)


def noise(batch: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, n, D)).astype(np.float32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("served-prior")
    repo = root / "repo"
    est = tiny_iaf()
    files = {
        name: save_estimator(root / name / "model.pt", est, metadata={"names": NAMES, **extra})
        for name, extra in (("prior", {"prior_text": PRIOR}), ("narrow", {"prior_text": NARROW}), ("plain", {}))
    }
    for name, path in files.items():
        export_model(path, repo, name=name)
    export_model(files["prior"], repo, name="prior-ts", fmt="torchscript")
    export_model(files["prior"], repo, name="prior-stream", stream_stride=32)
    export_model(files["narrow"], repo, name="narrow-stream", stream_stride=64)
    # what a real Triton serves: the graph alone, the prior only in config.pbtxt (no posterior.prior record)
    export_model(files["prior"], repo, name="graph-only")
    info_path = repo / "graph-only" / "1" / "gwinfer.json"
    info = json.loads(info_path.read_text())
    info["posterior"]["prior"] = None
    info_path.write_text(json.dumps(info))
    server = Server(repo, grpc_port=0).start()
    clients = {
        "http": httpclient.InferenceServerClient(server.url),
        "grpc": grpcclient.InferenceServerClient(server.grpc_url),
    }
    yield {"root": root, "repo": repo, "est": est, "files": files, "server": server, "clients": clients}
    for c in clients.values():
        c.close()
    server.stop()


def infer(client, model: str, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """(samples, log_prob, response parameters) of one request."""
    grpc = isinstance(client, grpcclient.InferenceServerClient)
    module = grpcclient if grpc else httpclient
    names = ("strain__0", "noise__1", "samples__0", "log_prob__1") if model.endswith("-ts") else None
    names = names or ("strain", "noise", "samples", "log_prob")
    inputs = []
    for name, arr in zip(names[:2], (x, z)):
        t = module.InferInput(name, list(arr.shape), "FP32")
        t.set_data_from_numpy(arr)
        inputs.append(t)
    res = client.infer(model, inputs, outputs=[module.InferRequestedOutput(n) for n in names[2:]])
    if grpc:
        params = {k: getattr(v, v.WhichOneof("parameter_choice")) for k, v in res.get_response().parameters.items()}
    else:
        params = res.get_response().get("parameters") or {}
    return res.as_numpy(names[2]), res.as_numpy(names[3]), params


def graph(setup, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exported graph run in-process (no server): the raw draws."""
    return run_graph(setup["repo"] / "plain" / "1" / "model.onnx", x, z)


def binomial_tolerance(p: float, n: int) -> float:
    return 5 * np.sqrt(p * (1 - p) / n) + 0.01


# --- export ----------------------------------------------------------------------------------------------
def test_export_carries_the_prior(setup, tmp_path):
    repo = setup["repo"]
    vdir = repo / "prior" / "1"
    assert (vdir / PRIOR_FILE).read_text() == PRIOR
    record = export_info(vdir)["posterior"]["prior"]
    assert record["file"] == PRIOR_FILE and record["time_offset"] == 0.0 and record["parameters"] == NAMES
    assert record["tensors"] == {"input": "strain", "noise": "noise", "samples": "samples", "log_prob": "log_prob"}
    assert export_info(repo / "prior-ts" / "1")["posterior"]["prior"]["tensors"]["noise"] == "noise__1"
    cfg = read_config(repo / "prior")
    assert config_parameters(cfg) == {"parameter_names": ",".join(NAMES), "prior": PRIOR, "prior_time_offset": "0.0"}
    assert parse_config(format_config(cfg)) == cfg  # the multi-line text survives config.pbtxt
    # a model without a prior is exported as before: no file, no parameters
    assert not (repo / "plain" / "1" / PRIOR_FILE).exists()
    assert export_info(repo / "plain" / "1")["posterior"]["prior"] is None
    assert config_parameters(read_config(repo / "plain")) == {"parameter_names": ",".join(NAMES)}
    # every version of a name has the one prior of its config
    with pytest.raises(GwinferError, match="already holds a posterior with another training prior"):
        export_model(setup["files"]["narrow"], repo, name="prior")
    with pytest.raises(GwinferError, match="already holds a posterior with a training prior .this one has none"):
        export_model(setup["files"]["plain"], repo, name="prior")
    with pytest.raises(GwinferError, match="no training prior .this one has one"):
        export_model(setup["files"]["prior"], repo, name="plain")
    # a simulation's named prior (no prior_text) with its geocent_time offset; a prior lacking a column
    sim = {"simulation": {"prior": "gw5d", "time_offset": 0.25}}
    prior = exported_prior(sim, ["mass_1", "mass_2", "luminosity_distance", "geocent_time", "phase"])
    assert prior.text.startswith("# gw5d") and prior.time_offset == 0.25
    assert prior.load()["geocent_time"].minimum == pytest.approx(0.65 + 0.25)
    with pytest.raises(GwinferError, match=r"^the model's training prior cannot be exported: .*\['chi_1'\]") as err:
        exported_prior({"prior_text": PRIOR}, ["mass_1", "chi_1", "luminosity_distance"])
    assert "\n" not in str(err.value)


def test_a_missing_or_altered_prior_makes_the_version_unavailable(setup, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(setup["repo"] / "prior", repo / "prior")
    shutil.copytree(setup["repo"] / "prior", repo / "gone")
    (repo / "prior" / "1" / PRIOR_FILE).write_text(PRIOR.replace("1200", "1300"))
    (repo / "gone" / "1" / PRIOR_FILE).unlink()
    models = load_repository(repo)
    assert models["prior"][1].state == "UNAVAILABLE" and "does not match the sha256" in models["prior"][1].reason
    assert models["gone"][1].state == "UNAVAILABLE" and "does not exist" in models["gone"][1].reason


# --- gwinfer serve ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["prior", "prior-ts"])
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_served_draws_are_inside_the_prior(setup, protocol, model):
    x, z = strain(2, 1), noise(2, 2000, 2)
    raw_s, raw_lp = graph(setup, x, z)
    raw_in = inside(raw_s.astype(np.float64))
    p_raw = float(raw_in.mean())
    assert 0.3 < p_raw < 0.9, p_raw  # the prior forces rejections, and they can be replaced
    s, lp, params = infer(setup["clients"][protocol], model, x, z)
    assert s.shape == (2, 2000, D) and lp.shape == (2, 2000) and s.dtype == np.float32
    assert np.all(inside(s.astype(np.float64)))  # every returned draw is inside the prior
    # the request's own draws inside the prior are kept, in order; the rest are replacements
    for i in range(2):
        k = int(raw_in[i].sum())
        np.testing.assert_allclose(s[i, :k], raw_s[i][raw_in[i]], rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(lp[i, :k], raw_lp[i][raw_in[i]], rtol=1e-5, atol=1e-4)
    # each log_prob is the model's density of its sample, replacements included (the density direction)
    with torch.no_grad():
        for i in range(2):
            context = torch.from_numpy(x[i : i + 1]).expand(2000, *X_SHAPE)
            direct = setup["est"].log_prob(torch.from_numpy(s[i].copy()), context)
            np.testing.assert_allclose(lp[i], direct.numpy(), atol=2e-3)
    # the accepted fraction is reported and agrees with an independent count on the raw draws
    assert params["prior_draws"] > 4000 and params["prior_inside"] >= 4000
    assert params["prior_acceptance"] == pytest.approx(params["prior_inside"] / params["prior_draws"])
    assert abs(params["prior_acceptance"] - p_raw) < binomial_tolerance(p_raw, 4000)
    # a function of the request alone: the same request gives the same draws
    again = infer(setup["clients"][protocol], model, x, z)
    assert np.array_equal(again[0], s) and np.array_equal(again[1], lp) and again[2] == params


def test_a_model_without_a_prior_is_unchanged(setup):
    x, z = strain(3, 3), noise(3, 500, 4)
    raw_s, raw_lp = graph(setup, x, z)
    assert not np.all(inside(raw_s.astype(np.float64)))  # the same graph: some draws outside any such prior
    for protocol in ("http", "grpc"):
        s, lp, params = infer(setup["clients"][protocol], "plain", x, z)
        np.testing.assert_allclose(s, raw_s, rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(lp, raw_lp, rtol=1e-6, atol=1e-5)
        assert not any(k.startswith("prior") for k in params)
    draws = posterior_draws(setup["server"].url, "plain", x[0], 500, seed=4)
    assert draws.prior == "none" and draws.acceptance == 1.0
    np.testing.assert_allclose(draws.columns["mass_2"], graph(setup, x[:1], noise(1, 500, 4))[0][0, :, 1], atol=1e-4)


def _post(server, model: str, x: np.ndarray, z: np.ndarray) -> tuple[int, str]:
    body = {
        "inputs": [
            {"name": "strain", "datatype": "FP32", "shape": list(x.shape), "data": x.reshape(-1).tolist()},
            {"name": "noise", "datatype": "FP32", "shape": list(z.shape), "data": z.reshape(-1).tolist()},
        ]
    }
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request("POST", f"/v2/models/{model}/infer", body=json.dumps(body))
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def _metric(text: str, name: str, model: str) -> float:
    line = next(ln for ln in text.splitlines() if ln.startswith(f'{name}{{model="{model}",version="1"}}'))
    return float(line.rsplit(" ", 1)[1])


def test_too_few_draws_inside_is_422_and_counted(setup):
    server = setup["server"]
    x, z = strain(1, 5), noise(1, 50, 6)
    status, text = _post(server, "narrow", x, z)
    assert status == 422, (status, text)
    message = json.loads(text)["error"]
    assert "inside the training prior" in message and "outside what the model was trained on" in message
    assert "\n" not in message
    with pytest.raises(InferenceServerException, match="inside the training prior") as err:
        infer(setup["clients"]["grpc"], "narrow", x, z)
    assert "INVALID_ARGUMENT" in str(err.value.status())
    with pytest.raises(GwinferError, match="inside the training prior"):
        sample_posterior(server.url, "narrow", x[0], 50, seed=1)
    # the server goes on; the metrics count the draws and the refusals
    status, text = _post(server, "prior", x, z)
    assert status == 200 and json.loads(text)["parameters"]["prior_inside"] >= 50
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", "/metrics")
    metrics = conn.getresponse().read().decode()
    conn.close()
    assert _metric(metrics, "gwinfer_prior_refusals_total", "narrow") >= 3
    drawn = _metric(metrics, "gwinfer_prior_draws_total", "prior")
    assert 0 < _metric(metrics, "gwinfer_prior_inside_total", "prior") < drawn
    assert "gwinfer_prior_draws_total" in metrics and 'model="plain"' not in metrics.split("gwinfer_prior_draws")[1]


def test_streaming_entries_apply_the_prior_to_full_windows(setup):
    client = setup["clients"]["http"]

    def step(model, update, z, **seq):
        ins = []
        for name, a in (("update", update), ("noise", z)):
            t = httpclient.InferInput(name, list(a.shape), "FP32")
            t.set_data_from_numpy(a)
            ins.append(t)
        res = client.infer(model, ins, **seq)
        return res.as_numpy("samples"), res.as_numpy("ready")[0, 0], res.get_response().get("parameters") or {}

    x, z = strain(1, 9), noise(1, 1000, 10)
    s, ready, params = step("prior-stream", x[:, :, :32], z, sequence_id=5, sequence_start=True)
    assert not ready and "prior_acceptance" not in params  # a window still holding zeros: the graph's draws
    s, ready, params = step("prior-stream", x[:, :, 32:], z, sequence_id=5, sequence_end=True)
    assert ready and np.all(inside(s.astype(np.float64))) and 0.3 < params["prior_acceptance"] < 1
    plain, _, plain_params = infer(client, "prior", x, z)  # the plain entry on the same window and noise
    assert np.array_equal(s, plain) and params["prior_acceptance"] == plain_params["prior_acceptance"]
    # too few draws inside: 422 for that window, and the sequence goes on (its window advanced)
    with pytest.raises(InferenceServerException, match="inside the training prior") as err:
        step("narrow-stream", x, z, sequence_id=6, sequence_start=True)
    assert err.value.status() == "422"
    with pytest.raises(InferenceServerException, match="inside the training prior"):
        step("narrow-stream", x, z, sequence_id=6, sequence_end=True)  # not "sequence 6 is not live"


# --- the client ------------------------------------------------------------------------------------------
def test_sample_posterior_applies_the_prior_on_any_server(setup):
    url, x, n = setup["server"].url, strain(1, 7)[0], 3000
    z = np.random.default_rng(11).standard_normal((1, n, D)).astype(np.float32)  # the client's first noise
    raw_s, _ = graph(setup, x[None], z)
    raw_in = inside(raw_s[0].astype(np.float64))
    k, p_raw = int(raw_in.sum()), float(raw_in.mean())
    # gwinfer serve applies the prior and says so
    by_server = posterior_draws(url, "prior", x, n, seed=11)
    # a server running only the graph (as a real Triton): the client applies the prior of the config
    by_client = posterior_draws(url, "graph-only", x, n, seed=11)
    assert (by_server.prior, by_client.prior) == ("server", "client")
    for draws in (by_server, by_client):
        s = np.stack([draws.columns[name] for name in NAMES], axis=-1)
        assert s.shape == (n, D) and np.all(inside(s.astype(np.float64)))
        np.testing.assert_allclose(s[:k], raw_s[0][raw_in], rtol=1e-5, atol=1e-3)  # own draws kept in order
        assert abs(draws.acceptance - p_raw) < binomial_tolerance(p_raw, n)
    # seeded: the same call gives the same draws; the client's draws do not depend on the request split
    again = sample_posterior(url, "prior", x, n, seed=11)
    assert all(np.array_equal(again[name], by_server.columns[name]) for name in NAMES)
    split = posterior_draws(url, "graph-only", x, n, seed=11, max_request_values=999)
    assert all(np.array_equal(split.columns[name], by_client.columns[name]) for name in NAMES)
    assert split.acceptance == by_client.acceptance
    # a batch of events
    cols, lp = sample_posterior(url, "graph-only", np.stack([x, 0.5 * x]), 400, seed=2, return_log_prob=True)
    assert cols["mass_1"].shape == (2, 400) and lp.shape == (2, 400)
    assert np.all(inside(np.stack([cols[name] for name in NAMES], axis=-1).astype(np.float64)))


# --- a real Triton (python backend), skipped when none can run here ---------------------------------------
@pytest.mark.triton
def test_real_triton_with_the_client_applying_the_prior(setup, tmp_path):
    install = usable_triton()
    repo = tmp_path / "triton"
    export_model(setup["files"]["prior"], repo, name="prior", backend="python")
    triton = started_triton(repo, install, strict=False)
    try:
        client = httpclient.InferenceServerClient(triton.url)
        params = config_parameters(client.get_model_config("prior"))
        assert params["prior"] == PRIOR and params["prior_time_offset"] == "0.0"  # Triton reports our prior
        client.close()
        x = strain(1, 8)[0]
        on_triton = posterior_draws(triton.url, "prior", x, 1000, seed=3)
        on_ours = posterior_draws(setup["server"].url, "graph-only", x, 1000, seed=3)  # the same client path
        assert on_triton.prior == "client" and on_triton.acceptance == pytest.approx(on_ours.acceptance, abs=1e-3)
        for name in NAMES:
            np.testing.assert_allclose(on_triton.columns[name], on_ours.columns[name], rtol=1e-5, atol=1e-4)
        assert np.all(inside(np.stack([on_triton.columns[k] for k in NAMES], axis=-1).astype(np.float64)))
    finally:
        triton.stop()
