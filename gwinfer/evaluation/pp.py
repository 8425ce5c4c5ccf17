"""The p-p test of a posterior estimator (Green, Simpson & Gair 2020, Fig. 4) with bilby's ``make_pp_plot``.

For many injections with known parameters, the credible level of each true value is the fraction of
posterior samples below it (:func:`credible_levels`). Each injection's draws become a
``bilby.core.result.Result`` and ``bilby.core.result.make_pp_plot`` computes the KS p-value of each
parameter's levels against U(0, 1) (``scipy.stats.kstest``), their combination by Fisher's method
(``scipy.stats.combine_pvalues``) and draws the p-p plot with the binomial band (:func:`pp_plot`).

Draws outside the training prior (a flow leaks a little mass there) are rejected and replaced, as ``sample``
and ``analyze`` do (:func:`~gwinfer.evaluation.posterior.sample_in_prior`): :func:`in_prior_draws`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError

#: Line formats of the p-p plot: bilby's default order (3 line styles x 8 colours), continued past 24.
_STYLES = ("-", "--", ":", "-.")


def credible_levels(samples: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """Fraction of posterior samples below each true value: samples (B, n, D), truths (B, D) -> (B, D)."""
    s, t = np.asarray(samples), np.asarray(truths)
    if s.ndim != 3 or t.shape != (s.shape[0], s.shape[2]):
        raise GwinferError(f"credible_levels: samples {s.shape} must be (B, n, D) and truths {t.shape} (B, D)")
    return np.mean(s < t[:, None, :], axis=1)


def injection_results(samples: np.ndarray, truths: np.ndarray, names: Sequence[str]) -> list[Any]:
    """One ``bilby.core.result.Result`` per injection: samples (B, n, D) as its posterior, truths (B, D) as
    its ``injection_parameters``, ``names`` (D) as search keys (placeholder priors)."""
    import pandas as pd
    from bilby.core.result import Result

    from gwinfer.evaluation.posterior import result_priors

    s, t = np.asarray(samples, dtype=float), np.asarray(truths, dtype=float)
    keys = list(names)
    if s.ndim != 3 or t.shape != (s.shape[0], s.shape[2]) or len(keys) != s.shape[2]:
        raise GwinferError(
            f"injection_results: samples {s.shape} must be (B, n, D), truths {t.shape} (B, D) and "
            f"{len(keys)} names given for D"
        )
    priors = result_priors(keys)
    return [
        Result(
            label=f"injection_{i}",
            search_parameter_keys=keys,
            priors=priors,
            posterior=pd.DataFrame(s[i], columns=keys),
            injection_parameters={k: float(v) for k, v in zip(keys, t[i])},
        )
        for i in range(s.shape[0])
    ]


def pp_plot(
    results: Sequence[Any], names: Sequence[str], path: str | Path | None = None, confidence: float = 0.9
) -> dict[str, Any]:
    """``bilby.core.result.make_pp_plot`` of injection ``results`` (see :func:`injection_results`).

    The plot: fraction of injections within each credible interval vs the interval, one line per
    parameter (legend: its KS p-value), grey binomial ``confidence`` band for N injections, title with the
    combined p-value; written atomically to ``path`` (PNG) when given. Returns ``ks_pvalues`` {name: p}
    and ``combined_pvalue`` (Fisher), and ``plot`` (the path) when written.
    """
    from bilby.core.result import make_pp_plot

    from gwinfer.evaluation.figures import pyplot, save_png
    from gwinfer.evaluation.posterior import quiet_bilby

    if not 0.0 < confidence < 1.0:
        raise GwinferError(f"confidence = {confidence} must lie in (0, 1)")
    keys = list(names)
    if not results or not keys:
        raise GwinferError("pp_plot needs at least one injection result and one parameter")
    lines = [f"{_STYLES[(i // 8) % len(_STYLES)]}C{i % 8}" for i in range(len(keys))]
    pyplot()  # the Agg backend before bilby draws
    with quiet_bilby():
        fig, pvals = make_pp_plot(list(results), save=False, confidence_interval=[confidence], keys=keys, lines=lines)
    if list(pvals.names) != keys:
        raise GwinferError(
            f"make_pp_plot returned p-values of {list(pvals.names)}; expected {keys} (every "
            "injection needs a float value of each parameter)"
        )
    out: dict[str, Any] = {
        "ks_pvalues": {k: float(p) for k, p in zip(keys, pvals.pvalues)},
        "combined_pvalue": float(pvals.combined_pvalue),
    }
    if path is None:
        pyplot().close(fig)
    else:
        out["plot"] = save_png(fig, path, dpi=120)
    return out


def _pp_data(data: Any, seed: int) -> tuple[Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], int, Any]:
    """(fetch(indices) -> (theta (B, D), x (B, ...)), length, names or None) for the accepted data kinds."""
    from gwinfer.data.strain_dataset import StrainDataset

    if isinstance(data, (str, Path)):
        data = StrainDataset(data, seed=seed)
    if isinstance(data, StrainDataset) or (
        hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, tuple)
    ):
        ds = data

        def fetch(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            items = [ds[int(i)] for i in idx]
            return (
                np.stack([np.asarray(t, dtype=np.float64) for t, _ in items]),
                np.stack([np.asarray(x, dtype=np.float32) for _, x in items]),
            )

        return fetch, len(ds), getattr(ds, "names", None)
    if isinstance(data, tuple) and len(data) == 2:
        theta, x = np.asarray(data[0], dtype=np.float64), np.asarray(data[1], dtype=np.float32)
        if theta.ndim != 2 or x.shape[0] != theta.shape[0]:
            raise GwinferError(f"pp data: theta {theta.shape} must be (N, D) and x {x.shape} (N, ...)")
        return (lambda idx: (theta[idx], x[idx])), theta.shape[0], None
    raise GwinferError("pp data must be a simulation file, a StrainDataset or a (theta, x) pair of arrays")


def in_prior_draws(
    estimator: Any, x: Any, n: int, keys: Sequence[str], log_prior: Any, max_rounds: int = 20
) -> tuple[np.ndarray, float]:
    """``n`` draws per observation of ``x`` (B, ...) as (B, n, D) float64, all inside the prior
    (``log_prior({name: (m,)}) -> (m,)``, -inf outside; None keeps every draw), and the accepted fraction.
    Rejected draws are replaced by fresh ones of the same observation
    (:func:`gwinfer.evaluation.prior_support.reject_and_replace`); one line if too few are inside."""
    import torch

    from gwinfer.evaluation.prior_support import reject_and_replace

    s = estimator.sample(x, n).double().numpy()
    if log_prior is None:
        return s, 1.0

    def draw(events: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        return estimator.sample(x[torch.as_tensor(events)], int(sizes.max())).double().numpy()

    res = reject_and_replace(draw, n, s.shape[0], list(keys), log_prior, first=s, max_rounds=max_rounds)
    return res.draws, res.fraction


def pp_test(
    estimator: Any,
    data: Any,
    n_injections: int = 100,
    n_samples: int = 1000,
    seed: int = 0,
    names: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    max_batch_samples: int = 200_000,
    progress: bool = False,
    log_prior: Any = None,
) -> dict[str, Any]:
    """p-p test of ``estimator`` on ``n_injections`` examples of ``data``.

    ``data``: a simulation file (noise from ``StrainDataset(path, seed=seed)``, epoch 0), a
    :class:`~gwinfer.data.strain_dataset.StrainDataset`, or ``(theta (N, D), x (N, ...))`` arrays of
    observations. Injections are ``n_injections`` distinct rows drawn with ``default_rng(seed)``; at most
    ``max_batch_samples`` draws are made at once. All draws are kept for bilby (n_injections x n_samples x D
    float64). Returns ``names``, ``indices``, ``credible_levels`` (n_injections, D), ``ks_pvalues``
    {name: p}, ``combined_pvalue`` (Fisher), ``n_samples``, ``seconds`` (of sampling), ``in_prior_fraction``;
    with ``out_dir`` also writes ``pp.png`` and ``pp.json`` there (``plot``, ``json`` entries).
    ``log_prior`` (the training prior's joint log density, :func:`~gwinfer.evaluation.reference.log_prior_function`):
    draws outside it are replaced (:func:`in_prior_draws`); None keeps every draw.
    """
    import torch
    from tqdm import tqdm

    from gwinfer.evaluation.posterior import parameter_names

    fetch, n_total, data_names = _pp_data(data, seed)
    if isinstance(n_injections, bool) or not isinstance(n_injections, int) or not 1 <= n_injections <= n_total:
        raise GwinferError(f"n_injections = {n_injections!r} must be an integer in [1, {n_total}]")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise GwinferError(f"n_samples = {n_samples!r} must be an integer >= 1")
    idx = np.sort(np.random.default_rng(seed).choice(n_total, size=n_injections, replace=False))
    if hasattr(estimator, "eval"):
        estimator.eval()
    batch = max(1, max_batch_samples // n_samples)
    levels, results, keys, t0, accepted = [], [], None, time.perf_counter(), []
    bar = tqdm(total=n_injections, disable=not progress, unit="inj", desc="p-p test")
    with torch.no_grad():
        for start in range(0, n_injections, batch):
            theta, x = fetch(idx[start : start + batch])
            keys = keys or parameter_names(names if names is not None else data_names, np.shape(theta)[1])
            xt = torch.from_numpy(np.ascontiguousarray(x))
            s, fraction = in_prior_draws(estimator, xt, n_samples, keys, log_prior)
            accepted.append(fraction)
            levels.append(credible_levels(s, theta))
            results.extend(injection_results(s, theta, keys))
            bar.update(len(theta))
    bar.close()
    seconds = time.perf_counter() - t0
    cl = np.concatenate(levels, axis=0)
    png = Path(out_dir) / "pp.png" if out_dir is not None else None
    out: dict[str, Any] = {
        "names": keys,
        "indices": idx,
        "credible_levels": cl,
        "n_samples": n_samples,
        "seconds": seconds,
        "in_prior_fraction": float(np.mean(accepted)),
        **pp_plot(results, keys, png),
    }
    if out_dir is not None:
        from gwinfer.provenance import write_json

        out["json"] = Path(out_dir) / "pp.json"
        write_json(
            out["json"],
            {
                "names": keys,
                "n_injections": n_injections,
                "n_samples": n_samples,
                "seed": seed,
                "ks_pvalues": out["ks_pvalues"],
                "combined_pvalue": out["combined_pvalue"],
                "seconds": out["seconds"],
                "in_prior_fraction": out["in_prior_fraction"],
                "indices": idx.tolist(),
                "credible_levels": cl.tolist(),
            },
        )
    return out
