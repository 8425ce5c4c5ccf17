"""Importance sampling of a real event with an event model as proposal (after DINGO-IS, Dax et al. 2023,
PRL 130, 171403), on this CPU.

Likelihood: bilby's ``GravitationalWaveTransient`` with the phase AND the coalescence time marginalised
(time on a 1/4096 s grid, :data:`LIKELIHOOD_RATE`), on the event's own segment and off-source PSD
(:mod:`gwinfer.evaluation.event`), the bank's approximant, band and reference frequency, and the bank's prior:
the same model of the data the network was trained on. The data are given to bilby as a frequency series
with the PSD times the window power, exactly the whitening of the network's input (tested). geocent_time is
reconstructed afterwards, one draw per sample from its conditional posterior (bilby).

Importance sampling therefore runs over the 9 other parameters. Weights ``w = L pi / q``; effective sample
size ``ESS = (sum w)^2 / sum w^2``, sampling efficiency ``ESS / N``, evidence ``ln Z = ln mean(w)`` with error
``sqrt((N / ESS - 1) / N)``. Draws outside the prior have ``pi = 0``: weight 0, counted in N.

Round 0's proposal is the network's: a Gaussian mixture (:func:`fit_gmm`, ``components``, covariances widened
by ``inflate**2``) fitted to 20000 network draws (the flow's 9-parameter marginal has no closed form); ``n``
of its draws are weighed. When their ESS reaches ``target_ess`` that is the answer. Otherwise (the shipped
O1 model is ~5x too broad in chirp mass, ESS ~1) the proposal is refined:

1. tempered SMC (:mod:`gwinfer.evaluation.smc`) moves ``particles`` of those draws from the network's proposal
   to the posterior (``mcmc_steps`` random-walk Metropolis sweeps per temperature, plus the exact
   psi -> psi + pi/2 symmetry of a (2, 2)-mode likelihood, :meth:`EventSampler.symmetries`);
2. Gaussian mixtures are fitted to its final particles (:func:`bagged_gmm`), and mixed with a defensive
   share ``alpha`` of the network's proposal;
3. that mixture is importance-sampled in batches until the pooled ESS reaches ``target_ess`` (or
   ``max_draws``); after each of the first ``refits`` batches, half of the proposal becomes a GMM fitted to the
   weighted draws so far (population Monte Carlo, Cappe et al. 2004, J. Comput. Graph. Stat. 13, 907).

Every batch is an exact importance sampler of its own proposal, so the pooled weights estimate the
posterior and ``Z`` without bias; ESS and efficiency are those of the pooled draws.

SMC only shapes the proposal; the SMC's own evidence estimate is stored beside the importance-sampling one
as a check. Below the target the answer is an error saying the model does not cover the
event (a warning with ``allow_low_ess``). ``ra`` and ``psi`` are periodic.

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

from gwinfer.checks import boolean, positive_int
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


def _nearest_image_logpdf(x: np.ndarray, mean: np.ndarray, cov: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """ln N(x; mean, cov) (N,) at the nearest periodic image of each point: the E-step of :func:`fit_gmm`
    (9x cheaper than :meth:`GMM.log_prob`'s sum over images, and the same for components narrower than a
    period; the fitted mixture's density is always the image sum)."""
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, _wrap(x - mean, names).T)
    return -0.5 * (z**2).sum(0) - np.log(np.diag(chol)).sum() - 0.5 * x.shape[1] * np.log(2 * np.pi)


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
        logr = np.array([np.log(p) + _nearest_image_logpdf(x, m, c, names) for p, m, c in zip(pis, means, covs)])
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


# --------------------------------------------------------------------------------------------- sampler
@dataclass(frozen=True)
class ISConfig:
    """Importance-sampling settings (module docstring): ``n`` draws of the network's proposal (round 0, and the
    smallest batch of the last round); ``target_ess``; at most ``max_draws`` draws of the refined proposal;
    ``particles`` of SMC with ``mcmc_steps`` sweeps per temperature and ``final_steps`` at the posterior;
    ``components`` of the network's GMM, ``refit_bags`` x ``refit_components`` of the refined one
    (:func:`bagged_gmm`), covariances widened by ``inflate`` (network) and ``refit_inflate``; ``refits``
    population-Monte-Carlo updates of it (:meth:`EventSampler.pmc_refit`); ``global_moves``: SMC sweeps add an
    independence step from a GMM of the particles (:meth:`EventSampler.particle_fit`); defensive network share ``alpha``;
    ``workers`` likelihood processes; ``seed``."""

    n: int = 5000
    target_ess: float = 2000.0
    max_draws: int = 200000
    particles: int = 2000
    mcmc_steps: int = 8
    final_steps: int = 8
    components: int = 12
    refit_components: int = 12
    refit_bags: int = 4
    refits: int = 3
    global_moves: bool = False
    inflate: float = 1.5
    refit_inflate: float = 1.1
    alpha: float = 0.05
    workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "n", "max_draws", "particles", "mcmc_steps", "final_steps", "components", "refit_components",
            "refit_bags", "workers",
        ):  # fmt: skip
            positive_int(getattr(self, name), f"importance sampling {name}")
        positive_int(self.refits, "importance sampling refits", minimum=0)
        boolean("importance sampling global_moves", self.global_moves)
        if self.refit_bags > self.final_steps:
            raise GwinferError(f"refit_bags = {self.refit_bags} must be <= final_steps = {self.final_steps}")
        if self.particles < 100:
            raise GwinferError(f"importance sampling particles = {self.particles} must be >= 100")
        if not 0 < self.alpha <= 1:
            raise GwinferError(f"alpha = {self.alpha} must lie in (0, 1]")
        if not self.target_ess > 0 or not (self.inflate >= 1 and self.refit_inflate >= 1):
            raise GwinferError("target_ess must be > 0, inflate and refit_inflate >= 1")


def bagged_gmm(sweeps: np.ndarray, names: Sequence[str], cfg: "ISConfig", rng: np.random.Generator) -> GMM:
    """The equal-weight average of ``refit_bags`` Gaussian mixtures (``refit_components`` each, covariances
    widened by ``refit_inflate**2``), each fitted to one of the last sweeps (S, N, D) of the SMC particles.

    One mixture fitted to all the correlated sweeps at once over-fits their lineages (GW150914: 48 components,
    efficiency 0.06 %); one 12-component fit to one sweep varied from 0.1 % to 3 % between fits; the average of
    4-8 fits gave 2-6 % (docs/results-posterior.md)."""
    fits = []
    for x in sweeps[-cfg.refit_bags :]:
        fits.append(fit_gmm(x, np.ones(len(x)), names, cfg.refit_components, rng))
    weights = np.concatenate([g.weights for g in fits]) / len(fits)
    means = np.concatenate([g.means for g in fits])
    covs = np.concatenate([g.covs for g in fits]) * cfg.refit_inflate**2
    return GMM(tuple(names), weights, means, covs)


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
        self.periods = {j: PERIODS[k] for j, k in enumerate(self.names) if k in PERIODS}

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
        """The network's proposal: a Gaussian mixture fitted to 20000 of its draws inside the prior."""
        cfg = self.config
        theta = self.network_sample(20000, cfg.seed)
        ok = np.isfinite(self.log_prior(theta))
        if ok.sum() < 20 * theta.shape[1]:
            raise GwinferError(
                f"only {int(ok.sum())} of {theta.shape[0]} network draws lie inside the prior: the data are outside "
                "what the model was trained on"
            )
        gmm = fit_gmm(theta[ok], np.ones(int(ok.sum())), self.names, cfg.components, rng)
        return GMM(gmm.names, gmm.weights, gmm.means, gmm.covs * cfg.inflate**2)

    def log_prior(self, theta: np.ndarray) -> np.ndarray:
        s = {k: theta[:, i] for i, k in enumerate(self.names)}
        with np.errstate(divide="ignore"):
            return np.asarray(self.prior.ln_prob(s, axis=0), dtype=float)

    def target(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ln L, ln prior) of draws theta (N, D); ln L is -inf where the prior is 0 (not evaluated)."""
        lp = self.log_prior(theta)
        ok = np.isfinite(lp)
        log_l = np.full(theta.shape[0], -np.inf)
        if ok.any():
            user = self.to_user(theta[ok])
            # bilby's time-marginalised likelihood takes geocent_time = the segment start and scans the prior
            user["geocent_time"] = np.full(int(ok.sum()), self.spec.start)
            log_l[ok] = self.likelihood(user)
        return log_l, lp

    def weigh(self, theta: np.ndarray, log_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log weights, log likelihoods) of draws theta (N, D) with proposal log density log_q."""
        log_l, lp = self.target(theta)
        return np.where(np.isfinite(lp), log_l + lp - log_q, -np.inf), log_l

    def symmetries(self, theta: np.ndarray) -> dict[int, float]:
        """{column: shift} of exact symmetries of the likelihood for the SMC moves: psi -> psi + pi/2 flips the
        sign of both antenna responses, which the marginalised phase absorbs when the waveform has only the
        (2, 2) mode (IMRPhenomD). Checked on 8 draws inside the prior, not assumed from the approximant's name."""
        if "psi" not in self.names:
            return {}
        j = self.names.index("psi")
        pts = theta[np.isfinite(self.log_prior(theta))][:8]
        shifted = pts.copy()
        shifted[:, j] = np.mod(shifted[:, j] + np.pi / 2, np.pi)
        a, b = self.target(pts)[0], self.target(shifted)[0]
        diff = float(np.max(np.abs(a - b))) if len(pts) else np.inf
        exact = diff < 1e-6 * max(1.0, float(np.max(np.abs(a)))) if len(pts) else False
        log.info("likelihood symmetric under psi -> psi + pi/2: %s (max |d ln L| %.2g)", exact, diff)
        return {j: np.pi / 2} if exact else {}

    def run(self) -> dict[str, Any]:
        """Importance sampling until ``target_ess`` (module docstring); returns the estimate's ``theta`` (N, D),
        ``log_weights``, ``log_likelihood``, ``log_q`` and per-round statistics."""
        with LikelihoodPool(self.spec, self.config.workers) as self.likelihood:
            return self._run()

    def _stats(self, proposal: str, log_w: np.ndarray, log_l: np.ndarray, t0: float) -> dict[str, Any]:
        ess = ess_of(log_w)
        ln_z, ln_z_err = evidence(log_w)
        stats = {
            "proposal": proposal,
            "n": int(log_w.size),
            "in_prior": float(np.isfinite(log_w).mean()),
            "ess": ess,
            "efficiency": ess / log_w.size,
            "log_evidence": ln_z,
            "log_evidence_err": ln_z_err,
            "max_log_likelihood": float(np.max(log_l)),
            "seconds": time.perf_counter() - t0,
        }
        log.info("IS: %s", json.dumps(stats))
        return stats

    def _run(self) -> dict[str, Any]:
        from gwinfer.evaluation.smc import SMCConfig, tempered_smc

        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        t0 = time.perf_counter()
        base = self.network_gmm(rng)
        theta = base.sample(cfg.n, rng)
        log_q = base.log_prob(theta)
        log_w, log_l = self.weigh(theta, log_q)
        rounds = [self._stats("network GMM", log_w, log_l, t0)]
        if rounds[0]["ess"] >= cfg.target_ess:
            return {"theta": theta, "log_weights": log_w, "log_likelihood": log_l, "log_q": log_q, "rounds": rounds}
        # the network alone is too broad: SMC from its first `particles` draws (iid of the proposal)
        t0 = time.perf_counter()
        m = min(cfg.particles, cfg.n)
        smc = tempered_smc(
            theta[:m], log_q[:m], log_l[:m], self.log_prior(theta[:m]), self.target, base.log_prob, rng,
            SMCConfig(steps=cfg.mcmc_steps, final_steps=cfg.final_steps), self.periods, self.symmetries(theta),
            self.particle_fit if cfg.global_moves else None,
        )  # fmt: skip
        refined = bagged_gmm(smc.x.reshape(cfg.final_steps, m, -1), self.names, cfg, rng)
        rounds.append(
            {
                "proposal": f"tempered SMC from the network, {m} particles",
                "temperatures": len(smc.stages),
                "likelihood_calls": smc.likelihood_calls,
                "log_evidence": smc.log_evidence,
                "acceptance": [round(s["acceptance"], 3) for s in smc.stages],
                "seconds": time.perf_counter() - t0,
            }
        )
        # importance sampling with the refined proposal (a defensive share alpha of the network's), in batches;
        # after each of the first `refits` batches the proposal also takes a GMM fitted to the weighted draws so
        # far (population Monte Carlo): their heaviest weights mark where it was too thin
        t0 = time.perf_counter()
        parts: list[tuple[np.ndarray, ...]] = []
        total, refits = 0, 0
        ess = 0.0
        while total < cfg.max_draws:
            n = min(cfg.n, cfg.max_draws)
            if parts:
                eff = max(ess / total, 1e-4)
                needed = 1.1 * cfg.target_ess / eff - total
                # while refits remain, batches stay small: each refit can raise the efficiency a lot
                n = int(
                    np.clip(needed if refits >= cfg.refits else min(needed, 4 * cfg.n), cfg.n, cfg.max_draws - total)
                )
            n_base = rng.binomial(n, cfg.alpha)
            theta = np.concatenate([base.sample(n_base, rng), refined.sample(n - n_base, rng)])
            log_q = np.logaddexp(
                np.log(cfg.alpha) + base.log_prob(theta), np.log1p(-cfg.alpha) + refined.log_prob(theta)
            )
            log_w, log_l = self.weigh(theta, log_q)
            parts.append((theta, log_w, log_l, log_q))
            total += n
            pooled = np.concatenate([p[1] for p in parts])
            ess = ess_of(pooled)
            log.info("IS batch %d: %d draws, pooled ESS %.0f of %d", len(parts), n, ess, total)
            if ess >= cfg.target_ess:
                break
            if refits < cfg.refits and ess >= 20:
                refined = self.pmc_refit(refined, np.concatenate([p[0] for p in parts]), pooled, rng)
                refits += 1
        theta, log_w, log_l, log_q = (np.concatenate([p[i] for p in parts]) for i in range(4))
        proposal = (
            f"{cfg.alpha:g} network GMM + {cfg.refit_bags} x GMM({cfg.refit_components}) of the SMC particles"
            f", {refits} population-Monte-Carlo refits"
        )
        rounds.append(self._stats(proposal, log_w, log_l, t0))
        return {"theta": theta, "log_weights": log_w, "log_likelihood": log_l, "log_q": log_q, "rounds": rounds}

    def particle_fit(self, x: np.ndarray) -> tuple[Any, Any]:
        """(draw, log density) of a GMM (``refit_components``, widened by ``refit_inflate``) fitted to SMC
        particles x (N, D): the independence proposal of ``global_moves``."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, len(x)])
        g = fit_gmm(x, np.ones(len(x)), self.names, cfg.refit_components, rng)
        g = GMM(g.names, g.weights, g.means, g.covs * cfg.refit_inflate**2)
        return g.sample, g.log_prob

    def pmc_refit(self, refined: GMM, theta: np.ndarray, log_w: np.ndarray, rng: np.random.Generator) -> GMM:
        """The equal mixture of ``refined`` and a weighted-EM GMM (``refit_components``, widened by
        ``refit_inflate``) of the draws ``theta`` with log weights ``log_w`` (those above 1e-6 of the largest)."""
        cfg = self.config
        w = np.exp(log_w - np.max(log_w))
        keep = w > 1e-6
        g = fit_gmm(theta[keep], w[keep], self.names, cfg.refit_components, rng)
        return GMM(
            refined.names,
            np.concatenate([0.5 * refined.weights, 0.5 * g.weights]),
            np.concatenate([refined.means, g.means]),
            np.concatenate([refined.covs, g.covs * cfg.refit_inflate**2]),
        )

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
    """Plain-data summary of a sampler run: the estimate's ESS, efficiency and evidence (its last round), the
    network proposal's own efficiency (round 0), the likelihood calls of every stage, all rounds."""
    rounds = list(run["rounds"])
    last = rounds[-1]
    return {
        "ess": last["ess"],
        "efficiency": last["efficiency"],
        "network_efficiency": rounds[0]["efficiency"],
        "likelihood_calls": int(sum(r.get("likelihood_calls", r.get("n", 0)) for r in rounds)),
        "log_evidence": last["log_evidence"],
        "log_evidence_err": last["log_evidence_err"],
        "target_ess": target_ess,
        "converged": last["ess"] >= target_ess,
        "rounds": rounds,
    }
