"""The posterior pipeline: simulation file, noisy dataset, bilby results, p-p test, JSD, importance sampling,
the reference sampler and the CLI handlers (gwinfer.data.simulate / strain_dataset, gwinfer.evaluation.posterior
/ pp / comparison / importance / reference, gwinfer.cli.posterior). Seeded; every check compares against an
exact or analytic answer."""

from __future__ import annotations

import argparse
import json
import math

import h5py
import numpy as np
import pytest
import torch
from scipy import integrate, stats

from gwinfer.cli.posterior import add_parsers
from gwinfer.data.simulate import SignalModel, SimulationConfig, draw_parameters, read_simulation
from gwinfer.data.strain_dataset import StrainDataset, injection_data, split_indices
from gwinfer.errors import GwinferError
from gwinfer.evaluation.comparison import estimate_errors, jsd_1d
from gwinfer.evaluation.importance import importance_sample
from gwinfer.evaluation.posterior import make_result, sample_posterior, save_result
from gwinfer.evaluation.pp import credible_levels, pp_test
from gwinfer.provenance import sha256_file

N_SIM = 64


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gwinfer")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def sim_path(tmp_path_factory):
    """64 gw5d signals written through ``gwinfer simulate`` (YAML config, n overridden)."""
    d = tmp_path_factory.mktemp("sim")
    (d / "sim.yaml").write_text("prior: gw5d\nn: 1000\nseed: 0\ndetectors: [plus]\n")
    assert (
        _run(
            [
                "simulate",
                "--config",
                str(d / "sim.yaml"),
                "--out",
                str(d / "sim.h5"),
                "--n",
                str(N_SIM),
                "--seed",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    return d / "sim.h5"


# ------------------------------------------------------------------------------------------ simulation
def test_simulation_file(sim_path):
    with h5py.File(sim_path, "r") as f:
        assert f["theta"].shape == (N_SIM, 5) and f["theta"].dtype == np.float64
        assert f["signals"].shape == (N_SIM, 1, 1024) and f["signals"].dtype == np.float32
        assert list(f["theta"].attrs["names"]) == ["mass_1", "mass_2", "luminosity_distance", "geocent_time", "phase"]
        attrs = dict(f.attrs)
    config = SimulationConfig.from_json(attrs["config"])
    assert config.n == N_SIM and config.seed == 3 and config.detectors == ("plus",)
    assert attrs["psd_sha256"] == sha256_file(config.psd)
    assert "PowerLaw" in attrs["prior_text"] and attrs["gwinfer_version"]
    assert json.loads(attrs["provenance"])["kind"] == "simulation"
    assert [p.name for p in sim_path.parent.iterdir() if p.name.startswith(".")] == []  # no temp files left

    sim = read_simulation(sim_path)
    m1, m2, dl, tc, ph = sim.theta.T
    assert np.all((35 <= m2) & (m2 <= m1) & (m1 <= 80)) and np.all((1000 <= dl) & (dl <= 3000))
    assert np.all((0.65 <= tc) & (tc <= 0.85)) and np.all((0 <= ph) & (ph <= 2 * np.pi))
    draws = draw_parameters(config)  # same seed, same draws
    np.testing.assert_array_equal(sim.theta[:, 2], draws["luminosity_distance"])
    # a stored signal is the signal model's output for its parameters; SNR matches the signal norm
    h = SignalModel(config)(sim.parameters_of(5))
    np.testing.assert_allclose(sim.signals[5], h.astype(np.float32), rtol=0, atol=1e-5 * np.abs(h).max())
    np.testing.assert_allclose(sim.snr[5], np.sqrt(np.sum(h**2)), rtol=1e-5)
    assert 5 < np.median(sim.snr) < 100
    # the signal peaks near the coalescence time
    assert abs(np.argmax(np.abs(h[0])) / 1024 - tc[5]) < 0.03


def test_simulation_config_errors(tmp_path):
    with pytest.raises(GwinferError, match="detector"):
        SimulationConfig(detectors=("X1",))
    with pytest.raises(GwinferError, match="whole number"):
        SimulationConfig(fs=1000.0, duration=0.0015)
    from gwinfer.data.simulate import simulate_signals

    with pytest.raises(GwinferError, match="not sampled"):
        simulate_signals(SimulationConfig(n=2, parameters=("mass_1", "chi_1")), tmp_path / "x.h5", progress=False)
    assert not (tmp_path / "x.h5").exists()


# ------------------------------------------------------------------------------------------ dataset
def test_dataset_noise_statistics_and_reproducibility(sim_path):
    ds = StrainDataset(sim_path, seed=5)
    theta, x = ds[0]
    assert theta.shape == (5,) and theta.dtype == torch.float32
    assert x.shape == (1, 1024) and x.dtype == torch.float32
    res0 = torch.stack([ds[i][1] - ds.signals[i] for i in range(len(ds))]).numpy().ravel()
    n = res0.size
    assert abs(res0.mean()) < 4 / math.sqrt(n)
    assert abs(res0.var() - 1.0) < 5 * math.sqrt(2.0 / n)
    assert stats.kstest(res0[:5000], "norm").pvalue > 1e-3
    again = torch.stack([ds[i][1] - ds.signals[i] for i in range(len(ds))]).numpy().ravel()
    np.testing.assert_array_equal(res0, again)  # same epoch: same noise
    ds.set_epoch(1)
    res1 = torch.stack([ds[i][1] - ds.signals[i] for i in range(len(ds))]).numpy().ravel()
    assert abs(np.corrcoef(res0, res1)[0, 1]) < 5 / math.sqrt(n)  # a new, independent realisation
    assert abs(res1.var() - 1.0) < 5 * math.sqrt(2.0 / n)
    ds.set_epoch(0)
    np.testing.assert_array_equal(ds[3][1].numpy(), (res0.reshape(len(ds), 1, 1024)[3] + ds.signals[3].numpy()))
    # noise belongs to the file row, whatever the subset; injection_data gives the epoch-0 item
    sub = StrainDataset(sim_path, indices=[7, 3], seed=5)
    np.testing.assert_array_equal(sub[1][1].numpy(), ds[3][1].numpy())
    x_inj, params = injection_data(sub.simulation, 3, noise_seed=5)
    np.testing.assert_array_equal(x_inj, ds[3][1].numpy())
    assert params["mass_1"] == pytest.approx(float(ds.simulation.theta[3, 0]))
    assert not torch.equal(StrainDataset(sim_path, seed=6)[3][1], ds[3][1])
    tr, va = split_indices(64, 0.25, 0)
    assert len(va) == 16 and len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 64


def test_trainer_sets_the_noise_epoch(sim_path, tmp_path):
    from gwinfer.models import build_estimator
    from gwinfer.training import TrainConfig, Trainer

    class Recording(StrainDataset):
        def set_epoch(self, epoch: int) -> None:
            seen.append(epoch)
            super().set_epoch(epoch)

    seen: list[int] = []
    ds = Recording(sim_path, indices=range(16))
    model = build_estimator(
        {"kind": "gaussian", "config": {"embedding": {"kind": "mlp", "context_dim": 4, "hidden": [8]}, "hidden": [8]}},
        theta_dim=5,
        x_shape=(1, 1024),
    )
    model.fit_standardization(ds.theta, ds.signals)
    cfg = TrainConfig(epochs=3, batch_size=8, tensorboard=False, device="cpu", early_stopping_patience=0)
    Trainer(model, ds, None, cfg, tmp_path).fit()  # the shared trainer calls set_epoch itself
    assert seen == [0, 1, 2] and ds.epoch == 2


# ------------------------------------------------------------------------------------------ JSD
def _jsd_gauss(m1, s1, m2, s2):
    p, q = stats.norm(m1, s1).pdf, stats.norm(m2, s2).pdf

    def f(t):
        a, b = p(t), q(t)
        m = 0.5 * (a + b)
        return 0.5 * (a * np.log(a / m) if a > 0 else 0.0) + 0.5 * (b * np.log(b / m) if b > 0 else 0.0)

    lo, hi = min(m1 - 12 * s1, m2 - 12 * s2), max(m1 + 12 * s1, m2 + 12 * s2)
    return integrate.quad(f, lo, hi, limit=200)[0]


@pytest.mark.parametrize("m2,s2", [(0.5, 1.0), (1.0, 1.5), (3.0, 0.5)])
def test_jsd_matches_analytic_gaussians(m2, s2):
    rng = np.random.default_rng(11)
    a, b = rng.normal(0.0, 1.0, 20000), rng.normal(m2, s2, 20000)
    exact = _jsd_gauss(0.0, 1.0, m2, s2)
    assert jsd_1d(a, b) == pytest.approx(exact, rel=0.06, abs=3e-3)
    assert jsd_1d(a, b, bins=60, method="hist") == pytest.approx(exact, rel=0.06, abs=5e-3)


def test_jsd_identical_and_dict():
    rng = np.random.default_rng(12)
    a, b = rng.normal(size=20000), rng.normal(size=20000)
    assert jsd_1d(a, b) < 2e-3
    out = jsd_1d({"x": a, "y": b + 10}, {"x": b, "y": b, "z": a})
    assert set(out) == {"x", "y"} and out["x"] < 2e-3 and out["y"] == pytest.approx(math.log(2), abs=1e-3)
    with pytest.raises(GwinferError, match="method"):
        jsd_1d(a, b, method="knn")


def test_estimate_errors_on_gaussians():
    # N(31, 2) against a reference N(30, 1): the medians are the means, the central 90 % widths 2 x 1.645 sigma
    rng = np.random.default_rng(13)
    out = estimate_errors(
        {"m": rng.normal(31.0, 2.0, 200000), "s": rng.normal(0.0, 1.0, 200000)},
        {"m": rng.normal(30.0, 1.0, 200000), "s": rng.normal(0.1, 0.5, 200000), "x": [1, 2]},
    )
    assert set(out) == {"m", "s"}
    m = out["m"]
    assert m["relative_error"] == pytest.approx(1 / 30, rel=0.02)
    assert m["offset_in_widths"] == pytest.approx(1 / (2 * 1.6449), rel=0.02)
    assert m["width_ratio"] == pytest.approx(2.0, rel=0.01)
    assert out["s"]["offset_in_widths"] == pytest.approx(-0.1 / (2 * 1.6449 * 0.5), rel=0.05)
    with pytest.raises(GwinferError, match="share no parameter"):
        estimate_errors({"a": [1.0]}, {"b": [1.0]})
    with pytest.raises(GwinferError, match="no spread"):
        estimate_errors({"a": [1.0, 2.0]}, {"a": [1.0, 1.0]})


# ------------------------------------------------------------------------------------------ importance sampling
def test_importance_sampling_evidence_on_gaussian_toy():
    s0, sig, y = 2.0, 0.5, np.array([0.7, -1.2])
    post_var = 1.0 / (1.0 / s0**2 + 1.0 / sig**2)
    mu = post_var * y / sig**2
    log_z = stats.multivariate_normal(np.zeros(2), (s0**2 + sig**2) * np.eye(2)).logpdf(y)

    def log_like(t):
        return stats.norm(t, sig).logpdf(y).sum(axis=1)

    def log_prior(t):
        return stats.norm(0.0, s0).logpdf(t).sum(axis=1)

    rng = np.random.default_rng(13)
    # q = the exact posterior: every weight equals Z
    exact_q = stats.multivariate_normal(mu, post_var * np.eye(2))
    t = exact_q.rvs(5000, random_state=rng)
    r = importance_sample(t, exact_q.logpdf(t), log_like, log_prior)
    assert r["log_evidence"] == pytest.approx(log_z, abs=1e-9) and r["efficiency"] == pytest.approx(1.0)
    # q shifted and broadened: unbiased within the reported error, efficiency below 1
    q = stats.multivariate_normal(mu + 0.1, 1.5**2 * post_var * np.eye(2))
    t = q.rvs(20000, random_state=rng)
    r = importance_sample(t, q.logpdf(t), log_like, log_prior, seed=1)
    assert 0.2 < r["efficiency"] < 0.95 and r["ess"] == pytest.approx(r["efficiency"] * 20000)
    assert abs(r["log_evidence"] - log_z) < max(4 * r["log_evidence_std"], 0.01)
    assert r["samples"].shape == (int(r["ess"]), 2)
    np.testing.assert_allclose(r["samples"].mean(axis=0), mu, atol=0.03)
    np.testing.assert_allclose(r["weights"].sum(), 1.0)
    # samples outside the prior support get zero weight and skip the likelihood
    calls = []
    r = importance_sample(
        {"a": np.array([0.5, -1.0, 2.0])},
        np.zeros(3),
        lambda s: calls.append(len(s["a"])) or np.zeros(len(s["a"])),
        lambda s: np.where(s["a"] > 0, 0.0, -np.inf),
    )
    assert calls == [2] and r["weights"][1] == 0.0 and r["ess"] == pytest.approx(2.0)


# ------------------------------------------------------------------------------------------ p-p test
def test_pp_test_exact_vs_shifted_posterior(tmp_path, conjugate_gaussian):
    rng = np.random.default_rng(14)
    theta = rng.normal(size=(400, 3))
    x = (theta + 0.7 * rng.normal(size=theta.shape)).astype(np.float32)
    good = pp_test(
        conjugate_gaussian(0.7),
        (theta, x),
        n_injections=300,
        n_samples=400,
        seed=1,
        names=["a", "b", "c"],
        out_dir=tmp_path,
    )
    assert good["credible_levels"].shape == (300, 3) and len(set(good["indices"])) == 300
    assert min(good["ks_pvalues"].values()) > 0.01 and good["combined_pvalue"] > 0.01
    assert (tmp_path / "pp.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "pp.json").read_text())
    assert saved["combined_pvalue"] == pytest.approx(good["combined_pvalue"])
    bad = pp_test(conjugate_gaussian(0.7, shift=0.5), (theta, x), n_injections=300, n_samples=400, seed=1)
    assert max(bad["ks_pvalues"].values()) < 1e-4 and bad["combined_pvalue"] < 1e-10
    assert credible_levels(np.arange(10.0).reshape(1, 10, 1), np.array([[2.5]]))[0, 0] == pytest.approx(0.3)


def test_pp_replaces_draws_outside_the_prior_as_sample_does(conjugate_gaussian):
    """Injections from a prior with a > 0 and an estimator that leaks mass below 0: the p-p test rejects and
    replaces those draws (as sample and analyze do), every draw kept lies inside, and the truncated posterior
    is then exact (uniform credible levels) where keeping the leaked draws biases them."""
    import torch

    from gwinfer.evaluation.pp import in_prior_draws

    rng = np.random.default_rng(3)
    theta = rng.normal(size=(2000, 2))
    theta[:, 0] = np.abs(theta[:, 0])  # the prior: a half-normal in a, a normal in b
    x = (theta + 0.7 * rng.normal(size=theta.shape)).astype(np.float32)

    def log_prior(s):
        return np.where(s["a"] > 0, 0.0, -np.inf)

    draws, fraction = in_prior_draws(conjugate_gaussian(0.7), torch.from_numpy(x[:50]), 300, ["a", "b"], log_prior)
    assert draws.shape == (50, 300, 2) and np.all(draws[:, :, 0] > 0) and 0.5 < fraction < 1.0
    kw = dict(n_injections=1500, n_samples=300, seed=2, names=["a", "b"])
    kept = pp_test(conjugate_gaussian(0.7), (theta, x), log_prior=log_prior, **kw)
    leaky = pp_test(conjugate_gaussian(0.7), (theta, x), **kw)
    assert kept["ks_pvalues"]["a"] > 0.01 and leaky["ks_pvalues"]["a"] < 1e-4
    assert kept["in_prior_fraction"] < 1.0 == leaky["in_prior_fraction"]
    with pytest.raises(GwinferError, match="inside the training prior"):
        in_prior_draws(conjugate_gaussian(0.7), torch.from_numpy(x[:2]), 10, ["a", "b"],
                       lambda s: np.full(len(s["a"]), -np.inf), max_rounds=2)  # fmt: skip


# ------------------------------------------------------------------------------------------ training, results, CLI
def test_train_sample_pp_and_bilby_results(sim_path, tmp_path):
    import bilby

    from gwinfer.models import load_estimator
    from gwinfer.training.posterior import train_posterior

    experiment = {
        "data": {"simulation": str(sim_path), "val_fraction": 0.25, "fit_samples": 32},
        "model": {
            "kind": "maf",
            "config": {"embedding": {"kind": "mlp", "context_dim": 8, "hidden": [16]}, "transforms": 2, "hidden": [16]},
        },
        "train": {
            "epochs": 2,
            "batch_size": 16,
            "lr": 1e-3,
            "tensorboard": False,
            "device": "cpu",
            "early_stopping_patience": 0,
        },
    }
    model_path = train_posterior(experiment, tmp_path / "run")
    model, meta = load_estimator(model_path)
    assert meta["names"][0] == "mass_1" and meta["simulation"]["n"] == N_SIM
    assert meta["training"]["epochs_completed"] == 2
    assert "epoch" in (tmp_path / "run" / "log.csv").read_text()

    x, params = injection_data(read_simulation(sim_path), 2)
    s = sample_posterior(model, x, 300, meta["names"], batch_size=128)
    assert list(s) == meta["names"] and all(v.shape == (300,) and np.all(np.isfinite(v)) for v in s.values())

    inj = {k: params[k] for k in meta["names"]}
    result = make_result(s, label="t", injection_parameters=inj, meta_data={"gwinfer": {"model": "m", "n": 300}})
    for ext in ("json", "hdf5"):
        paths = save_result(result, tmp_path / f"res.{ext}", corner=ext == "json")
        back = bilby.result.read_in_result(str(paths["result"]))
        assert back.search_parameter_keys == meta["names"]
        np.testing.assert_allclose(back.posterior["mass_1"].to_numpy(), s["mass_1"])
        np.testing.assert_allclose(
            back.posterior["chirp_mass"].to_numpy(),
            (s["mass_1"] * s["mass_2"]) ** 0.6 / (s["mass_1"] + s["mass_2"]) ** 0.2,
        )
        assert back.injection_parameters["phase"] == pytest.approx(params["phase"])
        assert back.meta_data["gwinfer"]["n"] == 300
    assert (tmp_path / "res_corner.png").stat().st_size > 10_000

    # CLI handlers: sample (injection) and pp on the simulation file
    assert (
        _run(
            [
                "sample",
                "--model",
                str(model_path),
                "--data",
                str(sim_path),
                "--injection",
                "2",
                "--n",
                "200",
                "--out",
                str(tmp_path / "cli"),
                "--no-corner",
            ]
        )
        == 0
    )
    back = bilby.result.read_in_result(str(tmp_path / "cli.json"))
    assert len(back.posterior) == 200 and back.injection_parameters["mass_1"] == pytest.approx(params["mass_1"])
    strain = back.meta_data["likelihood"]["interferometers"]["plus"]["strain"]
    assert strain["injection"] == 2 and strain["simulation"]["sha256"] == sha256_file(sim_path)
    assert back.meta_data["likelihood"]["interferometers"]["plus"]["psd"]["sha256"]
    assert (
        _run(
            [
                "sample",
                "--model",
                str(model_path),
                "--data",
                str(sim_path),
                "--injection",
                "2",
                "--n",
                "100",
                "--out",
                str(tmp_path / "cli-is"),
                "--no-corner",
                "--importance-sample",
            ]
        )
        == 0
    )
    rew = bilby.result.read_in_result(str(tmp_path / "cli-is_reweighted.json"))
    info = rew.meta_data["gwinfer"]["importance_sampling"]
    assert (
        len(rew.posterior) == 100
        and 0 < info["efficiency"] <= 1
        and info["ess"] == pytest.approx(info["efficiency"] * 100)
    )
    assert rew.log_evidence == pytest.approx(info["log_evidence"])
    x2 = np.asarray(injection_data(read_simulation(sim_path), 2, 0)[0], dtype=np.float64)  # noise seed 0
    assert rew.log_noise_evidence == pytest.approx(-0.5 * np.sum(x2**2) - 0.5 * x2.size * np.log(2 * np.pi))
    assert rew.log_bayes_factor == pytest.approx(rew.log_evidence - rew.log_noise_evidence)
    assert (
        _run(
            [
                "pp",
                "--model",
                str(model_path),
                "--data",
                str(sim_path),
                "--n-injections",
                "10",
                "--n-samples",
                "50",
                "--out",
                str(tmp_path / "pp"),
                "--quiet",
            ]
        )
        == 0
    )
    pp = json.loads((tmp_path / "pp" / "pp.json").read_text())
    assert set(pp["ks_pvalues"]) == set(meta["names"]) and len(pp["credible_levels"]) == 10
    from gwinfer.evaluation.importance import importance_sample_estimator

    r = importance_sample_estimator(model, x, read_simulation(sim_path, signals=False).config, meta["names"], n=64)
    assert np.isfinite(r["log_evidence"]) and 0 < r["efficiency"] <= 1 and set(r["samples"]) == set(meta["names"])
    with pytest.raises(GwinferError, match="--data"):
        _run(["sample", "--model", str(model_path), "--injection", "2", "--out", str(tmp_path / "y")])


def test_fine_tune_starts_from_the_file(sim_path, tmp_path):
    """init_from: the run starts from the file's weights and standardisation (a 1e-12 learning rate leaves
    them where they were, while a fresh build would be random), records the parent, and refuses a file
    of another architecture."""
    from gwinfer.models import load_estimator
    from gwinfer.training.posterior import train_posterior

    model_cfg = {
        "kind": "iaf",
        "config": {"embedding": {"kind": "mlp", "context_dim": 8, "hidden": [16]}, "transforms": 2, "hidden": [16]},
    }
    base = {
        "data": {"simulation": str(sim_path), "val_fraction": 0.25, "fit_samples": 32},
        "model": model_cfg,
        "train": {
            "epochs": 1,
            "batch_size": 16,
            "lr": 1e-3,
            "tensorboard": False,
            "device": "cpu",
            "early_stopping_patience": 0,
        },
    }
    first = train_posterior(base, tmp_path / "base")
    tuned = train_posterior(
        {**base, "init_from": str(first), "train": {**base["train"], "lr": 1e-12}}, tmp_path / "tuned"
    )
    (m0, _), (m1, meta) = load_estimator(first), load_estimator(tuned)
    for (k, a), b in zip(m0.state_dict().items(), m1.state_dict().values()):
        torch.testing.assert_close(b, a, atol=1e-9, rtol=0, msg=k)
    assert meta["experiment"]["init_from"] == str(first)
    assert str(first) in [p["path"] for p in meta["provenance"]["parents"]]
    other = {**model_cfg, "config": {**model_cfg["config"], "transforms": 3}}
    with pytest.raises(GwinferError, match="init_from .* is not the experiment's"):
        train_posterior({**base, "model": other, "init_from": str(first)}, tmp_path / "bad")


# ------------------------------------------------------------------------------------------ reference sampler
def test_reference_sampler_matches_grid_posterior(sim_path, tmp_path):
    """1-D (luminosity_distance, others fixed at the injection): dynesty vs a brute-force grid posterior."""
    from gwinfer.evaluation.reference import WhitenedGaussianLikelihood, log_likelihood_function, reference_posterior
    from gwinfer.physics.priors import load_prior

    sim = read_simulation(sim_path)
    i = int(np.argsort(sim.snr)[len(sim) // 2])
    x, params = injection_data(sim, i, noise_seed=2)
    result = reference_posterior(
        x,
        sim.config,
        injection_parameters=params,
        search=["luminosity_distance"],
        nlive=50,
        seed=3,
        sampler_kwargs={"sample": "unif"},
    )
    d = result.posterior["luminosity_distance"].to_numpy()
    lo, hi = np.quantile(d, [0.05, 0.95])
    assert lo < params["luminosity_distance"] < hi

    grid = np.linspace(1000.0, 3000.0, 401)
    f = log_likelihood_function(x, sim.config, fixed=params)
    log_l = f({"luminosity_distance": grid})
    log_p = load_prior("gw5d")["luminosity_distance"].ln_prob(grid)
    w = np.exp(log_l + log_p - np.max(log_l + log_p))
    mean = integrate.trapezoid(w * grid, grid) / integrate.trapezoid(w, grid)
    std = math.sqrt(integrate.trapezoid(w * (grid - mean) ** 2, grid) / integrate.trapezoid(w, grid))
    log_z = np.log(integrate.trapezoid(w, grid)) + np.max(log_l + log_p)
    assert abs(np.mean(d) - mean) < 0.25 * std and 0.75 < np.std(d) / std < 1.3
    assert abs(result.log_evidence - log_z) < 3 * result.log_evidence_err + 0.3
    x64 = np.asarray(x, dtype=np.float64)
    noise = -0.5 * np.sum(x64**2) - 0.5 * x64.size * np.log(2 * np.pi)
    assert result.log_bayes_factor == pytest.approx(result.log_evidence - noise, abs=1e-6)
    assert type(result).__name__ == "CompactBinaryCoalescenceResult" and "redshift" in result.posterior
    # importance sampling of a Gaussian proposal recovers the grid evidence on the GW likelihood
    from gwinfer.evaluation.reference import log_prior_function

    q = stats.norm(mean, 1.5 * std)
    t = q.rvs(1500, random_state=np.random.default_rng(4))
    r = importance_sample(
        {"luminosity_distance": t}, q.logpdf(t), f, log_prior_function(sim.config, ["luminosity_distance"])
    )
    assert abs(r["log_evidence"] - log_z) < max(4 * r["log_evidence_std"], 0.02) and r["efficiency"] > 0.3
    like = WhitenedGaussianLikelihood(x, SignalModel(sim.config), fixed=params)
    assert like.log_likelihood({"luminosity_distance": 2000.0}) == pytest.approx(
        f({"luminosity_distance": np.array([2000.0])})[0]
    )
    paths = save_result(result, tmp_path / "ref.json", corner=False)
    assert paths["result"].is_file()
    # the CLI handler runs the same sampler on the same data (injection_data with the noise seed)
    assert (
        _run(
            [
                "reference",
                "--data",
                str(sim_path),
                "--injection",
                str(i),
                "--noise-seed",
                "2",
                "--out",
                str(tmp_path / "cli-ref.hdf5"),
                "--nlive",
                "50",
                "--search",
                "luminosity_distance",
                "--sample",
                "unif",
                "--seed",
                "3",
                "--no-corner",
            ]
        )
        == 0
    )
    import bilby

    back = bilby.result.read_in_result(str(tmp_path / "cli-ref.hdf5"))
    np.testing.assert_allclose(back.posterior["luminosity_distance"].to_numpy(), d)  # same seed, same run
