"""Importance sampling of a real event with an event model as proposal (after DINGO-IS, Dax et al. 2023,
PRL 130, 171403), on this CPU.

Likelihood: bilby's ``GravitationalWaveTransient`` with the phase AND the coalescence time marginalised
(time on a 1/4096 s grid, :data:`LIKELIHOOD_RATE`), on the event's own segment and off-source PSD
(:mod:`gwinfer.evaluation.event`), the bank's approximant, band and reference frequency, and the bank's prior:
the same model of the data the network was trained on. The data are given to bilby as a frequency series
with the PSD times the window power, exactly the whitening of the network's input (tested). geocent_time is
reconstructed afterwards, one draw per sample from its conditional posterior (bilby).

Importance sampling therefore runs over the 9 other parameters. Round 0's proposal is the network's: a
Gaussian mixture (:func:`fit_gmm`, ``components``, covariances widened by ``inflate**2``) fitted to ``n``
network draws (the flow's 9-parameter marginal has no closed form). Weights ``w = L pi / q``; effective
sample size ``ESS = (sum w)^2 / sum w^2``, sampling efficiency ``ESS / N``, evidence ``ln Z = ln mean(w)``
with error ``sqrt((N / ESS - 1) / N)``. Draws outside the prior have ``pi = 0``: weight 0, counted in N.

Refinement, while ESS < ``target_ess`` (at most ``max_rounds`` rounds): the next proposal is the defensive
mixture ``alpha q_network + (1 - alpha) q_refit``. ``q_refit`` is a Gaussian mixture fitted to the weighted
draws of the last two rounds or, when their ESS is below ``refit_ess`` (too few effective draws to fit
anything in 9-D), a zuko neural spline flow (:class:`FlowProposal`) fitted to the second half of a short
emcee run started from them (later runs continue the walkers of the last; :meth:`EventSampler.mcmc`).
Measured on O1 events (docs/results-posterior.md): the emcee chain does not converge in these few hundred
steps, and the rounds stay far below a useful efficiency. Every round is an exact
importance sampler (its proposal density is known), so the estimate is the last round's weighted draws;
the MCMC only shapes proposals. Below the target after ``max_rounds`` the answer is an error saying the
model does not cover the event (a warning with ``allow_low_ess``). ``ra`` and ``psi`` are periodic.

All of this works in the model's coordinates (``ra`` at sidereal time 0), where the bank's prior applies
as it is; the likelihood sees user coordinates.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gwinfer.data.fd_bank import prior_from_text
from gwinfer.errors import GwinferError
from gwinfer.evaluation.importance import ess_of, evidence
from gwinfer.parallel import pinned_pool

log = logging.getLogger(__name__)

#: Periods of the periodic parameters of an event model (rad).
PERIODS = {"ra": 2 * np.pi, "psi": np.pi}


# --------------------------------------------------------------------------------------------- likelihood
@dataclass
class LikelihoodSpec:
    """Everything a (worker) process needs to rebuild the likelihood: plain arrays and config."""

    bank: dict[str, Any]
    prior_text: str
    gps: float
    start: float
    frequencies: np.ndarray
    strain: dict[str, np.ndarray]
    psd: dict[str, np.ndarray]
    window_power: float


def spec_of(event: Any, info: Mapping[str, Any], prior_text: str) -> LikelihoodSpec:
    """The :class:`LikelihoodSpec` of an :class:`~gwinfer.evaluation.event.EventData` for a model's ``info``."""
    return LikelihoodSpec(
        dict(info["bank"]),
        prior_text,
        event.gps,
        event.start,
        event.frequencies,
        event.strain,
        event.psd,
        event.window_power,
    )


#: Sampling rate (Hz) of the likelihood's frequency grid: its time marginalisation sums over time shifts
#: spaced 1 / LIKELIHOOD_RATE (0.24 ms; GW150914's time posterior is ~0.3 ms wide at the 1-sigma level).
LIKELIHOOD_RATE = 4096.0


def build_likelihood(spec: LikelihoodSpec, time_marginalization: bool = True) -> Any:
    """bilby's phase- (and time-) marginalised GravitationalWaveTransient of ``spec`` (module docstring).

    The data (and the PSD) are given on the rfft grid of a LIKELIHOOD_RATE series, zero (inert) outside the
    model's band, so the time marginalisation resolves the time posterior."""
    import bilby

    from gwinfer.data.fd_bank import FDBankConfig, waveform_generator

    config = FDBankConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.bank.items()})
    duration = config.duration
    full = np.arange(int(round(duration * LIKELIHOOD_RATE / 2)) + 1) / duration
    band = np.isin(np.round(full * duration), np.round(spec.frequencies * duration))
    ifos = []
    for det, fd in spec.strain.items():
        ifo = bilby.gw.detector.get_empty_interferometer(det)
        ifo.minimum_frequency, ifo.maximum_frequency = config.f_min, config.f_max
        data = np.zeros(full.size, dtype=complex)
        data[band] = fd
        ifo.set_strain_data_from_frequency_domain_strain(
            data, sampling_frequency=LIKELIHOOD_RATE, duration=duration, start_time=spec.start
        )
        psd = np.interp(full, spec.frequencies, spec.psd[det]) * spec.window_power  # outside the band: unused
        ifo.power_spectral_density = bilby.gw.detector.PowerSpectralDensity(frequency_array=full, psd_array=psd)
        ifos.append(ifo)
    priors = prior_from_text(spec.prior_text, time_offset=spec.gps)
    generator = waveform_generator(config, LIKELIHOOD_RATE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return bilby.gw.likelihood.GravitationalWaveTransient(
            bilby.gw.detector.InterferometerList(ifos),
            generator,
            priors=priors,
            phase_marginalization=True,
            time_marginalization=time_marginalization,
            jitter_time=False,
        )


_LIKE: Any = None


def _init_worker(spec: LikelihoodSpec) -> None:
    global _LIKE
    import bilby

    bilby.core.utils.logger.setLevel("WARNING")
    _LIKE = build_likelihood(spec)


def _evaluate(rows: list[dict[str, float]]) -> list[float]:
    return [float(_LIKE.log_likelihood(parameters={**p, "phase": 0.0})) for p in rows]


class LikelihoodPool:
    """ln L of many draws in ``workers`` persistent processes (one likelihood each); a context manager."""

    def __init__(self, spec: LikelihoodSpec, workers: int = 1) -> None:
        self.spec, self.workers = spec, int(workers)
        self._cm: Any = None
        self._pool: Any = None

    def __enter__(self) -> "LikelihoodPool":
        if self.workers > 1:
            self._cm = pinned_pool(self.workers, _init_worker, (self.spec,))
            self._pool = self._cm.__enter__()
        else:
            _init_worker(self.spec)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._cm is not None:
            self._cm.__exit__(*exc)
        self._cm = self._pool = None

    def __call__(self, samples: Mapping[str, np.ndarray]) -> np.ndarray:
        """ln L (N,) of draws {bilby name: (N,)} in user coordinates."""
        n = len(next(iter(samples.values())))
        rows = [{k: float(v[i]) for k, v in samples.items()} for i in range(n)]
        if self._pool is None:
            return np.array(_evaluate(rows))
        size = max(1, -(-n // (4 * self.workers)))
        parts = self._pool.map(_evaluate, [rows[i : i + size] for i in range(0, n, size)])
        return np.array([v for part in parts for v in part])


# --------------------------------------------------------------------------------------------- proposals
def _wrap(d: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Differences ``d`` (..., D) with the periodic columns wrapped to (-P/2, P/2]."""
    d = d.copy()
    for j, k in enumerate(names):
        if k in PERIODS:
            p = PERIODS[k]
            d[..., j] = d[..., j] - p * np.round(d[..., j] / p)
    return d


@dataclass
class GMM:
    """A Gaussian mixture (weights (K,), means (K, D), covariances (K, D, D)) with periodic columns."""

    names: tuple[str, ...]
    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """ln density (N,) at points x (N, D) of the mixture wrapped on the periodic columns: each component
        summed over the images -1, 0, +1 periods away (exact to e^-2 of a component's mass per period it
        spans; components are never wider than a period after :func:`fit_gmm`)."""
        import itertools

        periodic = [j for j, k in enumerate(self.names) if k in PERIODS]
        shifts = []
        for combo in itertools.product((-1, 0, 1), repeat=len(periodic)):
            s = np.zeros(x.shape[1])
            for j, m in zip(periodic, combo):
                s[j] = m * PERIODS[self.names[j]]
            shifts.append(s)
        out = []
        for w, m, c in zip(self.weights, self.means, self.covs):
            chol = np.linalg.cholesky(c)
            logdet = 2 * np.log(np.diag(chol)).sum()
            d = _wrap(x - m, self.names)
            for s in shifts:
                z = np.linalg.solve(chol, (d + s).T)
                out.append(np.log(w) - 0.5 * (z**2).sum(0) - 0.5 * logdet - 0.5 * x.shape[1] * np.log(2 * np.pi))
        return np.logaddexp.reduce(np.array(out), axis=0)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.choice(self.weights.size, size=n, p=self.weights)
        x = np.empty((n, self.means.shape[1]))
        for j in range(self.weights.size):
            sel = k == j
            x[sel] = rng.multivariate_normal(self.means[j], self.covs[j], size=int(sel.sum()))
        for j, name in enumerate(self.names):
            if name in PERIODS:
                x[:, j] = np.mod(x[:, j], PERIODS[name])
        return x


def fit_gmm(
    x: np.ndarray, w: np.ndarray, names: Sequence[str], k: int, rng: np.random.Generator, iters: int = 60
) -> GMM:
    """Weighted EM fit of a ``k``-component Gaussian mixture to points x (N, D) with weights w (N,)
    (k-means++-style seeding from the weighted points; a 1e-6 ridge keeps covariances positive)."""
    w = np.asarray(w, dtype=float) / np.sum(w)
    keep = w > 0
    x, w = x[keep], w[keep] / w[keep].sum()
    n, d = x.shape
    k = max(1, min(k, int(keep.sum()) // (2 * d)))
    scale = np.sqrt(np.maximum(np.cov(x.T, aweights=w).diagonal(), 1e-300))
    means = x[rng.choice(n, size=k, replace=False, p=w)] if k > 1 else (w @ x)[None]
    covs = np.repeat(np.diag(scale**2)[None], k, axis=0)
    pis = np.full(k, 1.0 / k)
    for _ in range(iters):
        logr = np.array(
            [
                np.log(p) + GMM(tuple(names), np.ones(1), m[None], c[None]).log_prob(x)
                for p, m, c in zip(pis, means, covs)
            ]
        )
        r = np.exp(logr - np.logaddexp.reduce(logr, axis=0)) * w  # (k, n)
        nk = r.sum(1) + 1e-300
        pis = nk / nk.sum()
        for j in range(k):
            diff = _wrap(x - means[j], names)
            means[j] = means[j] + (r[j] @ diff) / nk[j]
            diff = _wrap(x - means[j], names)
            covs[j] = (diff * r[j][:, None]).T @ diff / nk[j] + np.diag((1e-6 * scale) ** 2)
        for j, name in enumerate(names):
            if name in PERIODS:
                means[:, j] = np.mod(means[:, j], PERIODS[name])
    keep_k = pis > 1e-4
    return GMM(tuple(names), pis[keep_k] / pis[keep_k].sum(), means[keep_k], covs[keep_k])


class FlowProposal:
    """An unconditional zuko neural spline flow fitted to posterior draws (an MCMC chain): a proposal that
    follows curved and multimodal posteriors a Gaussian mixture cannot. Periodic columns are unwrapped
    around their circular mean before fitting; the density of a wrapped point sums the images -1, 0, +1
    periods away."""

    def __init__(self, x: np.ndarray, names: Sequence[str], seed: int, steps: int = 1500) -> None:
        import itertools

        import torch
        import zuko

        self.names = tuple(names)
        self.periodic = [j for j, k in enumerate(self.names) if k in PERIODS]
        self.centre = np.zeros(x.shape[1])
        for j in self.periodic:
            p = PERIODS[self.names[j]]
            ang = 2 * np.pi * x[:, j] / p
            self.centre[j] = p * np.arctan2(np.sin(ang).mean(), np.cos(ang).mean()) / (2 * np.pi)
        u = self._unwrap(x)
        self.mean, self.std = u.mean(0), u.std(0) + 1e-12
        z = torch.from_numpy((u - self.mean) / self.std).float()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.flow = zuko.flows.NSF(features=x.shape[1], transforms=4, hidden_features=(64, 64))
            opt = torch.optim.Adam(self.flow.parameters(), lr=3e-3)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
            for _ in range(steps):
                batch = z[torch.randint(0, z.shape[0], (1024,))]
                loss = -self.flow().log_prob(batch).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        self.flow.eval()
        self.shifts = []
        for combo in itertools.product((-1, 0, 1), repeat=len(self.periodic)):
            sh = np.zeros(x.shape[1])
            for j, m in zip(self.periodic, combo):
                sh[j] = m * PERIODS[self.names[j]]
            self.shifts.append(sh)

    def _unwrap(self, x: np.ndarray) -> np.ndarray:
        u = x.copy()
        for j in self.periodic:
            p = PERIODS[self.names[j]]
            u[:, j] = self.centre[j] + (x[:, j] - self.centre[j] + p / 2) % p - p / 2
        return u

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        import torch

        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(int(rng.integers(0, 2**62)))
            z = self.flow().sample((n,)).double().numpy()
        x = z * self.std + self.mean
        for j in self.periodic:
            x[:, j] = np.mod(x[:, j], PERIODS[self.names[j]])
        return x

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        import torch

        u = self._unwrap(x)
        out = []
        with torch.no_grad():
            for sh in self.shifts:
                z = torch.from_numpy((u + sh - self.mean) / self.std).float()
                out.append(self.flow().log_prob(z).double().numpy() - np.log(self.std).sum())
        return np.logaddexp.reduce(np.array(out), axis=0)


# --------------------------------------------------------------------------------------------- sampler
@dataclass(frozen=True)
class ISConfig:
    """Importance-sampling settings: ``n`` first-round draws, ``target_ess``, up to ``max_rounds`` rounds of
    at most ``max_draws`` draws; below an ESS of ``refit_ess`` the next proposal is fitted to an emcee run
    (``mcmc_walkers`` x ``mcmc_steps``) started from the weighted draws, above it to the weighted draws; defensive network share ``alpha``, ``components`` of the GMM, covariance
    ``inflate`` factor, ``workers`` likelihood processes, ``seed``."""

    n: int = 20000
    target_ess: float = 2000.0
    max_rounds: int = 5
    refit_ess: float = 1000.0
    mcmc_walkers: int = 64
    mcmc_steps: int = 600
    max_draws: int = 40000
    alpha: float = 0.1
    components: int = 12
    inflate: float = 1.5
    workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n", "max_rounds", "max_draws", "components", "workers", "mcmc_walkers", "mcmc_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise GwinferError(f"importance sampling {name} = {v!r} must be an integer >= 1")
        if not 0 < self.alpha <= 1:
            raise GwinferError(f"alpha = {self.alpha} must lie in (0, 1]")
        if not self.target_ess > 0 or not self.inflate >= 1:
            raise GwinferError("target_ess must be > 0 and inflate >= 1")


def temper(log_w: np.ndarray, min_ess: float) -> float:
    """The largest beta in (0, 1] with ESS(beta * log_w) >= min_ess (bisection): the weights that shape the
    next proposal when the last round's are too few to fit it (the estimate itself always uses beta = 1)."""
    if ess_of(log_w) >= min_ess or np.isfinite(log_w).sum() < min_ess:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ess_of(mid * log_w) >= min_ess else (lo, mid)
    return max(lo, 1e-6)


class EventSampler:
    """Importance sampling of one event (module docstring), in model coordinates without ``geocent_time``."""

    def __init__(self, model: Any, x: Any, names: Sequence[str], spec: LikelihoodSpec, config: ISConfig) -> None:
        from gwinfer.detectors.frequency import gmst

        self.model, self.x, self.spec, self.config = model, x, spec, config
        self.model_names = tuple(names)
        self.names = tuple(k for k in names if k != "geocent_time")
        self.prior = prior_from_text(spec.prior_text)  # model coordinates: geocent_time from the trigger
        self.prior.pop("geocent_time", None)
        self.gmst = gmst(spec.gps)
        self._walkers: np.ndarray | None = None

    def to_user(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """IS coordinates (N, D) -> {bilby name: (N,)} with ra at the event's time (no geocent_time)."""
        s = {k: theta[:, i] for i, k in enumerate(self.names)}
        s["ra"] = np.mod(s["ra"] + self.gmst, 2 * np.pi)
        return s

    def network_sample(self, n: int, seed: int) -> np.ndarray:
        """``n`` network draws in IS coordinates (geocent_time dropped: it is marginalised)."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            theta = self.model.sample(self.x, n).double().numpy()
        keep = [self.model_names.index(k) for k in self.names]
        return theta[:, keep]

    def network_gmm(self, rng: np.random.Generator) -> GMM:
        """The network's proposal as a Gaussian mixture fitted to ``n`` of its draws inside the prior."""
        cfg = self.config
        theta = self.network_sample(cfg.n, cfg.seed)
        ok = np.isfinite(self.log_prior(theta))
        if ok.sum() < 20 * theta.shape[1]:
            raise GwinferError(
                f"only {int(ok.sum())} of {cfg.n} network draws lie inside the prior: the data are outside what "
                "the model was trained on"
            )
        gmm = fit_gmm(theta[ok], np.ones(int(ok.sum())), self.names, cfg.components, rng)
        return GMM(gmm.names, gmm.weights, gmm.means, gmm.covs * cfg.inflate**2)

    def log_prior(self, theta: np.ndarray) -> np.ndarray:
        s = {k: theta[:, i] for i, k in enumerate(self.names)}
        with np.errstate(divide="ignore"):
            return np.asarray(self.prior.ln_prob(s, axis=0), dtype=float)

    def weigh(self, theta: np.ndarray, log_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log weights, log likelihoods) of draws theta (N, D) with proposal log density log_q."""
        lp = self.log_prior(theta)
        ok = np.isfinite(lp)
        log_l = np.full(theta.shape[0], -np.inf)
        if ok.any():
            user = self.to_user(theta[ok])
            # bilby's time-marginalised likelihood takes geocent_time = the segment start and scans the prior
            user["geocent_time"] = np.full(int(ok.sum()), self.spec.start)
            log_l[ok] = self.likelihood(user)
        return np.where(ok, log_l + lp - log_q, -np.inf), log_l

    def run(self) -> dict[str, Any]:
        """Rounds of importance sampling until ``target_ess`` (module docstring); returns the last round's
        ``theta`` (N, D), ``log_weights``, ``log_likelihood``, ``log_q`` and per-round statistics."""
        with LikelihoodPool(self.spec, self.config.workers) as self.likelihood:
            return self._run()

    def mcmc(self, theta: np.ndarray, log_w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draws (N, D) of the second half of an emcee run on the posterior, its walkers started at
        distinct draws picked by tempered weight."""
        import emcee

        cfg = self.config
        if self._walkers is not None:  # continue the previous run: its burn-in is not lost
            start = self._walkers
        else:
            ok = np.isfinite(log_w)
            beta = temper(log_w, 2.0 * cfg.mcmc_walkers)
            p = np.where(ok, np.exp(beta * (log_w - log_w[ok].max())), 0.0)
            start = theta[rng.choice(theta.shape[0], size=cfg.mcmc_walkers, replace=False, p=p / p.sum())]

        def log_post(x: np.ndarray) -> np.ndarray:
            x = x.copy()
            for j, name in enumerate(self.names):
                if name in PERIODS:
                    x[:, j] = np.mod(x[:, j], PERIODS[name])
            lp = self.log_prior(x)
            out = np.full(x.shape[0], -np.inf)
            ok = np.isfinite(lp)
            if ok.any():
                user = self.to_user(x[ok])
                user["geocent_time"] = np.full(int(ok.sum()), self.spec.start)
                out[ok] = lp[ok] + self.likelihood(user)
            return out

        # the stretch move (acceptance ~6 % on GW150914; differential-evolution moves gave 0.6 %)
        sampler = emcee.EnsembleSampler(cfg.mcmc_walkers, theta.shape[1], log_post, vectorize=True)
        sampler._random.seed(int(rng.integers(0, 2**32 - 1)))
        sampler.run_mcmc(start, cfg.mcmc_steps, progress=False)
        self._walkers = sampler.get_chain()[-1]
        chain = sampler.get_chain(discard=cfg.mcmc_steps // 2, flat=True)
        lp = sampler.get_log_prob(discard=cfg.mcmc_steps // 2, flat=True)
        log.info(
            "emcee: acceptance %.3f, ln posterior of the kept half: median %.1f, max %.1f; chirp mass %s",
            float(np.mean(sampler.acceptance_fraction)),
            float(np.median(lp)),
            float(np.max(lp)),
            np.round(np.percentile(chain[:, 0], [5, 50, 95]), 3).tolist(),
        )
        for j, name in enumerate(self.names):
            if name in PERIODS:
                chain[:, j] = np.mod(chain[:, j], PERIODS[name])
        return chain

    def _run(self) -> dict[str, Any]:
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        t0 = time.perf_counter()
        base = self.network_gmm(rng)
        rounds: list[dict[str, Any]] = []
        n, refined = cfg.n, None  # refined: the latest fitted proposal (FlowProposal or GMM)
        prev: tuple[np.ndarray, np.ndarray] | None = None
        mcmc_runs = 0
        for r in range(cfg.max_rounds):
            if refined is None:
                theta = base.sample(n, rng)
                log_q = base.log_prob(theta)
            else:
                n_base = rng.binomial(n, cfg.alpha)
                theta = np.concatenate([base.sample(n_base, rng), refined.sample(n - n_base, rng)])
                log_q = np.logaddexp(
                    np.log(cfg.alpha) + base.log_prob(theta), np.log1p(-cfg.alpha) + refined.log_prob(theta)
                )
            log_w, log_l = self.weigh(theta, log_q)
            ess = ess_of(log_w)
            ln_z, ln_z_err = evidence(log_w)
            stats = {
                "round": r,
                "proposal": "network GMM"
                if refined is None
                else f"{cfg.alpha:g} network GMM + {type(refined).__name__}",
                "n": int(n),
                "in_prior": float(np.isfinite(log_w).mean()),
                "ess": ess,
                "efficiency": ess / n,
                "log_evidence": ln_z,
                "log_evidence_err": ln_z_err,
                "max_log_likelihood": float(np.max(log_l)),
                "seconds": time.perf_counter() - t0,
            }
            rounds.append(stats)
            log.info("IS round %d: %s", r, json.dumps({k: v for k, v in stats.items() if k != "proposal"}))
            t0 = time.perf_counter()
            if ess >= cfg.target_ess or r == cfg.max_rounds - 1:
                break
            n_for_target = int(np.clip(1.3 * cfg.target_ess / max(ess / n, 1e-4), cfg.n, cfg.max_draws))
            # the next proposal is fitted to this round's and the previous round's draws
            pool_t = theta if prev is None else np.concatenate([prev[0], theta])
            pool_w = log_w if prev is None else np.concatenate([prev[1], log_w])
            prev = (theta, log_w)
            if ess < cfg.refit_ess:
                # too few effective draws to fit a proposal: an ensemble MCMC (emcee) started from them
                # locates the posterior; a flow fitted to its chain is the next proposal
                chain = self.mcmc(pool_t, pool_w, rng)
                refined = FlowProposal(chain, self.names, seed=int(rng.integers(0, 2**31)))
                stats["refit"] = f"flow on emcee {cfg.mcmc_walkers} walkers x {cfg.mcmc_steps} steps"
                n = cfg.n if mcmc_runs == 0 else n_for_target
                mcmc_runs += 1
            else:
                w = np.nan_to_num(np.exp(pool_w - pool_w[np.isfinite(pool_w)].max()))
                g = fit_gmm(pool_t, w, self.names, cfg.components, rng)
                refined = GMM(g.names, g.weights, g.means, g.covs * cfg.inflate**2)
                stats["refit"] = "GMM on the weighted draws"
                n = n_for_target
        return {"theta": theta, "log_weights": log_w, "log_likelihood": log_l, "log_q": log_q, "rounds": rounds}

    def time_samples(self, theta: np.ndarray, seed: int) -> np.ndarray:
        """geocent_time (GPS s) of each draw from its time-marginalised likelihood (bilby's reconstruction)."""
        import bilby

        like = build_likelihood(self.spec)
        user = self.to_user(theta)
        gen = bilby.core.utils.random.Generator
        saved, gen.rng = gen.rng, np.random.default_rng(seed)
        try:
            out = np.empty(theta.shape[0])
            for i in range(theta.shape[0]):
                p = {k: float(v[i]) for k, v in user.items()} | {"geocent_time": self.spec.start, "phase": 0.0}
                out[i] = like.generate_time_sample_from_marginalized_likelihood(parameters=p)
        finally:
            gen.rng = saved
        return out


def summary_of(run: Mapping[str, Any], target_ess: float) -> dict[str, Any]:
    """Plain-data summary of a sampler run: the last round's ESS, efficiency, evidence, all rounds."""
    last = run["rounds"][-1]
    return {
        "ess": last["ess"],
        "efficiency": last["efficiency"],
        "log_evidence": last["log_evidence"],
        "log_evidence_err": last["log_evidence_err"],
        "target_ess": target_ess,
        "converged": last["ess"] >= target_ess,
        "rounds": list(run["rounds"]),
    }
