"""Evaluating posterior estimators: samples as bilby results, p-p tests, Jensen-Shannon divergences and
importance sampling (Green, Simpson & Gair 2020, Figs. 3-4; Dax et al. 2023 for importance sampling).

* :func:`sample_posterior` - ``n`` samples for one observation as ``{name: array}``;
  :func:`make_result` / :func:`save_result` - a ``bilby.core.result.Result`` (``posterior`` DataFrame,
  ``search_parameter_keys``, ``injection_parameters``, provenance in ``meta_data``) written atomically as
  JSON or HDF5 (by extension), plus a corner plot PNG.
* :func:`pp_test` - for many injections with known parameters, the credible level of each true value
  (fraction of posterior samples below it), the KS p-value of each parameter's levels against U(0, 1)
  (``scipy.stats.kstest``), their combination by Fisher's method (``scipy.stats.combine_pvalues``) and the
  p-p plot with the binomial 90 % band (:func:`pp_plot`).
* :func:`jsd_1d` - Jensen-Shannon divergence (natural log, so in nats, within [0, ln 2]) of two 1-D sample
  sets, per marginal when given dicts. Default ``method="kde"``: ``scipy.stats.gaussian_kde`` (Scott's rule)
  of each set evaluated on a common grid of ``bins + 1`` points spanning both sets plus 3 bandwidths,
  each density renormalised there, and the JSD integrand integrated with the trapezoidal rule. KDE
  smoothing widens both densities, which slightly LOWERS the JSD of well-separated sets;
  ``method="hist"`` (shared ``bins`` equal-width bins over the joint range) is biased UPWARDS by sampling
  noise (~ bins / (8 N) nats for identical distributions). Inputs longer than ``max_samples`` are thinned
  deterministically (every k-th sample).
* :func:`estimate_errors` - median relative error, offset in reference widths and 90 % width ratio of
  one posterior against a reference sampler's (the relative-error table of knowledge-distillation papers).
* :func:`importance_sample` - weights ``w = L pi / q`` of samples drawn from ``q``, effective sample size
  ``(sum w)^2 / sum w^2``, sample efficiency ``ESS / n``, the evidence estimate ``log Z = log mean w`` with
  its delta-method standard error ``sqrt((n / ESS - 1) / n)``, and a weighted resampling.

Estimators are anything with ``sample(x, n)`` following :class:`gwinfer.models.posterior.PosteriorEstimator`
(x float32 (batch, *x_shape) -> (batch, n, D)), so exact toy posteriors can be tested the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ sampling
def _as_x(x: Any) -> Any:
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(torch.float32)


def _names(names: Sequence[str] | None, d: int) -> list[str]:
    if names is None:
        return [f"theta_{i}" for i in range(d)]
    if len(names) != d:
        raise GwinferError(f"{len(names)} parameter names given for {d}-dimensional samples")
    return [str(n) for n in names]


def sample_posterior(estimator: Any, x: Any, n: int, names: Sequence[str] | None = None,
                     batch_size: int = 20000) -> dict[str, np.ndarray]:
    """``n`` posterior samples of one observation ``x`` (shape ``x_shape``) as ``{name: float64 array (n,)}``.

    Samples are drawn in chunks of ``batch_size`` (memory). ``names`` default ``theta_0, theta_1, ...``.
    """
    import torch

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GwinferError(f"number of samples n = {n!r} must be an integer >= 1")
    xt = _as_x(x)
    if hasattr(estimator, "eval"):
        estimator.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            chunks.append(estimator.sample(xt, min(batch_size, n - start)).double().numpy())
    s = np.concatenate(chunks, axis=0)
    if s.ndim != 2:
        raise GwinferError(f"estimator.sample returned shape {s.shape} for one observation; expected (n, D)")
    return {k: s[:, i] for i, k in enumerate(_names(names, s.shape[1]))}


# ------------------------------------------------------------------------------------------ bilby results
def make_result(samples: Mapping[str, np.ndarray], *, label: str = "gwinfer", search_parameter_keys:
                Sequence[str] | None = None, injection_parameters: Mapping[str, float] | None = None,
                priors: Any = None, meta_data: Mapping[str, Any] | None = None, log_q: np.ndarray | None = None,
                derived: bool = True, sampling_time: float | None = None) -> Any:
    """A ``bilby.core.result.Result`` holding ``samples`` as its posterior.

    ``derived`` adds ``chirp_mass``/``mass_ratio`` (or ``mass_1``/``mass_2``) columns when the masses are
    there; ``log_q`` (the estimator's log density of each sample) becomes the ``log_q`` column. ``priors``
    (a mapping of bilby priors, e.g. the simulation's) is stored; search keys without one get an unbounded
    placeholder ``bilby.core.prior.Prior`` (bilby requires one per key).
    """
    import pandas as pd
    from bilby.core.prior import Prior, PriorDict
    from bilby.core.result import Result

    keys = list(search_parameter_keys or samples.keys())
    missing = [k for k in keys if k not in samples]
    if missing:
        raise GwinferError(f"search parameters {missing} have no samples")
    cols: dict[str, np.ndarray] = {k: np.asarray(v, dtype=float) for k, v in samples.items()}
    if derived:
        from gwinfer.physics.priors import complete_parameters

        cols = {k: np.asarray(v, dtype=float) for k, v in complete_parameters(cols).items()}
    if log_q is not None:
        cols["log_q"] = np.asarray(log_q, dtype=float)
    inj = None
    if injection_parameters is not None:
        inj = {k: float(v) for k, v in injection_parameters.items()}
    prior_dict = PriorDict(dict(priors)) if priors is not None else PriorDict()
    for k in keys:  # bilby needs a prior (for its label) per search key: an unbounded placeholder if unknown
        if k not in prior_dict:
            prior_dict[k] = Prior(name=k, latex_label=k)
    return Result(label=label, outdir=".", sampler="gwinfer", search_parameter_keys=keys,
                  fixed_parameter_keys=[], constraint_parameter_keys=[],
                  priors=prior_dict, injection_parameters=inj,
                  meta_data=dict(meta_data or {}), posterior=pd.DataFrame(cols), sampling_time=sampling_time)


def result_paths(out: str | Path) -> tuple[Path, Path]:
    """(result file, corner PNG) for ``out``: ``.json``/``.hdf5``/``.h5`` kept, otherwise ``.json`` added."""
    p = Path(out)
    if p.suffix not in (".json", ".hdf5", ".h5"):
        p = p.with_name(p.name + ".json")
    return p, p.with_name(p.stem + "_corner.png")


def save_result(result: Any, out: str | Path, corner: bool = True,
                parameters: Sequence[str] | None = None) -> dict[str, Path]:
    """Write ``result`` atomically (JSON or HDF5 by extension, see :func:`result_paths`) and a corner plot."""
    from gwinfer.provenance import atomic_path

    path, png = result_paths(out)
    ext = "json" if path.suffix == ".json" else "hdf5"
    with atomic_path(path) as tmp:
        result.save_to_file(filename=str(tmp), extension=ext, overwrite=True)
    out_paths = {"result": path}
    if corner:
        keys = list(parameters or result.search_parameter_keys)
        truths = None
        if result.injection_parameters:
            truths = [result.injection_parameters.get(k) for k in keys]
        corner_plot(result.posterior[keys].to_numpy(), keys, png, truths=truths)
        out_paths["corner"] = png
    return out_paths


def corner_plot(samples: np.ndarray, names: Sequence[str], path: str | Path,
                truths: Sequence[float | None] | None = None, title: str | None = None) -> Path:
    """A corner plot (``corner.corner``, 5/50/95 % quantiles, truths in orange) saved atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import corner
    import matplotlib.pyplot as plt

    from gwinfer.provenance import atomic_path

    fig = corner.corner(np.asarray(samples), labels=list(names), truths=truths, truth_color="tab:orange",
                        quantiles=[0.05, 0.5, 0.95], show_titles=True, title_fmt=".3g", bins=40, smooth=0.9,
                        plot_datapoints=False)
    if title:
        fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


# ------------------------------------------------------------------------------------------ p-p test
def credible_levels(samples: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """Fraction of posterior samples below each true value: samples (B, n, D), truths (B, D) -> (B, D)."""
    s, t = np.asarray(samples), np.asarray(truths)
    if s.ndim != 3 or t.shape != (s.shape[0], s.shape[2]):
        raise GwinferError(f"credible_levels: samples {s.shape} must be (B, n, D) and truths {t.shape} (B, D)")
    return np.mean(s < t[:, None, :], axis=1)


def pp_statistics(levels: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """KS p-values of each column of ``levels`` (N, D) against U(0, 1) and Fisher's combined p-value."""
    from scipy.stats import combine_pvalues, kstest

    cl = np.asarray(levels, dtype=float)
    pvals = {k: float(kstest(cl[:, i], "uniform").pvalue) for i, k in enumerate(names)}
    combined = float(combine_pvalues(list(pvals.values()), method="fisher").pvalue)
    return {"ks_pvalues": pvals, "combined_pvalue": combined}


def _pp_data(data: Any, seed: int) -> tuple[Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], int, Any]:
    """(fetch(indices) -> (theta (B, D), x (B, ...)), length, names or None) for the accepted data kinds."""
    from gwinfer.data.strain_dataset import StrainDataset

    if isinstance(data, (str, Path)):
        data = StrainDataset(data, seed=seed)
    if isinstance(data, StrainDataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")
                                           and not isinstance(data, tuple)):
        ds = data

        def fetch(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            items = [ds[int(i)] for i in idx]
            return (np.stack([np.asarray(t, dtype=np.float64) for t, _ in items]),
                    np.stack([np.asarray(x, dtype=np.float32) for _, x in items]))

        return fetch, len(ds), getattr(ds, "names", None)
    if isinstance(data, tuple) and len(data) == 2:
        theta, x = np.asarray(data[0], dtype=np.float64), np.asarray(data[1], dtype=np.float32)
        if theta.ndim != 2 or x.shape[0] != theta.shape[0]:
            raise GwinferError(f"pp data: theta {theta.shape} must be (N, D) and x {x.shape} (N, ...)")
        return (lambda idx: (theta[idx], x[idx])), theta.shape[0], None
    raise GwinferError("pp data must be a simulation file, a StrainDataset or a (theta, x) pair of arrays")


def pp_test(estimator: Any, data: Any, n_injections: int = 100, n_samples: int = 1000, seed: int = 0,
            names: Sequence[str] | None = None, out_dir: str | Path | None = None,
            max_batch_samples: int = 200_000, progress: bool = False) -> dict[str, Any]:
    """p-p test of ``estimator`` on ``n_injections`` examples of ``data``.

    ``data``: a simulation file (noise from ``StrainDataset(path, seed=seed)``, epoch 0), a
    :class:`~gwinfer.data.strain_dataset.StrainDataset`, or ``(theta (N, D), x (N, ...))`` arrays of
    observations. Injections are ``n_injections`` distinct rows drawn with ``default_rng(seed)``.
    Returns ``names``, ``indices``, ``credible_levels`` (n_injections, D), ``ks_pvalues`` {name: p},
    ``combined_pvalue`` (Fisher), ``n_samples``, ``seconds``; with ``out_dir`` also writes ``pp.png`` and
    ``pp.json`` there (``plot``, ``json`` entries).
    """
    import torch
    from tqdm import tqdm

    fetch, n_total, data_names = _pp_data(data, seed)
    if isinstance(n_injections, bool) or not isinstance(n_injections, int) or not 1 <= n_injections <= n_total:
        raise GwinferError(f"n_injections = {n_injections!r} must be an integer in [1, {n_total}]")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise GwinferError(f"n_samples = {n_samples!r} must be an integer >= 1")
    idx = np.sort(np.random.default_rng(seed).choice(n_total, size=n_injections, replace=False))
    if hasattr(estimator, "eval"):
        estimator.eval()
    batch = max(1, max_batch_samples // n_samples)
    levels, t0 = [], time.perf_counter()
    bar = tqdm(total=n_injections, disable=not progress, unit="inj", desc="p-p test")
    with torch.no_grad():
        for start in range(0, n_injections, batch):
            theta, x = fetch(idx[start:start + batch])
            s = estimator.sample(torch.from_numpy(np.ascontiguousarray(x)), n_samples)
            levels.append(credible_levels(s.double().numpy(), theta))
            bar.update(len(theta))
    bar.close()
    cl = np.concatenate(levels, axis=0)
    keys = _names(names if names is not None else data_names, cl.shape[1])
    out: dict[str, Any] = {"names": keys, "indices": idx, "credible_levels": cl, "n_samples": n_samples,
                           "seconds": time.perf_counter() - t0, **pp_statistics(cl, keys)}
    if out_dir is not None:
        from gwinfer.provenance import write_json

        d = Path(out_dir)
        out["plot"] = pp_plot(cl, keys, d / "pp.png", pvalues=out["ks_pvalues"], combined=out["combined_pvalue"])
        out["json"] = d / "pp.json"
        write_json(out["json"], {"names": keys, "n_injections": n_injections, "n_samples": n_samples, "seed": seed,
                                 "ks_pvalues": out["ks_pvalues"], "combined_pvalue": out["combined_pvalue"],
                                 "seconds": out["seconds"], "indices": idx.tolist(), "credible_levels": cl.tolist()})
    return out


def pp_plot(levels: np.ndarray, names: Sequence[str], path: str | Path, confidence: float = 0.9,
            pvalues: Mapping[str, float] | None = None, combined: float | None = None) -> Path:
    """The p-p plot (Green et al. 2020, Fig. 4): fraction of injections within each credible interval vs
    the interval, one line per parameter, grey binomial ``confidence`` band for N injections."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import binom

    from gwinfer.provenance import atomic_path

    cl = np.asarray(levels, dtype=float)
    n = cl.shape[0]
    grid = np.linspace(0.0, 1.0, 1001)
    fig, ax = plt.subplots(figsize=(5, 5))
    edge = (1.0 - confidence) / 2.0
    lo, hi = binom.ppf(edge, n, grid) / n, binom.ppf(1.0 - edge, n, grid) / n
    ax.fill_between(grid, lo, hi, color="0.85", label=f"{confidence:.0%} band (N = {n})")
    for i, k in enumerate(names):
        frac = np.mean(cl[:, i][:, None] <= grid[None, :], axis=0)
        label = k if pvalues is None else f"{k} ({pvalues[k]:.3f})"
        ax.plot(grid, frac, lw=1.2, label=label)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="credible interval", ylabel="fraction of injections in interval")
    if combined is not None:
        ax.set_title(f"N = {n}, combined p-value = {combined:.4g}")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return Path(path)


# ------------------------------------------------------------------------------------------ JSD
def _thin(a: np.ndarray, max_samples: int) -> np.ndarray:
    if a.size <= max_samples:
        return a
    return a[:: int(np.ceil(a.size / max_samples))]


def jsd_1d(samples_a: Any, samples_b: Any, bins: int = 200, method: str = "kde",
           max_samples: int = 20000) -> float | dict[str, float]:
    """Jensen-Shannon divergence (nats) of two 1-D sample sets, or per common key of two dicts (module docstring)."""
    from scipy.integrate import trapezoid
    from scipy.stats import gaussian_kde

    if isinstance(samples_a, Mapping) and isinstance(samples_b, Mapping):
        keys = [k for k in samples_a if k in samples_b]
        if not keys:
            raise GwinferError("jsd_1d: the two sample dicts share no parameter")
        return {k: float(jsd_1d(samples_a[k], samples_b[k], bins, method, max_samples)) for k in keys}
    if method not in ("kde", "hist"):
        raise GwinferError(f"jsd_1d method = {method!r}; accepted: 'kde', 'hist'")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise GwinferError(f"jsd_1d bins = {bins!r} must be an integer >= 2")
    a = np.asarray(samples_a, dtype=float).reshape(-1)
    b = np.asarray(samples_b, dtype=float).reshape(-1)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        raise GwinferError("jsd_1d needs at least 2 finite samples in each set")
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    if method == "hist":
        if hi <= lo:
            return 0.0
        edges = np.linspace(lo, hi, bins + 1)
        p = np.histogram(a, edges)[0] / a.size
        q = np.histogram(b, edges)[0] / b.size
        m = 0.5 * (p + q)
        with np.errstate(divide="ignore", invalid="ignore"):
            val = 0.5 * np.sum(np.where(p > 0, p * np.log(p / m), 0.0)) + 0.5 * np.sum(
                np.where(q > 0, q * np.log(q / m), 0.0))
        return float(np.clip(val, 0.0, np.log(2.0)))
    a, b = _thin(a, max_samples), _thin(b, max_samples)
    if np.std(a) == 0 or np.std(b) == 0:
        raise GwinferError("jsd_1d (kde) needs sample sets with non-zero spread; use method='hist'")
    ka, kb = gaussian_kde(a), gaussian_kde(b)
    pad = 3.0 * max(np.sqrt(ka.covariance[0, 0]), np.sqrt(kb.covariance[0, 0]))
    grid = np.linspace(lo - pad, hi + pad, bins + 1)
    p, q = ka(grid), kb(grid)
    p, q = p / trapezoid(p, grid), q / trapezoid(q, grid)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = 0.5 * np.where(p > 0, p * np.log(p / m), 0.0) + 0.5 * np.where(q > 0, q * np.log(q / m), 0.0)
    return float(np.clip(trapezoid(f, grid), 0.0, np.log(2.0)))


def estimate_errors(samples: Mapping[str, Any], reference: Mapping[str, Any],
                    level: float = 0.9) -> dict[str, dict[str, float]]:
    """Point-estimate and width errors of ``samples`` against ``reference`` posterior samples, per common key.

    For each parameter: ``median`` and ``reference_median``; ``relative_error`` =
    |median - reference_median| / |reference_median| (the relative error of the paper's Table I; ill-conditioned
    when the reference median is near 0, e.g. aligned spins, hence also) ``offset_in_widths`` = (median -
    reference_median) / (the reference's central ``level`` interval width), and ``width_ratio`` = this
    set's central ``level`` width over the reference's (1 = as wide as the reference sampler).
    """
    if not 0.0 < level < 1.0:
        raise GwinferError(f"level = {level} must lie in (0, 1)")
    keys = [k for k in samples if k in reference]
    if not keys:
        raise GwinferError("estimate_errors: the two sample sets share no parameter")
    q = [50 * (1 - level), 50, 50 * (1 + level)]
    out: dict[str, dict[str, float]] = {}
    for k in keys:
        lo, med, hi = np.percentile(np.asarray(samples[k], dtype=float), q)
        rlo, rmed, rhi = np.percentile(np.asarray(reference[k], dtype=float), q)
        width = rhi - rlo
        if not width > 0:
            raise GwinferError(f"estimate_errors: the reference samples of {k!r} have no spread")
        out[k] = {"median": float(med), "reference_median": float(rmed),
                  "relative_error": float(abs(med - rmed) / abs(rmed)) if rmed != 0 else float("inf"),
                  "offset_in_widths": float((med - rmed) / width), "width_ratio": float((hi - lo) / width)}
    return out


# ------------------------------------------------------------------------------------------ importance sampling
def _take(samples: Any, mask: np.ndarray) -> Any:
    if isinstance(samples, Mapping):
        return {k: np.asarray(v)[mask] for k, v in samples.items()}
    return np.asarray(samples)[mask]


def _length(samples: Any) -> int:
    if isinstance(samples, Mapping):
        lengths = {np.asarray(v).shape[0] for v in samples.values()}
        if len(lengths) != 1:
            raise GwinferError(f"importance_sample: sample columns have different lengths {sorted(lengths)}")
        return lengths.pop()
    return np.asarray(samples).shape[0]


def importance_sample(samples: Any, log_q: np.ndarray, log_likelihood_fn: Callable[[Any], np.ndarray],
                      log_prior_fn: Callable[[Any], np.ndarray], seed: int = 0,
                      n_resample: int | None = None) -> dict[str, Any]:
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
    log_norm = logsumexp(log_w)
    w = np.exp(log_w - log_norm)
    ess = float(1.0 / np.sum(w**2))
    m = max(1, int(ess)) if n_resample is None else int(n_resample)
    pick = np.random.default_rng(seed).choice(n, size=m, replace=True, p=w)
    std = float(np.sqrt(max(n / ess - 1.0, 0.0) / n))
    return {"log_weights": log_w, "weights": w, "ess": ess, "efficiency": ess / n,
            "log_evidence": float(log_norm - np.log(n)), "log_evidence_std": std, "samples": _take(samples, pick),
            "n": n}
