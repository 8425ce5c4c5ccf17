"""Posterior samples of one observation as a ``bilby.gw.result.CBCResult``, written with a corner plot.

* :func:`sample_posterior` - ``n`` draws of a posterior estimator for one observation as ``{name: array}``.
* :func:`make_result` - a ``CBCResult`` holding them (``posterior`` DataFrame, ``search_parameter_keys``,
  ``injection_parameters``, priors, evidence where known, provenance and the data's strain/PSD record in
  ``meta_data``), with the columns of :func:`~gwinfer.evaluation.derived.derived_parameters`
  (``bilby.gw.conversion``: masses, effective spin, redshift and source-frame masses).
* :func:`save_result` - the result written atomically as JSON or HDF5 (by extension, see
  :func:`result_paths`) and its corner plot (:func:`save_corner`, labels with units) as ``<stem>_corner.png``.
  Read back with ``bilby.gw.result.CBCResult.from_json`` (or ``bilby.result.read_in_result``) or pesummary.

Estimators are anything with ``sample(x, n)`` following the posterior estimators of :mod:`gwinfer.models`
(x float32 (batch, *x_shape) -> (batch, n, D)), so exact toy posteriors can be evaluated the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.evaluation.derived import cosmology_record, derived_parameters


@contextmanager
def quiet_bilby(level: int = logging.WARNING) -> Iterator[None]:
    """Raise the ``bilby`` logger to ``level`` inside the block (bilby logs every p-value and sampler step)."""
    logger = logging.getLogger("bilby")
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)


# ------------------------------------------------------------------------------------------ sampling
def parameter_names(names: Sequence[str] | None, d: int) -> list[str]:
    """``names`` as strings, checked to be ``d`` of them; ``theta_0, theta_1, ...`` when None."""
    if names is None:
        return [f"theta_{i}" for i in range(d)]
    if len(names) != d:
        raise GwinferError(f"{len(names)} parameter names given for {d}-dimensional samples")
    return [str(n) for n in names]


def sample_posterior(
    estimator: Any,
    x: Any,
    n: int,
    names: Sequence[str] | None = None,
    batch_size: int = 20000,
    seed: int | None = None,
) -> dict[str, np.ndarray]:
    """``n`` posterior samples of one observation ``x`` (shape ``x_shape``) as ``{name: float64 array (n,)}``.

    Samples are drawn in chunks of ``batch_size`` (memory). ``names`` default ``theta_0, theta_1, ...``.
    Units are those the estimator was trained on (e.g. Msun, Mpc, s, rad for bilby's parameters).
    ``seed``: draws from a generator seeded with it (the global one is left as it was); None: the global.
    A non-finite, absurdly large or all-zero observation is refused with one line (it would give NaN
    samples, or a confident posterior of nothing).
    """
    import torch

    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return sample_posterior(estimator, x, n, names, batch_size)
    arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise GwinferError("the observation holds NaN or inf; only finite whitened strain is accepted")
    if arr.size and float(np.max(np.abs(arr))) > 1e6:
        raise GwinferError(
            f"the observation has values up to {float(np.max(np.abs(arr))):.3g}; whitened strain is O(1) "
            "(accepted |x| <= 1e6): was it whitened?"
        )

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GwinferError(f"number of samples n = {n!r} must be an integer >= 1")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise GwinferError(f"batch_size = {batch_size!r} must be an integer >= 1")
    if arr.size and not np.any(arr):
        raise GwinferError("the observation is all zeros: whitened strain is O(1) noise, there is nothing to infer")
    xt = x if isinstance(x, torch.Tensor) else torch.as_tensor(arr)
    xt = xt.to(torch.float32)
    if hasattr(estimator, "eval"):
        estimator.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            chunks.append(estimator.sample(xt, min(batch_size, n - start)).double().numpy())
    s = np.concatenate(chunks, axis=0)
    if s.ndim != 2:
        raise GwinferError(f"estimator.sample returned shape {s.shape} for one observation; expected (n, D)")
    return {k: s[:, i] for i, k in enumerate(parameter_names(names, s.shape[1]))}


# ------------------------------------------------------------------------------------------ bilby results
def result_priors(keys: Sequence[str], priors: Mapping[str, Any] | None = None) -> Any:
    """A ``PriorDict`` of copies of ``priors`` with an unbounded placeholder ``Prior`` for every key of
    ``keys`` it lacks (bilby needs one per search key for its labels). Every prior without a LaTeX label or
    unit gets bilby's default label and gwinfer's unit (:mod:`gwinfer.evaluation.labels`), so bilby's own
    plots of the result are labelled too."""
    import copy

    from bilby.core.prior import Constraint, PriorDict

    from gwinfer.evaluation.labels import latex_label, unit_of

    prior_dict = (
        PriorDict({k: copy.deepcopy(v) for k, v in dict(priors).items()}) if priors is not None else PriorDict()
    )
    for k in keys:
        if k not in prior_dict:
            prior_dict[k] = Constraint(-np.inf, np.inf, name=k, latex_label=latex_label(k), unit=unit_of(k))
    for k, prior in prior_dict.items():
        if hasattr(prior, "unit") and not getattr(prior, "unit", None) and unit_of(k):
            prior.unit = unit_of(k)
    return prior_dict


def sample_in_prior(
    estimator: Any,
    x: Any,
    n: int,
    names: Sequence[str],
    log_prior: Any,
    seed: int | None = None,
    max_rounds: int = 20,
) -> tuple[dict[str, np.ndarray], float]:
    """``n`` draws of ``estimator`` inside the support of the training prior and the accepted fraction.

    A flow leaks a little mass outside its prior (mass_ratio > 1, spins beyond 0.99, ...): those draws have
    zero prior probability and are rejected and replaced, as DINGO does; every command (``sample``,
    ``analyze``, ``pp``, ``gwinfer serve``) treats them this way
    (:func:`gwinfer.evaluation.prior_support.reject_and_replace`; rounds of at least 1000 draws here).
    ``log_prior(samples) -> (n,)`` is -inf outside the support; None keeps every draw.
    """
    import torch

    from gwinfer.evaluation.prior_support import reject_and_replace

    if log_prior is None:
        return sample_posterior(estimator, x, n, names, seed=seed), 1.0
    keys = list(names)

    def draw(events: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        cols = sample_posterior(estimator, x, int(sizes.max()), keys)
        return np.stack([cols[k] for k in keys], axis=-1)[None]

    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(int(seed))
        res = reject_and_replace(draw, n, 1, keys, log_prior, max_rounds=max_rounds, min_round=1000)
    return {k: res.draws[0, :, i] for i, k in enumerate(keys)}, res.fraction


def make_result(
    samples: Mapping[str, np.ndarray],
    *,
    label: str = "gwinfer",
    search_parameter_keys: Sequence[str] | None = None,
    injection_parameters: Mapping[str, float] | None = None,
    priors: Any = None,
    meta_data: Mapping[str, Any] | None = None,
    log_q: np.ndarray | None = None,
    derived: bool = True,
    sampling_time: float | None = None,
    log_evidence: float = float("nan"),
    log_evidence_err: float = float("nan"),
    log_noise_evidence: float = float("nan"),
    log_bayes_factor: float = float("nan"),
) -> Any:
    """A ``bilby.gw.result.CBCResult`` holding ``samples`` ({name: (n,) array}) as its posterior.

    ``derived`` adds the columns of :func:`~gwinfer.evaluation.derived.derived_parameters` (masses,
    ``chi_eff``; with ``luminosity_distance`` the redshift and source-frame masses in bilby's Planck15);
    ``log_q`` (the estimator's log density of each sample) becomes the ``log_q`` column. ``priors`` (a
    mapping of bilby priors, e.g. the simulation's) is stored; search keys without one get a placeholder
    (:func:`result_priors`). ``sampling_time`` in s.

    ``log_evidence`` +- ``log_evidence_err``, ``log_noise_evidence`` and ``log_bayes_factor`` (natural logs)
    are stored where known (NaN: unknown); of the last three, two given determine the third
    (ln BF = ln Z - ln Z_noise).

    ``meta_data`` is stored as given plus ``meta_data["gwinfer"]`` (``version``, ``derived`` columns and,
    for source-frame columns, the ``cosmology``) and ``meta_data["likelihood"]``, bilby's place for the
    data the posterior is of: pass :func:`gwinfer.evaluation.records.likelihood_record` there (strain and
    PSD provenance per detector, sampling, waveform); an empty mapping when not given.
    """
    import pandas as pd
    from bilby.gw.result import CBCResult

    from gwinfer import __version__

    keys = list(search_parameter_keys or samples.keys())
    missing = [k for k in keys if k not in samples]
    if missing:
        raise GwinferError(f"search parameters {missing} have no samples")
    cols = derived_parameters(samples) if derived else {k: np.asarray(v, dtype=float) for k, v in samples.items()}
    if log_q is not None:
        cols["log_q"] = np.asarray(log_q, dtype=float)
    inj = None
    if injection_parameters is not None:
        inj = {k: float(v) for k, v in injection_parameters.items()}
    evidence = _evidences(log_evidence, log_evidence_err, log_noise_evidence, log_bayes_factor)
    meta = dict(meta_data or {})
    ours = dict(meta.get("gwinfer") or {})
    ours["version"] = __version__
    ours["derived"] = [k for k in cols if k not in samples]
    if "redshift" in ours["derived"]:
        ours["cosmology"] = cosmology_record()
    meta["gwinfer"] = ours
    meta["likelihood"] = dict(meta.get("likelihood") or {})
    return CBCResult(
        label=label,
        outdir=".",
        sampler="gwinfer",
        search_parameter_keys=keys,
        fixed_parameter_keys=[],
        constraint_parameter_keys=[],
        priors=result_priors(keys, priors),
        injection_parameters=inj,
        meta_data=meta,
        posterior=pd.DataFrame(cols),
        sampling_time=sampling_time,
        **evidence,
    )


def _evidences(log_z: float, log_z_err: float, log_z_noise: float, log_bf: float) -> dict[str, float]:
    """The four evidence numbers as floats (NaN unknown), the third of ln Z, ln Z_noise, ln BF filled in
    from the other two; refused when all three are given and disagree or any is +-inf."""
    vals = {
        "log_evidence": log_z,
        "log_evidence_err": log_z_err,
        "log_noise_evidence": log_z_noise,
        "log_bayes_factor": log_bf,
    }
    out: dict[str, float] = {}
    for k, v in vals.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            raise GwinferError(f"{k} = {v!r} must be a number (NaN when unknown)") from None
        if np.isinf(out[k]):
            raise GwinferError(f"{k} = {v!r} must be finite (NaN when unknown)")
    if out["log_evidence_err"] < 0:
        raise GwinferError(f"log_evidence_err = {log_z_err!r} must be >= 0")
    z, zn, bf = out["log_evidence"], out["log_noise_evidence"], out["log_bayes_factor"]
    known = [not np.isnan(v) for v in (z, zn, bf)]
    if all(known) and not np.isclose(bf, z - zn, rtol=1e-9, atol=1e-9):
        raise GwinferError(f"log_bayes_factor {bf} != log_evidence {z} - log_noise_evidence {zn}")
    if known == [True, True, False]:
        out["log_bayes_factor"] = z - zn
    elif known == [True, False, True]:
        out["log_noise_evidence"] = z - bf
    elif known == [False, True, True]:
        out["log_evidence"] = bf + zn
    return out


def result_paths(out: str | Path) -> tuple[Path, Path]:
    """(result file, corner PNG) for ``out``: ``.json``/``.hdf5``/``.h5`` kept, otherwise ``.json`` added."""
    p = Path(out)
    if p.suffix not in (".json", ".hdf5", ".h5"):
        p = p.with_name(p.name + ".json")
    return p, p.with_name(p.stem + "_corner.png")


def save_result(
    result: Any, out: str | Path, corner: bool = True, parameters: Sequence[str] | None = None
) -> dict[str, Path]:
    """Write ``result`` atomically (JSON or HDF5 by extension, see :func:`result_paths`) and, with ``corner``,
    its corner plot of ``parameters`` (default the search keys). Returns ``{"result", "corner"}`` paths."""
    from gwinfer.provenance import atomic_path

    path, png = result_paths(out)
    ext = "json" if path.suffix == ".json" else "hdf5"
    with atomic_path(path) as tmp:
        result.save_to_file(filename=str(tmp), extension=ext, overwrite=True)
    out_paths = {"result": path}
    if corner:
        out_paths["corner"] = save_corner(result, png, parameters)
    return out_paths


def save_corner(result: Any, path: str | Path, parameters: Sequence[str] | None = None) -> Path:
    """``result.plot_corner`` of ``parameters`` (default the search keys) saved atomically as PNG.

    Axes carry LaTeX labels with units (bilby's prior labels, :mod:`gwinfer.evaluation.labels` for the
    rest); a GPS time is plotted after a whole-second offset written into its label. Titles give the median
    and the central 90 % interval (5 % and 95 % quantiles, also drawn) to two significant digits of the
    interval; the injection values, where the result has them, are the truths (orange).
    """
    from bilby.core.result import Result

    from gwinfer.evaluation.figures import pyplot, save_png
    from gwinfer.evaluation.labels import axis_label, time_offset

    keys = list(parameters or result.search_parameter_keys)
    missing = [k for k in keys if k not in result.posterior]
    if missing:
        raise GwinferError(f"corner plot: the posterior has no samples of {missing}")
    priors = result.priors or {}
    offsets = {k: time_offset(k, result.posterior[k]) for k in keys}
    shown = Result(
        label=result.label,
        search_parameter_keys=keys,
        posterior=result.posterior[keys] - np.array([offsets[k] for k in keys]),
    )
    inj = result.injection_parameters
    truths = {k: (inj[k] - offsets[k] if inj.get(k) is not None else None) for k in keys} if inj else None
    labels = [axis_label(k, priors.get(k), offsets[k]) for k in keys]
    quantiles = [0.05, 0.95]
    pyplot()  # the Agg backend before bilby draws
    with quiet_bilby():
        fig = shown.plot_corner(
            parameters=truths or keys,
            labels=labels,
            titles=False,
            save=False,
            quantiles=quantiles,
            bins=40,
            smooth=0.9,
            plot_datapoints=False,
        )
        axes = fig.get_axes()
        for i, k in enumerate(keys):
            axes[i * (len(keys) + 1)].set_title(corner_title(shown, k, quantiles), fontsize=12)
    return save_png(fig, path, dpi=100)


def corner_title(result: Any, key: str, quantiles: Sequence[float]) -> str:
    """``$median^{+plus}_{-minus}$`` of ``key`` (central interval ``quantiles``) to two significant digits
    of the smaller error bar (at most 6 decimals)."""
    summary = result.get_one_dimensional_median_and_error_bar(key, quantiles=quantiles)
    err = min(abs(summary.plus), abs(summary.minus))
    decimals = int(np.clip(1 - np.floor(np.log10(err)), 0, 6)) if np.isfinite(err) and err > 0 else 2
    return result.get_one_dimensional_median_and_error_bar(key, fmt=f".{decimals}f", quantiles=quantiles).string
