"""The reference posterior: bilby + dynesty nested sampling on the SAME likelihood the networks learn.

Data are whitened, noise is white N(0, 1) in every sample (the training convention of
:mod:`gwinfer.data.strain_dataset`), and the signal model is :class:`gwinfer.data.simulate.SignalModel`
(``whitened_strain`` with the simulation's PSD, band and approximant), so::

    log L(theta) = -0.5 sum_{det, t} (x - h(theta))^2 - 0.5 n log(2 pi)        (n = n_det * n_samples)

with priors from the simulation's prior file. :func:`reference_posterior` samples it with
``bilby.run_sampler(sampler="dynesty")``; parameters not searched are fixed (``DeltaFunction``) to the
given values (default: the injection's). :func:`log_likelihood_function` and :func:`log_prior_function`
give the vectorised forms :func:`gwinfer.evaluation.importance.importance_sample` expects.

Cost: one likelihood = one waveform (~1 ms). bilby's default dynesty settings (``act-walk``) need
~10^5-10^6 calls for the 5-D problem (minutes to an hour on one core); a 2-D case with ``sample="unif"``
and ``nlive=50`` takes a few seconds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from bilby.core.likelihood import Likelihood

from gwinfer.data.simulate import SignalModel, SimulationConfig, inferred_parameters, searched_keys
from gwinfer.errors import GwinferError

#: Vectorised log density: ``f(samples: {name: (n,) array}) -> (n,) array``.
LogDensity = Callable[[Mapping[str, np.ndarray]], np.ndarray]


class WhitenedGaussianLikelihood(Likelihood):
    """bilby likelihood of whitened data ``x`` (n_det, n_samples) with unit white Gaussian noise.

    ``fixed``: parameter values added under the sampled ones (e.g. ones the prior does not contain).
    A waveform that cannot be generated gives ``-inf``.
    """

    def __init__(self, x: np.ndarray, signal_model: SignalModel, fixed: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.x = np.asarray(x, dtype=np.float64)
        if self.x.shape != signal_model.shape:
            raise GwinferError(f"data shape {self.x.shape} does not match the signal model's {signal_model.shape}")
        self.signal_model = signal_model
        self.fixed = {k: float(v) for k, v in (fixed or {}).items()}
        self._noise = noise_log_likelihood(self.x)

    def _signal(self, parameters: Mapping[str, Any]) -> np.ndarray | None:
        """The whitened signal (n_det, n_samples) at ``parameters`` (over ``fixed``); None if it fails."""
        params = {**self.fixed, **{k: float(v) for k, v in parameters.items()}}
        try:
            return self.signal_model(params)
        except GwinferError:
            return None

    def log_likelihood_ratio(self, parameters: Mapping[str, Any] | None = None) -> float:
        """log L(theta) - log L(noise) = <x, h> - <h, h> / 2 (nats)."""
        h = self._signal(parameters or {})
        if h is None:
            return -np.inf
        return float(np.sum(self.x * h) - 0.5 * np.sum(h * h))

    def log_likelihood(self, parameters: Mapping[str, Any] | None = None) -> float:
        """log L(theta) (nats), normalised: -sum (x - h)^2 / 2 - n log(2 pi) / 2."""
        return self.log_likelihood_ratio(parameters) + self._noise

    def noise_log_likelihood(self) -> float:
        """log L of the noise-only model (h = 0), nats."""
        return self._noise


def noise_log_likelihood(x: np.ndarray) -> float:
    """log L of whitened data ``x`` under the noise-only model (h = 0; unit white noise), nats:
    -sum x^2 / 2 - n log(2 pi) / 2. With a log evidence of the same likelihood it gives the Bayes factor."""
    arr = np.asarray(x, dtype=np.float64)
    return -0.5 * float(np.sum(arr**2)) - 0.5 * arr.size * np.log(2.0 * np.pi)


def reference_priors(
    config: SimulationConfig, search: Sequence[str] | None, fixed: Mapping[str, float] | None
) -> tuple[Any, list[str]]:
    """(PriorDict, searched keys): the simulation's prior with every unsearched key fixed to ``fixed[key]``."""
    from bilby.core.prior import DeltaFunction

    prior = config.load_prior()
    keys = searched_keys(prior)
    search = list(search) if search else list(inferred_parameters(config, prior))
    bad = [k for k in search if k not in keys]
    if bad:
        raise GwinferError(f"cannot search {bad}: the prior {config.prior!r} samples only {keys}")
    for k in keys:
        if k not in search:
            if fixed is None or k not in fixed:
                raise GwinferError(f"parameter {k!r} is neither searched nor given a fixed value")
            prior[k] = DeltaFunction(float(fixed[k]), name=k)
    return prior, search


def reference_posterior(
    x: np.ndarray,
    config: SimulationConfig,
    *,
    injection_parameters: Mapping[str, float] | None = None,
    search: Sequence[str] | None = None,
    fixed: Mapping[str, float] | None = None,
    nlive: int = 500,
    seed: int = 0,
    label: str = "reference",
    outdir: str | None = None,
    sampler_kwargs: Mapping[str, Any] | None = None,
    meta_data: Mapping[str, Any] | None = None,
) -> Any:
    """bilby/dynesty posterior of whitened data ``x`` (n_det, n_samples) under ``config``'s model and prior.

    ``search``: parameters to sample (default ``config.parameters``); the prior's other sampled keys are
    fixed to ``fixed`` (default ``injection_parameters``). ``sampler_kwargs`` go to dynesty through bilby
    (e.g. ``{"sample": "unif"}`` for cheap low-dimensional runs, ``{"dlogz": 0.1}``). bilby's files go to
    ``outdir`` (a temporary folder by default; save the returned Result with
    :func:`gwinfer.evaluation.posterior.save_result`). ``seed`` seeds dynesty and bilby's global generator
    (restored afterwards), so a run is reproducible. The result is a ``bilby.gw.result.CBCResult`` with its log
    evidence, noise evidence and Bayes factor, and the derived columns of
    :func:`gwinfer.evaluation.derived.derived_parameters`.
    """
    import bilby
    import pandas as pd
    from bilby.gw.result import CBCResult

    from gwinfer.evaluation.derived import derived_parameters

    if isinstance(nlive, bool) or not isinstance(nlive, int) or nlive < 10:
        raise GwinferError(f"nlive = {nlive!r} must be an integer >= 10")
    fixed_values = dict(injection_parameters or {})
    fixed_values.update(fixed or {})
    prior, keys = reference_priors(config, search, fixed_values)
    likelihood = WhitenedGaussianLikelihood(x, SignalModel(config))
    kwargs: dict[str, Any] = {"check_point_plot": False, "resume": False, "check_point_delta_t": 1e9}
    kwargs.update(sampler_kwargs or {})
    inj = None
    if injection_parameters is not None:
        inj = {k: float(v) for k, v in injection_parameters.items()}
    from bilby.core.utils import random as brandom

    from gwinfer.evaluation.posterior import quiet_bilby

    saved_rng = brandom.Generator.rng
    brandom.Generator.rng = np.random.default_rng(seed)  # bilby draws the equal-weight posterior with it
    try:
        with quiet_bilby(), tempfile.TemporaryDirectory(prefix="gwinfer-reference-") as tmp:
            result = bilby.run_sampler(
                likelihood,
                prior,
                label=label,
                outdir=outdir or tmp,
                sampler="dynesty",
                nlive=nlive,
                seed=seed,
                injection_parameters=inj,
                save=False,
                plot=False,
                meta_data=dict(meta_data or {}),
                result_class=CBCResult,
                **kwargs,
            )
    finally:
        brandom.Generator.rng = saved_rng
    result.outdir = outdir or "."
    result.search_parameter_keys = list(keys)
    result.posterior = pd.DataFrame(derived_parameters({k: result.posterior[k].to_numpy() for k in result.posterior}))
    return result


def log_likelihood_function(
    x: np.ndarray, config: SimulationConfig, fixed: Mapping[str, float] | None = None
) -> LogDensity:
    """Vectorised ``f(samples: {name: (n,)}) -> (n,)`` log likelihood of :class:`WhitenedGaussianLikelihood`."""
    like = WhitenedGaussianLikelihood(x, SignalModel(config), fixed)

    def f(samples: Mapping[str, np.ndarray]) -> np.ndarray:
        keys = list(samples)
        n = len(np.asarray(samples[keys[0]]))
        return np.array([like.log_likelihood({k: samples[k][i] for k in keys}) for i in range(n)])

    return f


def log_prior_function(config: SimulationConfig, keys: Sequence[str]) -> LogDensity:
    """``f(samples: {name: (n,)}) -> (n,)``: the joint log prior density of ``keys`` (the simulation's prior,
    constraints applied; bilby normalises constrained priors by Monte Carlo): see
    :func:`gwinfer.evaluation.prior_support.log_prior_of`."""
    from gwinfer.evaluation.prior_support import log_prior_of

    return log_prior_of(config.load_prior(), keys, f"the prior {config.prior!r}")
