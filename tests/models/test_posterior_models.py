"""Invariants of every posterior estimator (gwinfer.models.posterior / flows / cvae), zuko-style.

One parametrised suite over all kinds: shapes, boundary checks, gradients, numerical normalisation of
log_prob in 1-D and 2-D (physical units, so the standardisation Jacobian is tested), sample/log_prob
agreement, save/load, and a linear-Gaussian toy with an analytic posterior for the flow estimators.

Run this file as a script to time sample(x, 10000) for MAF vs IAF at D = 5.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from gwinfer.errors import GwinferError
from gwinfer.models.builder import build_estimator, estimator_kinds, load_estimator, save_estimator
from gwinfer.models.posterior.base import PosteriorEstimator
from gwinfer.models.posterior.cvae import CVAEPlus, CVAEPosterior
from gwinfer.models.posterior.flows import IAFPosterior, MAFPosterior
from gwinfer.models.posterior.resnet1d import ResNet1D, ResNet1DConfig

KINDS = ["gaussian", "maf", "nsf", "iaf", "cvae", "cvae_plus"]
FLOW_KINDS = ["gaussian", "maf", "nsf", "iaf"]
CVAE_KINDS = ["cvae", "cvae_plus"]


def tiny_config(kind: str, context_dim: int = 8, hidden: int = 16, **extra) -> dict:
    cfg: dict = {"embedding": {"kind": "mlp", "context_dim": context_dim, "hidden": [hidden]}}
    if kind == "gaussian":
        cfg["hidden"] = [hidden]
    elif kind in ("maf", "nsf", "iaf"):
        cfg.update(transforms=2, hidden=[hidden, hidden])
    else:
        cfg.update(
            latent_dim=2,
            hidden=[hidden],
            is_samples=16,
            flow_transforms=2,
            flow_hidden=[hidden],
            kl_schedule="constant",
        )
    cfg.update(extra)
    return cfg


def make(
    kind: str,
    theta_dim: int = 2,
    x_shape=(3,),
    n_fit: int = 512,
    theta_mean: float = 1.0,
    theta_std: float = 3.0,
    seed: int = 0,
    **extra,
) -> PosteriorEstimator:
    """A fitted (untrained) estimator; standardisation far from identity so Jacobian errors show."""
    torch.manual_seed(seed)
    model = build_estimator({"kind": kind, "config": tiny_config(kind, **extra)}, theta_dim, x_shape)
    theta = theta_mean + theta_std * torch.randn(n_fit, theta_dim)
    x = 2.0 + 0.5 * torch.randn(n_fit, *((x_shape,) if isinstance(x_shape, int) else x_shape))
    model.fit_standardization(theta, x)
    return model.eval()


def grid_log_prob(model: PosteriorEstimator, x1: torch.Tensor, grid: torch.Tensor, chunk: int = 20000) -> torch.Tensor:
    """log_prob of every row of ``grid`` (G, D) at the single x1 (1, *S)."""
    out = []
    with torch.no_grad():
        for part in grid.split(chunk):
            out.append(model.log_prob(part, x1.expand(part.shape[0], *x1.shape[1:])))
    return torch.cat(out)


# --- shapes and boundary checks ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_output_shapes(kind):
    model = make(kind, theta_dim=3, x_shape=(4,))
    theta, x = torch.randn(5, 3), torch.randn(5, 4)
    assert model.log_prob(theta, x).shape == (5,)
    assert model(theta, x).shape == (5,)
    model.train()
    assert model.loss(theta, x).shape == (5,)
    model.eval()
    s = model.sample(x, 7)
    assert s.shape == (5, 7, 3) and s.dtype == torch.float32 and torch.isfinite(s).all()
    assert model.sample(x[0], 6).shape == (6, 3)
    s2, lp = model.sample_and_log_prob(x, 4)
    assert s2.shape == (5, 4, 3) and lp.shape == (5, 4) and torch.isfinite(lp).all()
    s1, lp1 = model.sample_and_log_prob(x[1], 4)
    assert s1.shape == (4, 3) and lp1.shape == (4,)
    spec = model.spec()
    assert spec["kind"] == kind and spec["theta_dim"] == 3 and spec["x_shape"] == [4]
    assert kind in estimator_kinds()


@pytest.mark.parametrize("kind", ["maf", "cvae_plus"])
def test_resnet_embedding_for_strain(kind):
    resnet = {"channels": [4, 8], "kernel_size": 3, "stride": 2, "pool_size": 2}
    model = make(kind, theta_dim=2, x_shape=(2, 32), embedding={"kind": "auto", "context_dim": 8, "resnet": resnet})
    assert isinstance(model.embedding, ResNet1D)
    x = torch.randn(3, 2, 32)
    assert model.log_prob(torch.randn(3, 2), x).shape == (3,)
    assert model.sample(x[0], 5).shape == (5, 2)
    assert model.x_scale.mean.shape == ()  # one RMS scale for strain
    net = ResNet1D(3, 100, 11, ResNet1DConfig(channels=(4, 4, 8), kernel_size=5, stride=2, pool_size=3, norm="batch"))
    assert net(torch.randn(2, 3, 100)).shape == (2, 11)
    assert net.length == 13  # 100 -> 50 -> 25 -> 13


def test_bad_inputs_raise():
    model = make("maf", theta_dim=2, x_shape=(3,))
    with pytest.raises(GwinferError, match=r"expected \(batch, 3\)"):
        model.log_prob(torch.randn(4, 2), torch.randn(4, 5))
    with pytest.raises(GwinferError, match=r"expected \(4, 2\)"):
        model.log_prob(torch.randn(4, 3), torch.randn(4, 3))
    with pytest.raises(GwinferError, match=r"expected \(3, 2\)"):
        model.loss(torch.randn(4, 2), torch.randn(3, 3))
    with pytest.raises(GwinferError, match="float32"):
        model.log_prob(torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 3))
    with pytest.raises(GwinferError, match=r"or \(3,\)"):
        model.sample(torch.randn(2, 2, 3), 5)
    with pytest.raises(GwinferError, match="n = 0"):
        model.sample(torch.randn(3), 0)
    fresh = build_estimator({"kind": "gaussian", "config": tiny_config("gaussian")}, 2, 3)
    with pytest.raises(GwinferError, match="fit_standardization"):
        fresh.log_prob(torch.randn(2, 2), torch.randn(2, 3))
    with pytest.raises(GwinferError, match="unknown posterior kind"):
        build_estimator({"kind": "realnvp"}, 2, 3)
    with pytest.raises(GwinferError, match="unknown setting"):
        build_estimator({"kind": "maf", "config": {"layers": 3}}, 2, 3)
    with pytest.raises(GwinferError, match="embedding.kind"):
        build_estimator({"kind": "maf", "config": {"embedding": {"kind": "cnn"}}}, 2, 3)
    with pytest.raises(GwinferError, match="n_detectors, n_samples"):
        build_estimator({"kind": "maf", "config": {"embedding": {"kind": "resnet"}}}, 2, 3)
    with pytest.raises(GwinferError, match="kl_schedule"):
        build_estimator({"kind": "cvae", "config": {"kl_schedule": "cosine"}}, 2, 3)


# --- gradients ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_every_parameter(kind):
    model = make(kind, theta_dim=3, x_shape=(4,)).train()
    theta, x = 1.0 + 3.0 * torch.randn(32, 3), 2.0 + 0.5 * torch.randn(32, 4)
    model.loss(theta, x).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


# --- normalisation and sample/log_prob agreement ---------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_1d_normalises_and_samples_agree(kind):
    mean0, std0 = 1.0, 3.0
    model = make(
        kind,
        theta_dim=1,
        x_shape=(2,),
        theta_mean=mean0,
        theta_std=std0,
        **({"is_samples": 64} if kind in CVAE_KINDS else {}),
    )
    x1 = torch.tensor([[2.3, 1.7]])
    grid = torch.linspace(mean0 - 12 * std0, mean0 + 12 * std0, 4001)
    p = grid_log_prob(model, x1, grid[:, None]).double().exp()
    g = grid.double()
    mass = torch.trapezoid(p, g).item()
    tol = 0.02 if kind in FLOW_KINDS else 0.06
    assert abs(mass - 1.0) < tol, f"{kind}: integral of exp(log_prob) = {mass:.4f}"
    mu = (torch.trapezoid(p * g, g) / mass).item()
    sd = math.sqrt((torch.trapezoid(p * (g - mu) ** 2, g) / mass).item())
    torch.manual_seed(1)
    s = model.sample(x1[0], 20000)[:, 0].double()
    assert abs(s.mean().item() - mu) < 0.05 * sd, f"{kind}: sample mean {s.mean():.3f} vs grid {mu:.3f}"
    assert abs(s.std().item() / sd - 1.0) < (0.04 if kind in FLOW_KINDS else 0.08), (
        f"{kind}: sample std {s.std():.3f} vs grid {sd:.3f}"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_2d_normalises(kind):
    mean0, std0 = -0.5, 0.2
    model = make(kind, theta_dim=2, x_shape=(3,), theta_mean=mean0, theta_std=std0)
    x1 = torch.tensor([[2.3, 1.7, 2.0]])
    n = 161
    axis = torch.linspace(mean0 - 9 * std0, mean0 + 9 * std0, n)
    a, b = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)
    p = grid_log_prob(model, x1, grid).double().exp().view(n, n)
    ax = axis.double()
    mass = torch.trapezoid(torch.trapezoid(p, ax, dim=1), ax).item()
    tol = 0.03 if kind in FLOW_KINDS else 0.08
    assert abs(mass - 1.0) < tol, f"{kind}: 2-D integral of exp(log_prob) = {mass:.4f}"


@pytest.mark.parametrize("kind", KINDS)
def test_sample_and_log_prob_matches_log_prob(kind):
    model = make(kind, theta_dim=3, x_shape=(4,))
    if kind in CVAE_KINDS:
        model.is_samples = 512  # an untrained encoder is a poor proposal: many samples tame the IS noise
    x = torch.randn(2, 4)
    torch.manual_seed(3)
    s, lp = model.sample_and_log_prob(x, 50)
    direct = model.log_prob(s.reshape(100, 3), x.repeat_interleave(50, dim=0)).view(2, 50).detach()
    if kind in CVAE_KINDS:  # two independent importance-sampling estimates of the same density
        assert (lp - direct).abs().median() < 0.4 and abs((lp - direct).mean()) < 0.2
    else:
        torch.testing.assert_close(lp, direct, atol=2e-4, rtol=1e-4)


# --- save / load ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_save_load_roundtrip(kind, tmp_path):
    model = make(kind, theta_dim=2, x_shape=(3,))
    if kind in CVAE_KINDS:
        model.train()
        model.loss(torch.randn(4, 2), torch.randn(4, 3)).mean().backward()  # advances the KL step counter
        model.eval()
    path = save_estimator(tmp_path / "post.pt", model, metadata={"toy": "linear", "n": [1, 2]})
    raw = torch.load(path, weights_only=True)
    assert raw["model_spec"]["kind"] == kind and raw["format"] == "gwinfer-posterior"
    loaded, meta = load_estimator(path)
    assert type(loaded) is type(model) and not loaded.training
    assert meta["toy"] == "linear" and meta["gwinfer_version"]
    theta, x = torch.randn(6, 2), torch.randn(6, 3)
    torch.manual_seed(5)
    a = model.log_prob(theta, x)
    torch.manual_seed(5)
    b = loaded.log_prob(theta, x)
    assert torch.equal(a, b)
    torch.manual_seed(6)
    sa = model.sample(x, 3)
    torch.manual_seed(6)
    assert torch.equal(sa, loaded.sample(x, 3))
    if kind in CVAE_KINDS:
        assert int(loaded.step) == 1
    with pytest.raises(GwinferError, match="does not exist"):
        load_estimator(tmp_path / "missing.pt")


# --- directions of the autoregressive flows ------------------------------------------------------------
def _count_made_calls(model: PosteriorEstimator, fn) -> int:
    calls = [0]
    hooks = [
        m.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        for name, m in model.flow.named_modules()
        if name.endswith("hyper")
    ]
    try:
        fn()
    finally:
        for h in hooks:
            h.remove()
    return calls[0]


def test_iaf_samples_in_one_pass_and_maf_evaluates_in_one_pass():
    d, t = 5, 2
    x = torch.randn(3, 4)
    maf, iaf = (make(k, theta_dim=d, x_shape=(4,)) for k in ("maf", "iaf"))
    assert isinstance(maf, MAFPosterior) and isinstance(iaf, IAFPosterior)
    theta = torch.randn(3, d)
    assert _count_made_calls(maf, lambda: maf.log_prob(theta, x)) == t
    assert _count_made_calls(maf, lambda: maf.sample(x, 10)) == t * d
    assert _count_made_calls(iaf, lambda: iaf.sample(x, 10)) == t
    assert _count_made_calls(iaf, lambda: iaf.sample_and_log_prob(x, 10)) == t
    assert _count_made_calls(iaf, lambda: iaf.log_prob(theta, x)) > t * d - 1


# --- CVAE specifics -------------------------------------------------------------------------------------
def test_cvae_kl_schedule_and_override():
    model = make("cvae", kl_schedule="cyclic", kl_cycle_steps=10, kl_ramp_fraction=0.5, kl_weight_max=0.8)
    assert isinstance(model, CVAEPosterior)
    got = [model.scheduled_kl_weight(s) for s in (0, 1, 5, 9, 10, 12)]
    np.testing.assert_allclose(got, [0.0, 0.16, 0.8, 0.8, 0.0, 0.32], atol=1e-12)
    assert model.kl_weight == 1.0  # eval mode: the true negative ELBO
    model.train()
    theta, x = torch.randn(8, 2), torch.randn(8, 3)
    for _ in range(3):
        model.loss(theta, x)
    assert int(model.step) == 3 and model.kl_weight == pytest.approx(0.48)
    with torch.no_grad():
        model.loss(theta, x)
    assert int(model.step) == 3  # no-grad (validation-like) calls do not advance the schedule
    model.set_kl_weight(0.25)
    assert model.kl_weight == 0.25
    # the loss is linear in the KL weight: loss(w) = -rec + w * KL with the same sample
    torch.manual_seed(0)
    l0 = (model.set_kl_weight(0.0), model.loss(theta, x))[1]
    torch.manual_seed(0)
    l1 = (model.set_kl_weight(1.0), model.loss(theta, x))[1]
    assert ((l1 - l0) >= -1e-5).all()  # analytic KL >= 0
    model.set_kl_weight(None)
    with pytest.raises(GwinferError, match="KL weight"):
        model.set_kl_weight(-1.0)
    lin = make("cvae", kl_schedule="linear", kl_cycle_steps=10, kl_ramp_fraction=0.5)
    assert [lin.scheduled_kl_weight(s) for s in (0, 2, 5, 50)] == [0.0, 0.4, 1.0, 1.0]


def test_cvae_plus_structure():
    model = make("cvae_plus", theta_dim=3, x_shape=(4,))
    assert isinstance(model, CVAEPlus)
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert {"encoder", "prior", "decoder", "embedding"} <= names
    # encoder = IAF (inverse-wrapped MADE transformations), prior and decoder = MAFs
    assert all(type(t).__name__ == "LazyInverse" for t in model.encoder.transform.transforms)
    assert all(type(t).__name__ == "MaskedAutoregressiveTransform" for t in model.decoder.transform.transforms)
    assert all(type(t).__name__ == "MaskedAutoregressiveTransform" for t in model.prior.transform.transforms)
    # more importance samples -> a higher (less biased) estimate on average, same target
    torch.manual_seed(0)
    theta, x = torch.randn(64, 3), torch.randn(64, 4)
    few = model.log_prob(theta, x).mean()
    model.is_samples = 256
    many = model.log_prob(theta, x).mean()
    assert many > few - 0.02


# --- linear-Gaussian toy with an analytic posterior -----------------------------------------------------
A = torch.tensor([[1.0, 0.5], [-0.5, 1.0], [0.8, 0.3]])
NOISE = 0.8


def analytic_posterior(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """theta ~ N(0, I), x = A theta + N(0, NOISE^2 I): posterior mean and covariance."""
    prec = torch.eye(2, dtype=torch.float64) + A.double().T @ A.double() / NOISE**2
    cov = torch.linalg.inv(prec)
    return cov @ A.double().T @ x.double() / NOISE**2, cov


def draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    theta = torch.randn(n, 2, generator=g)
    return theta, theta @ A.T + NOISE * torch.randn(n, 3, generator=g)


@pytest.mark.parametrize(
    "kind,steps", [("gaussian", 300), ("maf", 400), ("nsf", 400), ("iaf", 400), ("cvae", 600), ("cvae_plus", 600)]
)
def test_linear_gaussian_posterior(kind, steps):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    extra = {"kl_schedule": "linear", "kl_cycle_steps": steps, "kl_ramp_fraction": 0.3} if kind in CVAE_KINDS else {}
    model = build_estimator({"kind": kind, "config": tiny_config(kind, context_dim=16, hidden=32, **extra)}, 2, 3)
    model.fit_standardization(*draw(4096, g))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=1e-4)
    model.train()
    for _ in range(steps):
        theta, x = draw(256, g)
        opt.zero_grad()
        model.loss(theta, x).mean().backward()
        opt.step()
        sched.step()
    model.eval()
    torch.manual_seed(1)
    for theta0 in ([0.0, 0.0], [1.0, -1.0], [-1.5, 0.5]):
        x0 = (A @ torch.tensor(theta0)).float()
        mu, cov = analytic_posterior(x0)
        s = model.sample(x0, 4000).double()
        m_hat, c_hat = s.mean(0), torch.cov(s.T)
        sd, sd_hat = cov.diag().sqrt(), c_hat.diag().sqrt()
        rho, rho_hat = cov[0, 1] / sd.prod(), c_hat[0, 1] / sd_hat.prod()
        assert (m_hat - mu).abs().max() < 0.1, f"{kind} at {theta0}: mean {m_hat.tolist()} vs {mu.tolist()}"
        assert ((sd_hat / sd - 1).abs() < 0.15).all(), f"{kind} at {theta0}: std {sd_hat.tolist()} vs {sd.tolist()}"
        assert abs(rho_hat - rho) < 0.15, f"{kind} at {theta0}: corr {rho_hat:.3f} vs {rho:.3f}"


@pytest.mark.parametrize("kind", ["maf", "cvae"])
def test_shared_trainer_and_checkpoint_load(kind, tmp_path):
    from torch.utils.data import TensorDataset

    from gwinfer.training import TrainConfig, Trainer

    g = torch.Generator().manual_seed(0)
    train, val = TensorDataset(*draw(256, g)), TensorDataset(*draw(64, g))
    model = build_estimator({"kind": kind, "config": tiny_config(kind)}, 2, 3)
    model.fit_standardization(*train.tensors)
    cfg = TrainConfig(
        epochs=2,
        batch_size=64,
        optimizer="adam",
        lr=3e-3,
        lr_schedule="constant",
        seed=1,
        device="cpu",
        tensorboard=False,
        early_stopping_patience=0,
    )
    result = Trainer(model, train, val, cfg, tmp_path).fit()
    assert result["epochs_completed"] == 2 and math.isfinite(result["best_val_loss"])
    loaded, _ = load_estimator(tmp_path / "checkpoint.pt")
    if kind == "cvae":
        assert int(loaded.step) == 8  # 2 epochs x 4 steps; validation calls do not advance it
    theta, x = val.tensors
    model.eval()
    torch.manual_seed(2)
    a = model.log_prob(theta, x)
    torch.manual_seed(2)
    torch.testing.assert_close(a, loaded.log_prob(theta, x))


def test_models_do_not_import_lalsimulation():
    import subprocess
    import sys

    code = (
        "import sys, gwinfer.models.builder, gwinfer.models.posterior.flows, gwinfer.models.posterior.cvae; "
        "sys.exit(int('lalsimulation' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- timing (not a test): python tests/test_posterior_models.py -------------------------------------------
# On this VM (1 CPU thread, default configs: 5 transforms, MADE 64x64, D = 5), sample(x, 10000) took
# maf ~100 ms, iaf ~18 ms (one pass per transformation instead of D), nsf ~860 ms, gaussian ~1 ms,
# cvae_plus ~150 ms; the paper quotes < 2 s for 1e4 samples on a GPU.
def _time_sampling(d: int = 5, n: int = 10000, repeats: int = 3) -> None:
    torch.set_num_threads(1)
    for kind in ("maf", "iaf", "nsf", "gaussian", "cvae_plus"):
        torch.manual_seed(0)
        spec = {"kind": kind, "config": {"embedding": {"kind": "mlp", "context_dim": 32, "hidden": [128]}}}
        model = build_estimator(spec, d, 16)
        model.fit_standardization(torch.randn(256, d), torch.randn(256, 16))
        model.eval()
        x = torch.randn(16)
        model.sample(x, 10)
        t0 = time.perf_counter()
        for _ in range(repeats):
            model.sample(x, n)
        dt = (time.perf_counter() - t0) / repeats
        print(f"{kind:10s} sample(x, {n}) at D = {d}: {dt * 1e3:7.1f} ms (1 CPU thread, default config)")


if __name__ == "__main__":
    _time_sampling()


# --- the reduced-basis (SVD) embedding ---------------------------------------------------------------
def test_svd_embedding_recovers_the_signal_subspace_and_keeps_noise_white():
    """Signals in a known r-dim subspace of R^n: the fitted projection must span it (principal angles
    ~ 0 against the exact basis) and be orthonormal, so whitened N(0, 1) noise projects to N(0, 1)."""

    gen = torch.Generator().manual_seed(3)
    n, r, n_sig = 64, 6, 400
    basis, _ = torch.linalg.qr(torch.randn(n, r, generator=gen, dtype=torch.float64))  # exact subspace
    signals = (torch.randn(n_sig, 2, r, generator=gen, dtype=torch.float64) * 5.0) @ basis.T  # (N, 2, n)
    noisy = signals + torch.randn(signals.shape, generator=gen, dtype=torch.float64)
    model = build_estimator(
        {
            "kind": "maf",
            "config": {
                "embedding": {"kind": "svd", "components": r, "hidden": [16], "context_dim": 4},
                "transforms": 1,
                "hidden": [8],
            },
        },
        2,
        (2, n),
    )
    model.fit_standardization(torch.randn(n_sig, 2), noisy.float(), signals=signals.float())
    w = model.embedding.project.weight.detach().double()  # (r, n)
    torch.testing.assert_close(w @ w.T, torch.eye(r, dtype=torch.float64), atol=1e-5, rtol=0)
    cosines = torch.linalg.svdvals(w @ basis)  # cosines of the principal angles
    assert cosines.min() > 1 - 1e-5
    # noise through the projection: unit variance (orthonormal rows), fitted from noisy data alone too
    noise = torch.randn(20000, n, generator=gen, dtype=torch.float64)
    assert abs(float((noise @ w.T).var()) - 1.0) < 0.03
    model.fit_standardization(torch.randn(n_sig, 2), noisy.float())  # basis from the noisy data
    w2 = model.embedding.project.weight.detach().double()
    assert torch.linalg.svdvals(w2 @ basis).min() > 0.99
    # the whole estimator works on strain-shaped x
    assert model.sample(noisy[0].float(), 7).shape == (7, 2)


def test_svd_embedding_errors():
    with pytest.raises(GwinferError, match="components"):
        build_estimator({"kind": "maf", "config": {"embedding": {"kind": "svd", "components": 65}}}, 2, (1, 64))
    with pytest.raises(GwinferError, match="n_detectors, n_samples"):
        build_estimator({"kind": "maf", "config": {"embedding": {"kind": "svd"}}}, 2, 8)
    model = build_estimator({"kind": "maf", "config": {"embedding": {"kind": "svd", "components": 32}}}, 2, (1, 64))
    with pytest.raises(GwinferError, match="at least 32 training rows"):
        model.fit_standardization(torch.randn(8, 2), torch.randn(8, 1, 64))


# --- the exact phase symmetry -------------------------------------------------------------------------
def test_phase_symmetric_estimator_is_normalised_periodic_and_consistent():
    """q_sym integrates to 1 on R x [0, 2 pi) (numerically), is pi-periodic in phase, and its samples
    follow its density (histogram of the folded phase against the integrated density)."""
    from gwinfer.models.posterior.symmetry import PhaseSymmetric, has_phase_symmetry, symmetrised

    torch.manual_seed(4)
    model = build_estimator({"kind": "maf", "config": tiny_config("maf")}, 2, (3,))
    theta = torch.stack([torch.randn(512), 2 * math.pi * torch.rand(512)], dim=1)
    model.fit_standardization(theta, torch.randn(512, 3))
    meta = {"names": ["mass", "phase"], "simulation": {"approximant": "IMRPhenomPv2"}}
    sym = symmetrised(model.eval(), meta)
    assert isinstance(sym, PhaseSymmetric) and has_phase_symmetry(meta)
    assert symmetrised(model, {"names": ["mass", "phase"], "simulation": {"approximant": "IMRPhenomXPHM"}}) is model
    x1 = torch.randn(1, 3)
    a, p = torch.linspace(-8, 8, 321), torch.linspace(0, 2 * math.pi, 401)[:-1] + math.pi / 400
    grid = torch.cartesian_prod(a, p)
    with torch.no_grad():
        lp = sym.log_prob(grid, x1.expand(len(grid), 3))
        shifted = grid.clone()
        shifted[:, 1] = shifted[:, 1] + math.pi
        torch.testing.assert_close(sym.log_prob(shifted, x1.expand(len(grid), 3)), lp, atol=1e-4, rtol=0)
    dens = lp.exp().reshape(len(a), len(p))
    total = float(dens.sum() * (a[1] - a[0]) * (p[1] - p[0]))
    assert abs(total - 1) < 0.01, total
    s = sym.sample(x1[0], 40000)
    assert float(s[:, 1].min()) >= 0 and float(s[:, 1].max()) < 2 * math.pi
    hist = np.histogram(s[:, 1].numpy(), bins=8, range=(0, 2 * math.pi))[0] / 40000
    expect = dens.sum(0).reshape(8, 50).sum(1).numpy() * float((a[1] - a[0]) * (p[1] - p[0]))
    assert np.abs(hist - expect).max() < 0.01
    th, lq = sym.sample_and_log_prob(x1[0], 16)
    torch.testing.assert_close(lq, sym.log_prob(th, x1.expand(16, 3)))


def test_demo_evaluates_only_shipped_point_models():
    """`make demo` evaluates the shipped point estimators; the posterior models in models/ are skipped."""
    from gwinfer.cli.demo import MODELS, _is_point_model

    kinds = {p.parent.name: _is_point_model(p) for p in MODELS.glob("*/model.pt")}
    assert kinds.get("wavenet-small") is True and kinds.get("gw5d-iaf") is False
