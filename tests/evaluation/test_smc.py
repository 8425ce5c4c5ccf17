"""Tempered SMC against analytic targets: a normalised Gaussian likelihood (ln Z = 0, known moments), a
periodic column, and an exact symmetry the proposal does not know."""

from __future__ import annotations

import numpy as np
import pytest

from gwinfer.errors import GwinferError
from gwinfer.evaluation.smc import SMCConfig, tempered_smc


def _gauss(x: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    d = x - mu
    inv = np.linalg.inv(cov)
    return -0.5 * np.einsum("ni,ij,nj->n", d, inv, d) - 0.5 * np.log(np.linalg.det(2 * np.pi * cov))


def test_smc_reaches_a_correlated_gaussian_and_its_evidence() -> None:
    """Proposal N(0, 4^2 I), L = N(mu, Sigma) normalised, flat prior: Z = 1, so ln Z = 0; the final particles
    have mean mu and covariance Sigma."""
    rng = np.random.default_rng(0)
    mu = np.array([1.0, -2.0, 0.5])
    cov = np.array([[0.04, 0.03, 0.0], [0.03, 0.09, 0.0], [0.0, 0.0, 0.01]])
    s = 4.0

    def density(x: np.ndarray) -> np.ndarray:
        return _gauss(x, np.zeros(3), s**2 * np.eye(3))

    def target(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _gauss(x, mu, cov), np.zeros(len(x))

    x = rng.normal(0, s, size=(4000, 3))
    log_l, log_prior = target(x)
    out = tempered_smc(x, density(x), log_l, log_prior, target, density, rng, SMCConfig(steps=10, final_steps=5))
    assert out.stages[-1]["beta"] == 1.0 and len(out.stages) > 2
    assert out.log_evidence == pytest.approx(0.0, abs=0.15)
    assert np.allclose(out.x.mean(0), mu, atol=0.03)
    assert np.allclose(np.cov(out.x.T), cov, atol=0.15 * cov.max())
    assert out.x.shape == (5 * 4000, 3) and out.likelihood_calls == 4000 * (10 * len(out.stages) + 5)


def test_smc_wraps_a_periodic_column_and_uses_an_exact_shift() -> None:
    """Column 0 is an angle (period pi) and the target is invariant under x0 -> x0 + pi/2: two equal modes at
    0.3 and 0.3 + pi/2. The proposal covers only the first; the shift move fills the second to ~50 %."""
    rng = np.random.default_rng(1)
    period, sig = np.pi, 0.05

    def log_l(x: np.ndarray) -> np.ndarray:
        d1 = (x[:, 0] - 0.3 + period / 2) % period - period / 2
        d2 = (x[:, 0] - 0.3 - np.pi / 2 + period / 2) % period - period / 2
        return np.logaddexp(-0.5 * (d1 / sig) ** 2, -0.5 * (d2 / sig) ** 2) - 0.5 * x[:, 1] ** 2

    def target(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return log_l(x), np.zeros(len(x))

    def density(x: np.ndarray) -> np.ndarray:  # a wrapped normal at 0.3, sd 0.3 (images +-1 period), N(0, 2^2)
        a = sum(np.exp(-0.5 * ((x[:, 0] - 0.3 + k * period) / 0.3) ** 2) for k in (-1, 0, 1))
        return np.log(a / (0.3 * np.sqrt(2 * np.pi))) - 0.5 * (x[:, 1] / 2) ** 2 - np.log(2 * np.sqrt(2 * np.pi))

    x = np.stack([np.mod(rng.normal(0.3, 0.3, 3000), period), rng.normal(0, 2, 3000)], axis=1)
    ll, lp = target(x)
    out = tempered_smc(x, density(x), ll, lp, target, density, rng, periods={0: period}, shifts={0: np.pi / 2})
    assert out.x[:, 0].min() >= 0 and out.x[:, 0].max() < period
    near_second = np.abs(out.x[:, 0] - (0.3 + np.pi / 2)) < 5 * sig
    assert 0.4 < near_second.mean() < 0.6
    without = tempered_smc(x, density(x), ll, lp, target, density, rng, periods={0: period})
    assert (np.abs(without.x[:, 0] - (0.3 + np.pi / 2)) < 5 * sig).mean() < 0.05


def test_independence_moves_keep_the_target() -> None:
    """With an independence step from a Gaussian fitted to the particles (which mixes a curved 'banana'
    target faster), the particles still follow the target: its evidence and x0 marginal (N(0, 1)) hold."""
    rng = np.random.default_rng(2)

    def target(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # a banana: x1 - x0^2 ~ N(0, 0.2^2), x0 ~ N(0, 1)
        ll = -0.5 * x[:, 0] ** 2 - 0.5 * ((x[:, 1] - x[:, 0] ** 2) / 0.2) ** 2 - np.log(2 * np.pi * 0.2)
        return ll, np.zeros(len(x))

    def density(x: np.ndarray) -> np.ndarray:
        return _gauss(x, np.zeros(2), 9.0 * np.eye(2))

    def fit(x: np.ndarray):
        mu, cov = x.mean(0), 1.44 * np.cov(x.T)
        return (lambda n, r: r.multivariate_normal(mu, cov, size=n)), (lambda y: _gauss(y, mu, cov))

    x = rng.normal(0, 3, size=(3000, 2))
    ll, lp = target(x)
    out = tempered_smc(x, density(x), ll, lp, target, density, rng, SMCConfig(steps=4, final_steps=4), independent=fit)
    assert out.log_evidence == pytest.approx(0.0, abs=0.15)
    assert abs(out.x[:, 0].mean()) < 0.06 and out.x[:, 0].std() == pytest.approx(1.0, abs=0.06)
    assert all(s["independent_acceptance"] > 0.05 for s in out.stages)
    assert out.likelihood_calls == 2 * 3000 * (4 * len(out.stages) + 4)


def test_smc_config_is_checked() -> None:
    with pytest.raises(GwinferError, match="steps = 0 must be an integer >= 1"):
        SMCConfig(steps=0)
    with pytest.raises(GwinferError, match="must lie in"):
        SMCConfig(ess_fraction=1.0)
