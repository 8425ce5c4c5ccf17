"""Tempered sequential Monte Carlo from a proposal to a posterior (Del Moral, Doucet & Jasra 2006, JRSS B 68,
411; the adaptive-temperature variant of Jasra et al. 2011, Scand. J. Stat. 38, 1).

The particles start as draws of a proposal ``q`` (a network's posterior) and are moved through the bridge

    pi_beta(x)  propto  q(x)^(1 - beta) [L(x) pi(x)]^beta,        beta: 0 -> 1,

each step choosing the next beta so that the effective sample size of the incremental weights
``(beta' - beta) ln(L pi / q)`` is ``ess_fraction`` of the particles, resampling them (systematic), and
moving each with ``steps`` Metropolis-Hastings steps that leave pi_beta invariant: a Gaussian random walk with
the particles' covariance, its scale adapted towards ``target_acceptance`` (Roberts & Rosenthal 2001), plus,
for parameters with an exact symmetry of the target (``shifts``: a column and a period), a jump by that shift.
``ln Z = sum_k ln mean(incremental weights)`` estimates the evidence of ``L pi`` (``q`` normalised).

This locates the posterior where the proposal alone is too broad to importance-sample it (9 parameters of a
real event): the importance sampler then fits its refined proposal to the final particles
(:mod:`gwinfer.evaluation.event_is`), and the estimate stays an exact importance sampler.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gwinfer.checks import positive_int
from gwinfer.errors import GwinferError
from gwinfer.evaluation.importance import ess_of, systematic_resample

log = logging.getLogger(__name__)

#: ``f(x (N, D)) -> (ln L (N,), ln prior (N,))``; ln prior -inf outside the prior (ln L is then unused).
Target = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
#: ``g(x (N, D)) -> ln q (N,)``: the normalised log density of the starting proposal.
Density = Callable[[np.ndarray], np.ndarray]
#: ``fit(x (N, D)) -> (draw(n, rng) -> (n, D), log density)``: a proposal fitted to particles.
Fit = Callable[[np.ndarray], tuple[Callable[[int, np.random.Generator], np.ndarray], Density]]


@dataclass(frozen=True)
class SMCConfig:
    """``steps`` Metropolis-Hastings sweeps per temperature, ``final_steps`` more at beta = 1 whose states are
    all kept; next beta at an incremental ESS of ``ess_fraction`` of the particles; random-walk scale adapted
    towards ``target_acceptance``; at most ``max_stages`` temperatures."""

    steps: int = 8
    final_steps: int = 8
    ess_fraction: float = 0.5
    target_acceptance: float = 0.25
    max_stages: int = 60

    def __post_init__(self) -> None:
        for name in ("steps", "final_steps", "max_stages"):
            positive_int(getattr(self, name), f"SMC {name}")
        if not 0 < self.ess_fraction < 1 or not 0 < self.target_acceptance < 1:
            raise GwinferError("SMC ess_fraction and target_acceptance must lie in (0, 1)")


@dataclass
class SMCResult:
    """Particles at beta = 1 (``x``: the states of the final sweeps, (final_steps * N, D)), the evidence
    estimate ``log_evidence`` (nats) and per-stage statistics."""

    x: np.ndarray
    log_evidence: float
    likelihood_calls: int
    stages: list[dict[str, float]] = field(default_factory=list)


def _wrapped_cov(x: np.ndarray, periods: Mapping[int, float]) -> np.ndarray:
    """Covariance (D, D) of x with the periodic columns taken about their circular mean."""
    d = x - x.mean(0)
    for j, p in periods.items():
        ang = 2 * np.pi * x[:, j] / p
        centre = p * np.arctan2(np.sin(ang).mean(), np.cos(ang).mean()) / (2 * np.pi)
        d[:, j] = (x[:, j] - centre + p / 2) % p - p / 2
    return np.atleast_2d(np.cov(d.T))


def _next_beta(inc: np.ndarray, beta: float, n_target: float) -> float:
    """The largest beta' in (beta, 1] whose incremental weights (beta' - beta) * inc keep ESS >= n_target."""
    if ess_of((1.0 - beta) * inc) >= n_target:
        return 1.0
    lo, hi = beta, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ess_of((mid - beta) * inc) >= n_target else (lo, mid)
    return max(lo, beta + 1e-9)


def tempered_smc(
    x: np.ndarray,
    log_q: np.ndarray,
    log_l: np.ndarray,
    log_prior: np.ndarray,
    target: Target,
    density: Density,
    rng: np.random.Generator,
    config: SMCConfig = SMCConfig(),
    periods: Mapping[int, float] | None = None,
    shifts: Mapping[int, float] | None = None,
    independent: Fit | None = None,
) -> SMCResult:
    """Move draws ``x`` (N, D) of ``q`` (with their ``log_q``, ``log_l``, ``log_prior``) to the posterior
    ``L pi`` (module docstring). ``periods``: {column: period} of periodic parameters (wrapped into
    [0, period)); ``shifts``: {column: s} where ``L pi`` is invariant under x_j -> x_j + s (mod its period),
    tried with probability 1/2 in every step. ``independent``: a function of the resampled particles returning
    (draw, log density) of a fit to them; each sweep then adds an independence Metropolis-Hastings step from
    it, which can move particles along a curved posterior a random walk crosses slowly (twice the
    likelihood calls)."""
    periods, shifts = dict(periods or {}), dict(shifts or {})
    x, log_q, log_l, log_prior = (np.array(a, dtype=float) for a in (x, log_q, log_l, log_prior))
    n, d = x.shape
    beta, ln_z, calls = 0.0, 0.0, 0
    scale = 2.38 / np.sqrt(d)
    stages: list[dict[str, float]] = []
    kept: list[np.ndarray] = []
    t0 = time.perf_counter()

    def step(prop: np.ndarray, log_fwd: Any = 0.0, log_back: Any = 0.0) -> float:
        """One Metropolis-Hastings step of every particle towards ``prop`` under pi_beta, in place; ``log_fwd``
        and ``log_back``: ln density of proposing ``prop`` and of proposing the current state (0 for a symmetric
        proposal). Returns the acceptance fraction."""
        p_l, p_prior = target(prop)
        p_q = density(prop)
        with np.errstate(invalid="ignore"):
            new_t = np.where(np.isfinite(p_prior), (1 - beta) * p_q + beta * (p_l + p_prior), -np.inf)
            old_t = (1 - beta) * log_q + beta * (log_l + log_prior)
            ok = np.log(rng.random(n)) < (new_t - log_fwd) - (old_t - log_back)
        x[ok], log_q[ok], log_l[ok], log_prior[ok] = prop[ok], p_q[ok], p_l[ok], p_prior[ok]
        return float(ok.mean())

    for stage in range(config.max_stages):
        inc = np.where(np.isfinite(log_prior), log_l + log_prior - log_q, -np.inf)
        # draws outside the prior have weight 0 at any beta > 0: the ESS target counts the others
        new = _next_beta(inc, beta, config.ess_fraction * np.isfinite(inc).sum())
        lw = (new - beta) * inc
        top = lw[np.isfinite(lw)].max()
        ln_z += top + np.log(np.mean(np.exp(lw - top)))
        idx = systematic_resample(np.exp(lw - top), n, int(rng.integers(0, 2**32 - 1)))
        x, log_q, log_l, log_prior = x[idx], log_q[idx], log_l[idx], log_prior[idx]
        beta = new
        chol = np.linalg.cholesky(_wrapped_cov(x, periods) + 1e-12 * np.eye(d))
        sweeps = config.steps + (config.final_steps if beta >= 1 else 0)
        accepted: list[float] = []
        jumped: list[float] = []
        if independent is not None:
            draw_fit, fit_density = independent(x)
        for k in range(sweeps):
            prop = x + scale * rng.standard_normal((n, d)) @ chol.T
            for j, s in shifts.items():
                prop[:, j] += np.where(rng.random(n) < 0.5, s, 0.0)
            for j, p in periods.items():
                prop[:, j] = np.mod(prop[:, j], p)
            rate = step(prop)
            accepted.append(rate)
            scale *= float(np.exp(rate - config.target_acceptance))
            if independent is not None:  # an independence Metropolis-Hastings step from a fit to the particles
                prop = draw_fit(n, rng)
                jumped.append(step(prop, fit_density(prop), fit_density(x)))
            calls += n * (1 if independent is None else 2)
            if beta >= 1 and k >= config.steps:
                kept.append(x.copy())
        stats = {
            "stage": stage,
            "beta": beta,
            "acceptance": float(np.mean(accepted)),
            "independent_acceptance": float(np.mean(jumped)) if jumped else None,
            "scale": scale,
            "max_log_likelihood": float(np.max(log_l)),
            "seconds": time.perf_counter() - t0,
        }
        stages.append(stats)
        log.info("SMC stage %d: beta %.4g, acceptance %.3f, %.0f s", stage, beta, stats["acceptance"], stats["seconds"])
        if beta >= 1:
            return SMCResult(np.concatenate(kept), float(ln_z), calls, stages)
    raise GwinferError(
        f"SMC did not reach the posterior in {config.max_stages} temperatures (beta {beta:.3g}): the proposal is "
        "too far from it"
    )
