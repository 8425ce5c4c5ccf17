"""Importance sampling of a posterior estimator (Dax et al. 2023): weights, ESS, evidence, reweighted draws.

:func:`importance_sample` weights samples drawn from ``q`` by ``w = L pi / q``, giving the effective sample
size ``(sum w)^2 / sum w^2`` (:func:`ess_of`), the sample efficiency ``ESS / n``, the evidence estimate
``log Z = log mean w`` with its delta-method standard error ``sqrt((n / ESS - 1) / n)`` (:func:`evidence`),
and a weighted resampling (:func:`systematic_resample` for the evenly spaced kind). :func:`importance_sample_estimator` does it for draws of a posterior estimator against the
exact whitened-data likelihood and the simulation's prior (:mod:`gwinfer.evaluation.reference`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gwinfer.errors import GwinferError

if TYPE_CHECKING:
    from gwinfer.data.simulate import SimulationConfig


def _take(samples: Any, mask: np.ndarray) -> Any:
    """Rows ``mask`` (boolean or indices) of a dict of (n,) arrays or of an (n, D) array."""
    if isinstance(samples, Mapping):
        return {k: np.asarray(v)[mask] for k, v in samples.items()}
    return np.asarray(samples)[mask]


def _length(samples: Any) -> int:
    """Number of samples n of a dict of (n,) arrays or of an (n, D) array."""
    if isinstance(samples, Mapping):
        lengths = {np.asarray(v).shape[0] for v in samples.values()}
        if len(lengths) != 1:
            raise GwinferError(f"importance_sample: sample columns have different lengths {sorted(lengths)}")
        return lengths.pop()
    return np.asarray(samples).shape[0]


def check_weights(weights: Any, n: int) -> np.ndarray:
    """``weights`` as a float (n,) array, checked finite and non-negative with a positive sum."""
    w = np.asarray(weights, dtype=float).reshape(-1)
    if w.shape != (n,):
        raise GwinferError(f"weights have shape {w.shape}; expected ({n},), one per sample")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise GwinferError("weights must be finite, non-negative and not all zero")
    return w


def systematic_resample(weights: Any, n: int | None = None, seed: int = 0) -> np.ndarray:
    """Indices of a systematic resample (one seeded uniform offset, ``n`` evenly spaced points; default len)."""
    w = check_weights(weights, np.asarray(weights).size)
    n = w.size if n is None else int(n)
    if n < 1:
        raise GwinferError(f"systematic_resample n = {n} must be >= 1")
    u = (np.random.default_rng(seed).uniform() + np.arange(n)) / n
    cdf = np.cumsum(w) / w.sum()
    return np.minimum(np.searchsorted(cdf, u, side="right"), w.size - 1)


def ess_of(log_w: np.ndarray) -> float:
    """Kish effective sample size of log weights (-inf = weight 0)."""
    finite = np.isfinite(log_w)
    if not finite.any():
        return 0.0
    w = np.exp(log_w[finite] - log_w[finite].max())
    return float(w.sum() ** 2 / np.sum(w**2))


def evidence(log_w: np.ndarray) -> tuple[float, float]:
    """(ln Z, its standard error) of importance weights (module docstring)."""
    n = log_w.size
    finite = np.isfinite(log_w)
    if not finite.any():
        return -np.inf, np.inf
    ln_z = float(np.logaddexp.reduce(log_w[finite]) - np.log(n))
    ess = ess_of(log_w)
    return ln_z, float(np.sqrt(max(n / ess - 1.0, 0.0) / n))


def importance_sample(
    samples: Any,
    log_q: np.ndarray,
    log_likelihood_fn: Callable[[Any], np.ndarray],
    log_prior_fn: Callable[[Any], np.ndarray],
    seed: int = 0,
    n_resample: int | None = None,
) -> dict[str, Any]:
    """Importance-weight ``samples`` (dict of (n,) arrays or an (n, D) array) drawn from q.

    ``log_q``: (n,) log density of q at each sample (the same parameterisation as the prior).
    ``log_prior_fn(samples) -> (n,)``; ``log_likelihood_fn(samples) -> (n,)`` is called only on the samples
    with finite prior and q densities (others get weight 0). The likelihood must be normalised for the
    evidence to be meaningful. Returns ``log_weights`` (n,), ``weights`` (n,, summing to 1), ``ess``,
    ``efficiency`` (ESS / n), ``log_evidence``, ``log_evidence_std``, ``samples`` (``n_resample``, default
    ``max(1, floor(ESS))``, drawn with replacement by weight, ``default_rng(seed)``) and ``n``.
    """
    from scipy.special import logsumexp

    n = _length(samples)
    lq = np.asarray(log_q, dtype=float).reshape(-1)
    if n < 1 or lq.shape != (n,):
        raise GwinferError(f"importance_sample: log_q has shape {lq.shape}; expected ({n},)")
    lp = np.asarray(log_prior_fn(samples), dtype=float).reshape(-1)
    if lp.shape != (n,):
        raise GwinferError(f"log_prior_fn returned shape {lp.shape}; expected ({n},)")
    ok = np.isfinite(lp) & np.isfinite(lq)
    ll = np.full(n, -np.inf)
    if ok.any():
        vals = np.asarray(log_likelihood_fn(_take(samples, ok)), dtype=float).reshape(-1)
        if vals.shape != (int(ok.sum()),):
            raise GwinferError(f"log_likelihood_fn returned shape {vals.shape}; expected ({int(ok.sum())},)")
        ll[ok] = vals
    log_w = np.where(ok, ll + lp - lq, -np.inf)
    log_w[~np.isfinite(log_w)] = -np.inf
    if not np.isfinite(log_w).any():
        raise GwinferError("importance_sample: every sample has zero weight (outside the prior or zero likelihood)")
    w = np.exp(log_w - logsumexp(log_w))
    ess = ess_of(log_w)
    log_evidence, std = evidence(log_w)
    m = max(1, int(ess)) if n_resample is None else int(n_resample)
    pick = np.random.default_rng(seed).choice(n, size=m, replace=True, p=w)
    return {
        "log_weights": log_w,
        "weights": w,
        "ess": ess,
        "efficiency": ess / n,
        "log_evidence": log_evidence,
        "log_evidence_std": std,
        "samples": _take(samples, pick),
        "n": n,
    }


def importance_sample_estimator(
    estimator: Any,
    x: np.ndarray,
    config: SimulationConfig,
    names: Sequence[str],
    n: int = 5000,
    fixed: Mapping[str, float] | None = None,
    seed: int = 0,
    n_resample: int | None = None,
) -> dict[str, Any]:
    """Importance-sample ``n`` draws of a posterior estimator for whitened data ``x`` (n_det, n_samples)
    against the exact likelihood and prior (:func:`importance_sample`): sample efficiency, ESS, log evidence
    and reweighted samples. ``names``: the estimator's parameters, in order; prior keys not in ``names``
    must be given in ``fixed`` (in the prior's units)."""
    import torch

    from gwinfer.evaluation.reference import log_likelihood_function, log_prior_function

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise GwinferError(f"number of samples n = {n!r} must be an integer >= 1")
    if hasattr(estimator, "eval"):
        estimator.eval()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    theta, log_q = estimator.sample_and_log_prob(xt, int(n))
    samples = {k: theta[:, i].double().numpy() for i, k in enumerate(names)}
    return importance_sample(
        samples,
        log_q.double().numpy(),
        log_likelihood_function(x, config, fixed),
        log_prior_function(config, list(names)),
        seed=seed,
        n_resample=n_resample,
    )
