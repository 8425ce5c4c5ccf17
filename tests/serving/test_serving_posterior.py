"""Exported posterior estimators (embedding + flow sampling, noise as an input) in the repository and served.

Tiny fitted (untrained) iaf / maf / gaussian estimators on strain-shaped x (2, 64) with an SVD embedding
are saved as ``save_estimator`` files with parameter names and exported; the exported graph, gwinfer
serve over HTTP and gRPC, ``sample_posterior`` and (when one runs here) a real Triton must give the torch
numbers for the same (strain, noise).
"""

from __future__ import annotations

import argparse
import http.client
import json

import numpy as np
import pytest
from support import started_triton, usable_triton

torch = pytest.importorskip("torch")
pytest.importorskip("zuko")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
grpcclient = pytest.importorskip("tritonclient.grpc")
httpclient = pytest.importorskip("tritonclient.http")

from tritonclient.utils import InferenceServerException  # noqa: E402

from gwinfer.errors import GwinferError  # noqa: E402
from gwinfer.models import (  # noqa: E402
    build_estimator,
    is_posterior_file,  # noqa: E402
    save_estimator,
)
from gwinfer.serving.client import ServedModel, sample_posterior  # noqa: E402
from gwinfer.serving.export.entry import export_info  # noqa: E402
from gwinfer.serving.export.model import export_model  # noqa: E402
from gwinfer.serving.export.posterior import NoiseSampler, run_graph  # noqa: E402
from gwinfer.serving.repository.config import config_parameters, format_config, parse_config, read_config  # noqa: E402
from gwinfer.serving.server.run import Server  # noqa: E402

X_SHAPE = (2, 64)
D = 3
NAMES = ["mass_1", "mass_2", "luminosity_distance"]
KINDS = ["iaf", "maf", "gaussian"]
TOL = dict(rtol=1e-5, atol=1e-5)
META = {
    "names": NAMES,
    "provenance": {"kind": "posterior-model", "config": {"experiment": "test"}},
    "training": {"best_val_loss": 1.5, "best_epoch": 3},
}


def tiny_estimator(kind: str, seed: int = 0, x_shape=X_SHAPE, theta_dim: int = D):
    """A fitted, untrained estimator; theta standardisation far from identity (physical units matter)."""
    torch.manual_seed(seed)
    cfg: dict = {"embedding": {"kind": "svd", "context_dim": 8, "hidden": [16], "components": 8}}
    if kind == "gaussian":
        cfg["hidden"] = [16]
    elif kind in ("iaf", "maf", "nsf"):
        cfg.update(transforms=2, hidden=[16, 16])
    else:
        cfg = {
            "embedding": {"kind": "mlp", "context_dim": 8, "hidden": [16]},
            "latent_dim": 2,
            "hidden": [16],
            "is_samples": 8,
            "flow_transforms": 1,
            "flow_hidden": [16],
            "kl_schedule": "constant",
        }
    model = build_estimator({"kind": kind, "config": cfg}, theta_dim, x_shape)
    theta = torch.tensor([30.0, 25.0, 800.0])[:theta_dim] + torch.tensor([5.0, 4.0, 200.0])[:theta_dim] * torch.randn(
        256, theta_dim
    )
    model.fit_standardization(theta, 3.0 * torch.randn(256, *x_shape))
    return model.eval()


def strain(batch: int, seed: int) -> np.ndarray:
    return (3.0 * np.random.default_rng(seed).standard_normal((batch, *X_SHAPE))).astype(np.float32)


def noise(batch: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, n, D)).astype(np.float32)


def torch_sample(model, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        s, lp = NoiseSampler(model)(torch.from_numpy(x), torch.from_numpy(z))
    return s.numpy(), lp.numpy()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("posterior-serve")
    repo = root / "repo"
    models, files = {}, {}
    for kind in KINDS:
        models[kind] = tiny_estimator(kind)
        files[kind] = save_estimator(root / kind / "model.pt", models[kind], metadata=META)
        export_model(files[kind], repo)  # name: the folder's, ONNX
    export_model(files["iaf"], repo, name="iaf-ts", fmt="torchscript")
    server = Server(repo, grpc_port=0).start()
    clients = {
        "http": httpclient.InferenceServerClient(server.url),
        "grpc": grpcclient.InferenceServerClient(server.grpc_url),
    }
    yield {"root": root, "repo": repo, "models": models, "files": files, "server": server, "clients": clients}
    for c in clients.values():
        c.close()
    server.stop()


def infer(client, model: str, x: np.ndarray, z: np.ndarray, names=("strain", "noise", "samples", "log_prob")):
    module = grpcclient if isinstance(client, grpcclient.InferenceServerClient) else httpclient
    inputs = []
    for name, arr in zip(names[:2], (x, z)):
        t = module.InferInput(name, list(arr.shape), "FP32")
        t.set_data_from_numpy(arr)
        inputs.append(t)
    outs = [module.InferRequestedOutput(n) for n in names[2:]]
    res = client.infer(model, inputs, outputs=outs)
    return res.as_numpy(names[2]), res.as_numpy(names[3])


# --- export ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_export_layout_and_graph_equals_torch(setup, kind):
    repo, model = setup["repo"], setup["models"][kind]
    assert is_posterior_file(setup["files"][kind])
    cfg = read_config(repo / kind)
    assert cfg["max_batch_size"] == 8 and cfg["platform"] == "onnxruntime_onnx"
    assert [(t["name"], t["dims"]) for t in cfg["input"]] == [("strain", list(X_SHAPE)), ("noise", [-1, D])]
    assert [(t["name"], t["dims"]) for t in cfg["output"]] == [("samples", [-1, D]), ("log_prob", [-1])]
    assert config_parameters(cfg) == {"parameter_names": ",".join(NAMES)}
    assert parse_config(format_config(cfg)) == cfg
    info = export_info(repo / kind / "1")
    assert info["posterior"]["parameter_names"] == NAMES and info["posterior"]["kind"] == kind
    assert info["source_metadata"]["provenance"] == META["provenance"]
    assert info["source_metadata"]["training"] == META["training"]
    check = info["check"]
    assert check["samples_max_abs_diff"] < 1e-4 and check["log_prob_max_abs_diff"] < 1e-4
    assert check["sampler_samples_max_abs_diff"] < 1e-4 and check["sampler_log_prob_max_abs_diff"] < 1e-4

    # onnxruntime == torch on shapes other than the traced one (dynamic batch and sample axes)
    for batch, n in ((1, 1), (4, 257)):
        x, z = strain(batch, 10 + n), noise(batch, n, 20 + n)
        got = run_graph(repo / kind / "1" / "model.onnx", x, z)
        ref = torch_sample(model, x, z)
        assert got[0].shape == (batch, n, D) and got[1].shape == (batch, n)
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=1e-4 * float(model.theta_scale.std.max()))
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-5, atol=1e-4)

    # the noise is mapped as the estimator samples: seeding torch makes sample_and_log_prob draw z = randn(n, B, D)
    x = torch.from_numpy(strain(2, 1))
    torch.manual_seed(7)
    z = torch.randn(50, 2, D).transpose(0, 1).contiguous()
    torch.manual_seed(7)
    own_s, own_lp = model.sample_and_log_prob(x, 50)
    s, lp = torch_sample(model, x.numpy(), z.numpy())
    np.testing.assert_allclose(s, own_s.numpy(), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(lp, own_lp.numpy(), rtol=1e-6, atol=1e-5)
    # and log_prob is the physical density of the sample (the density direction, evaluated independently)
    with torch.no_grad():
        direct = model.log_prob(torch.from_numpy(s[0]), x[:1].expand(50, *X_SHAPE)).numpy()
    np.testing.assert_allclose(lp[0], direct, atol=2e-3)


def test_torchscript_export_and_nsf(setup, tmp_path):
    info = export_info(setup["repo"] / "iaf-ts" / "1")
    assert [t["name"] for t in info["inputs"]] == ["strain__0", "noise__1"]
    assert [t["name"] for t in info["outputs"]] == ["samples__0", "log_prob__1"]
    x, z = strain(3, 5), noise(3, 11, 6)
    got = run_graph(setup["repo"] / "iaf-ts" / "1" / "model.pt", x, z)
    ref = torch_sample(setup["models"]["iaf"], x, z)
    np.testing.assert_allclose(got[0], ref[0], **TOL)
    np.testing.assert_allclose(got[1], ref[1], **TOL)
    # NSF (rational-quadratic splines) exports too; flat features give a "features" input
    torch.manual_seed(3)
    nsf = build_estimator(
        {
            "kind": "nsf",
            "config": {
                "embedding": {"kind": "mlp", "context_dim": 4, "hidden": [8]},
                "transforms": 1,
                "hidden": [8],
                "bins": 4,
            },
        },
        2,
        5,
    )
    nsf.fit_standardization(torch.randn(64, 2), torch.randn(64, 5))
    dest = export_model(save_estimator(tmp_path / "nsf.pt", nsf.eval()), tmp_path / "repo", max_batch_size=2)
    info = export_info(dest)
    assert info["posterior"]["parameter_names"] == ["theta_0", "theta_1"] and info["max_abs_diff"] < 1e-4
    assert [t["name"] for t in info["inputs"]] == ["features", "noise"]
    assert read_config(dest.parent)["max_batch_size"] == 2


def test_refusals_are_one_line(setup, tmp_path):
    for kind in ("cvae", "cvae_plus"):
        path = save_estimator(tmp_path / f"{kind}.pt", tiny_estimator(kind, x_shape=(5,), theta_dim=2))
        with pytest.raises(GwinferError, match=f"^{kind} posteriors cannot be exported: .*importance-sampled") as err:
            export_model(path, tmp_path / "repo")
        assert "\n" not in str(err.value)
    unfitted = build_estimator(setup["models"]["maf"].spec())
    with pytest.raises(GwinferError, match="not standardised"):
        export_model(save_estimator(tmp_path / "unfitted.pt", unfitted), tmp_path / "repo")
    with pytest.raises(GwinferError, match="streaming"):
        export_model(setup["files"]["iaf"], tmp_path / "repo", stream_stride=4, fmt="torchscript")  # ONNX only
    bad = save_estimator(tmp_path / "bad.pt", setup["models"]["iaf"], metadata={"names": ["a,b", "c", "d"]})
    with pytest.raises(GwinferError, match="without commas"):
        export_model(bad, tmp_path / "repo")
    other = save_estimator(tmp_path / "iaf" / "model.pt", setup["models"]["iaf"], metadata={"names": ["a", "b", "c"]})
    export_model(setup["files"]["iaf"], tmp_path / "repo2")
    with pytest.raises(GwinferError, match="already holds a posterior with parameter_names"):
        export_model(other, tmp_path / "repo2")  # same name and tensors, other columns: refused


def test_config_parameters_parse_and_format():
    text = (
        'name: "m"\nplatform: "onnxruntime_onnx"\n'
        'parameters { key: "intra_op_thread_count" value: { string_value: "2" } }\n'
        'parameters [ { key: "parameter_names", value { string_value: "a,b" } } ]\n'
    )
    cfg = parse_config(text)
    assert cfg["parameters"] == {
        "intra_op_thread_count": {"string_value": "2"},
        "parameter_names": {"string_value": "a,b"},
    }
    assert config_parameters(cfg) == {"intra_op_thread_count": "2", "parameter_names": "a,b"}
    assert parse_config(format_config(cfg)) == cfg
    assert 'parameters {\n  key: "parameter_names"\n  value {\n    string_value: "a,b"' in format_config(cfg)
    with pytest.raises(GwinferError, match="key and a value"):
        parse_config('parameters { name: "x" }')


def test_cli_export_posterior(setup, tmp_path, capsys):
    from gwinfer.cli.serving import add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["export", "--model", str(setup["files"]["maf"].parent), "--repo", str(tmp_path / "r"), "--backend", "python"]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "exported maf version 1" in out and "maf posterior of mass_1, mass_2, luminosity_distance" in out
    assert read_config(tmp_path / "r" / "maf")["backend"] == "python"
    assert (tmp_path / "r" / "maf" / "1" / "model.py").is_file()


# --- gwinfer serve ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [*KINDS, "iaf-ts"])
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_served_outputs_equal_torch(setup, kind, protocol):
    model = setup["models"]["iaf" if kind == "iaf-ts" else kind]
    names = (
        ("strain__0", "noise__1", "samples__0", "log_prob__1")
        if kind == "iaf-ts"
        else ("strain", "noise", "samples", "log_prob")
    )
    x, z = strain(2, 30), noise(2, 100, 31)
    s, lp = infer(setup["clients"][protocol], kind, x, z, names)
    ref = torch_sample(model, x, z)
    assert s.dtype == np.float32 and s.shape == (2, 100, D) and lp.shape == (2, 100)
    np.testing.assert_allclose(s, ref[0], rtol=1e-5, atol=1e-4 * float(model.theta_scale.std.max()))
    np.testing.assert_allclose(lp, ref[1], rtol=1e-5, atol=1e-4)


def test_config_endpoints_report_parameter_names(setup):
    http_cfg = setup["clients"]["http"].get_model_config("iaf")
    grpc_cfg = setup["clients"]["grpc"].get_model_config("iaf", as_json=True)["config"]
    for cfg in (http_cfg, grpc_cfg):
        assert cfg["parameters"] == {"parameter_names": {"string_value": ",".join(NAMES)}}
    with ServedModel(setup["server"].url, "iaf") as m:
        assert m.parameter_names == NAMES
        assert m.inputs == {"strain": ("FP32", [-1, *X_SHAPE]), "noise": ("FP32", [-1, -1, D])}


def test_sample_posterior_client(setup):
    model, url = setup["models"]["iaf"], setup["server"].url
    x = strain(1, 40)[0]
    n = 4000
    cols, lp = sample_posterior(url, "iaf", x, n, seed=5, return_log_prob=True)
    assert list(cols) == NAMES and all(v.shape == (n,) for v in cols.values()) and lp.shape == (n,)
    z = np.random.default_rng(5).standard_normal((1, n, D)).astype(np.float32)
    ref_s, ref_lp = torch_sample(model, x[None], z)
    for i, name in enumerate(NAMES):
        np.testing.assert_allclose(cols[name], ref_s[0, :, i], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(lp, ref_lp[0], rtol=1e-5, atol=1e-4)
    # the split into requests does not change the draws; a batch of events gives (B, n) columns
    small = sample_posterior(url, "iaf", x, n, seed=5, max_request_values=1000)
    assert all(np.array_equal(small[k], cols[k]) for k in NAMES)
    with ServedModel(url, "iaf") as served:  # an open client is reused (one request per call)
        again = sample_posterior(served, "iaf", x, n, seed=5)
        assert all(np.array_equal(again[k], cols[k]) for k in NAMES)
    batch = sample_posterior(url, "iaf", np.stack([x, 2 * x]), 300, seed=1)
    assert batch["mass_1"].shape == (2, 300)
    # statistics agree with the estimator's own sampler (torch RNG, other draws): MC error only
    with torch.no_grad():
        own = model.sample(torch.from_numpy(x), n).numpy()
    for i, name in enumerate(NAMES):
        sd = own[:, i].std()
        assert abs(cols[name].mean() - own[:, i].mean()) < 5 * sd * np.sqrt(2 / n)
        assert abs(cols[name].std() / sd - 1) < 0.1
    with pytest.raises(GwinferError, match="strain has shape"):
        sample_posterior(url, "iaf", x[:, :10], 5)


def _raw_infer(server, model: str, inputs: list[tuple[str, list[int]]]) -> tuple[int, str]:
    body = {"inputs": [{"name": n, "datatype": "FP32", "shape": s, "data": [0.0] * int(np.prod(s))} for n, s in inputs]}
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("POST", f"/v2/models/{model}/infer", body=json.dumps(body))
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_bad_inputs_are_400_and_server_goes_on(setup):
    server = setup["server"]
    cases = [
        ([("strain", [1, *X_SHAPE]), ("noise", [1, 4, D + 1])], "noise"),  # wrong D
        ([("strain", [1, 2, 63]), ("noise", [1, 4, D])], "strain"),  # wrong strain shape
        ([("strain", [1, *X_SHAPE]), ("noise", [1, 4])], "noise"),  # noise without the sample axis
        ([("strain", [2, *X_SHAPE]), ("noise", [1, 4, D])], "same batch size"),
        ([("strain", [9, *X_SHAPE]), ("noise", [9, 1, D])], "batch in [1, 8]"),
        ([("strain", [1, *X_SHAPE])], "missing input"),
    ]
    for inputs, match in cases:
        status, text = _raw_infer(server, "iaf", inputs)
        assert status == 400 and match in text, (inputs, status, text)
    with pytest.raises(InferenceServerException, match="noise"):
        infer(setup["clients"]["grpc"], "iaf", strain(1, 0), np.zeros((1, 4, D + 1), np.float32))
    s, _ = infer(setup["clients"]["http"], "iaf", strain(1, 0), noise(1, 3, 0))
    assert s.shape == (1, 3, D) and np.all(np.isfinite(s))


# --- a real Triton (python backend), skipped when none can run here ---------------------------------------
@pytest.mark.triton
def test_real_triton_serves_the_posterior(setup, tmp_path):
    install = usable_triton()
    repo = tmp_path / "triton"
    export_model(setup["files"]["iaf"], repo, backend="python")
    triton = started_triton(repo, install, strict=False)
    clients = {
        "http": httpclient.InferenceServerClient(triton.url),
        "grpc": grpcclient.InferenceServerClient(triton.grpc_url),
    }
    try:
        index = {e["name"]: e for e in clients["http"].get_model_repository_index()}
        assert index["iaf"].get("state") == "READY", f"Triton did not load the posterior: {index['iaf']}"
        x, z = strain(3, 50), noise(3, 200, 51)
        ref = torch_sample(setup["models"]["iaf"], x, z)
        gw = infer(setup["clients"]["http"], "iaf", x, z)
        for protocol in ("http", "grpc"):
            s, lp = infer(clients[protocol], "iaf", x, z)
            np.testing.assert_allclose(s, gw[0], **TOL)
            np.testing.assert_allclose(lp, gw[1], **TOL)
            np.testing.assert_allclose(s, ref[0], rtol=1e-5, atol=1e-3)
        # Triton reads the parameter names from our config.pbtxt and reports them as gwinfer serve does
        assert clients["http"].get_model_config("iaf")["parameters"] == {
            "parameter_names": {"string_value": ",".join(NAMES)}
        }
        cols = sample_posterior(triton.url, "iaf", x[0], 500, seed=9)
        ours = sample_posterior(setup["server"].url, "iaf", x[0], 500, seed=9)
        assert list(cols) == NAMES
        for k in NAMES:
            np.testing.assert_allclose(cols[k], ours[k], **TOL)
        with pytest.raises(InferenceServerException):
            infer(clients["http"], "iaf", x, z[:, :, :2])  # wrong D
    finally:
        for c in clients.values():
            c.close()
        triton.stop()
