"""Posterior samples of one observation as a ``bilby.core.result.Result``, written with a corner plot.

* :func:`sample_posterior` - ``n`` draws of a posterior estimator for one observation as ``{name: array}``.
* :func:`make_result` - a ``Result`` holding them (``posterior`` DataFrame, ``search_parameter_keys``,
  ``injection_parameters``, priors, provenance in ``meta_data``), with the derived masses and effective spin
  of :func:`derived_parameters` (``bilby.gw.conversion``).
* :func:`save_result` - the ``Result`` written atomically as JSON or HDF5 (by extension, see
  :func:`result_paths`) and its corner plot (``Result.plot_corner``) as ``<stem>_corner.png``.

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
    A non-finite or absurdly large observation is refused with one line (it would give NaN samples).
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


# ------------------------------------------------------------------------------------------ derived parameters
def derived_parameters(samples: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``samples`` (float64 arrays) plus the masses and effective spin derived by ``bilby.gw.conversion``.

    * from ``mass_1``, ``mass_2`` (Msun): ``mass_ratio`` = m2/m1 <= 1 and ``chirp_mass`` (Msun), unless
      already given (``component_masses_to_mass_ratio``, ``component_masses_to_chirp_mass``);
    * otherwise from ``chirp_mass`` (Msun) and ``mass_ratio``: ``mass_1``, ``mass_2`` (Msun)
      (``chirp_mass_and_mass_ratio_to_component_masses``);
    * with aligned spins ``chi_1``, ``chi_2`` and the masses: ``chi_eff`` = (chi_1 + q chi_2) / (1 + q),
      q = m2/m1, unless already given (``generate_spin_parameters``).

    Only these columns are added (bilby's ``generate_all_bbh_parameters`` would add some thirty more).
    """
    from bilby.gw import conversion

    out = {k: np.asarray(v, dtype=float) for k, v in samples.items()}
    if "mass_1" in out and "mass_2" in out:
        out.setdefault("mass_ratio", conversion.component_masses_to_mass_ratio(out["mass_1"], out["mass_2"]))
        out.setdefault("chirp_mass", conversion.component_masses_to_chirp_mass(out["mass_1"], out["mass_2"]))
    elif "chirp_mass" in out and "mass_ratio" in out:
        out["mass_1"], out["mass_2"] = conversion.chirp_mass_and_mass_ratio_to_component_masses(
            out["chirp_mass"], out["mass_ratio"]
        )
    if "chi_1" in out and "chi_2" in out and "mass_1" in out and "chi_eff" not in out:
        spins = {
            "chi_1": out["chi_1"],
            "chi_2": out["chi_2"],
            "mass_ratio": conversion.component_masses_to_mass_ratio(out["mass_1"], out["mass_2"]),
        }
        out["chi_eff"] = np.asarray(conversion.generate_spin_parameters(spins)["chi_eff"], dtype=float)
    return out


# ------------------------------------------------------------------------------------------ bilby results
def result_priors(keys: Sequence[str], priors: Mapping[str, Any] | None = None) -> Any:
    """A ``PriorDict`` of ``priors`` with an unbounded placeholder ``Prior`` (label = name) for every key of
    ``keys`` it lacks: bilby needs one per search key for its labels."""
    from bilby.core.prior import Prior, PriorDict

    prior_dict = PriorDict(dict(priors)) if priors is not None else PriorDict()
    for k in keys:
        if k not in prior_dict:
            prior_dict[k] = Prior(name=k, latex_label=k)
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
    zero prior probability and are rejected, as DINGO does; every command (``sample``, ``analyze``) treats
    them this way. ``log_prior(samples) -> (n,)`` is -inf outside the support; None keeps every draw.
    """
    import torch

    if log_prior is None:
        return sample_posterior(estimator, x, n, names, seed=seed), 1.0
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(int(seed))
        kept: list[dict[str, np.ndarray]] = []
        total = drawn = 0
        for _ in range(max_rounds):
            batch = sample_posterior(estimator, x, max(n - total, 1000), names)
            ok = np.isfinite(log_prior(batch))
            drawn += ok.size
            kept.append({k: v[ok] for k, v in batch.items()})
            total += int(ok.sum())
            if total >= n:
                break
    if total < n:
        raise GwinferError(
            f"only {total} of {drawn} posterior draws lie inside the training prior: the data "
            "are probably outside what the model was trained on"
        )
    return {k: np.concatenate([b[k] for b in kept])[:n] for k in names}, total / drawn


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
) -> Any:
    """A ``bilby.core.result.Result`` holding ``samples`` ({name: (n,) array}) as its posterior.

    ``derived`` adds the columns of :func:`derived_parameters` (``chirp_mass``/``mass_ratio`` or
    ``mass_1``/``mass_2``, ``chi_eff``); ``log_q`` (the estimator's log density of each sample) becomes the
    ``log_q`` column. ``priors`` (a mapping of bilby priors, e.g. the simulation's) is stored; search keys
    without one get a placeholder (:func:`result_priors`). ``sampling_time`` in s.
    """
    import pandas as pd
    from bilby.core.result import Result

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
    return Result(
        label=label,
        outdir=".",
        sampler="gwinfer",
        search_parameter_keys=keys,
        fixed_parameter_keys=[],
        constraint_parameter_keys=[],
        priors=result_priors(keys, priors),
        injection_parameters=inj,
        meta_data=dict(meta_data or {}),
        posterior=pd.DataFrame(cols),
        sampling_time=sampling_time,
    )


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

    Titles give the median and the central 90 % interval (5 % and 95 % quantiles, also drawn); the
    injection values, where the result has them, are the truths (orange).
    """
    from gwinfer.evaluation.figures import pyplot, save_png

    keys = list(parameters or result.search_parameter_keys)
    missing = [k for k in keys if k not in result.posterior]
    if missing:
        raise GwinferError(f"corner plot: the posterior has no samples of {missing}")
    inj = result.injection_parameters
    plotted: list[str] | dict[str, float | None] = {k: inj.get(k) for k in keys} if inj else keys
    pyplot()  # the Agg backend before bilby draws
    with quiet_bilby():
        fig = result.plot_corner(
            parameters=plotted, save=False, quantiles=[0.05, 0.95], bins=40, smooth=0.9, plot_datapoints=False
        )
    return save_png(fig, path, dpi=100)
