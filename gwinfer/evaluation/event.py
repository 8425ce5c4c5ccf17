"""A real event through a frequency-domain event model: data, noise coverage and network draws (issue 15).

:func:`prepare_event` reads each detector's GWOSC file (gwpy), cuts the model's segment (``duration`` s
ending ``post_trigger`` s after the trigger ``gps``), Tukey-windows and Fourier-transforms it as bilby does,
and estimates the PSD from the off-source rest of the file (:mod:`gwinfer.detectors.segment`): the same
numbers feed the network (:func:`network_input`) and bilby's likelihood (:mod:`gwinfer.evaluation.event_is`).

:func:`noise_coverage` measures how far each detector's noise is from the family the model was trained
over: after removing the best level and tilt within the training augmentation, the RMS difference (ln ASD,
over the model's noise bands) to the nearest family member; above :data:`COVERAGE_LIMIT` the answer is a
warning (``strict``: an error).

:func:`to_event_coordinates` maps the model's draws to what a user sees: ``ra`` rotated from the model's
sidereal time 0 to the event's GPS time, ``geocent_time`` in GPS seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError

log = logging.getLogger(__name__)

#: RMS ln-ASD distance to the nearest member of the training family (after the allowed level and tilt)
#: above which the noise is called outside the model's training conditions (0.25 ~ 28 % in ASD).
COVERAGE_LIMIT = 0.25


@dataclass
class EventData:
    """One event's analysis segment. Frequency arrays cover the model's band [f_min, f_max] (Hz)."""

    gps: float
    start: float
    duration: float
    frequencies: np.ndarray
    strain: dict[str, np.ndarray]  # detector -> complex frequency series (strain/Hz)
    psd: dict[str, np.ndarray]  # detector -> one-sided PSD (1/Hz)
    window_power: float
    files: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def detectors(self) -> list[str]:
        return list(self.strain)


def event_model_info(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The ``event_model`` record of a model file's metadata; a one-line error for other models."""
    info = meta.get("event_model")
    if not isinstance(info, dict):
        raise GwinferError("this model is not a frequency-domain event model (train one with configs/events/)")
    return info


def prepare_event(files: Mapping[str, str | Path], gps: float, info: Mapping[str, Any]) -> EventData:
    """:class:`EventData` of the strain ``files`` ({detector: GWOSC HDF5}) around trigger ``gps`` (GPS s)."""
    from gwinfer.detectors.frequency import band_frequencies
    from gwinfer.detectors.segment import fd_segment, offsource_psd
    from gwinfer.detectors.strain import read_strain, span
    from gwinfer.provenance import sha256_file

    bank = info["bank"]
    want = list(info["detectors"])
    if sorted(files) != sorted(want):
        raise GwinferError(f"the model needs strain of {want}; got {sorted(files)}")
    duration, post = float(bank["duration"]), float(bank["post_trigger"])
    start = float(gps) - (duration - post)
    freqs = band_frequencies(duration, bank["f_min"], bank["f_max"])
    strain, psd, prov = {}, {}, {}
    w = 1.0
    for det in want:
        path = files[det]
        ts = read_strain(path)
        t0, t1 = span(ts)
        if not t0 < gps < t1:
            raise GwinferError(f"{path}: GPS {gps} is outside the file's [{t0:.1f}, {t1:.1f}] s")
        x, fs = np.asarray(ts.value, dtype=float), float(ts.sample_rate.value)
        if fs < 2 * bank["f_max"]:
            raise GwinferError(f"{path} is sampled at {fs:g} Hz; the model's band needs >= {2 * bank['f_max']:g} Hz")
        f_all, fd, w = fd_segment(x, fs, t0, start, duration)
        band = np.isin(np.round(f_all * duration), np.round(freqs * duration))
        strain[det] = fd[band]
        psd[det] = offsource_psd(x, fs, t0, (start, start + duration))(freqs)
        prov[det] = {"path": str(path), "sha256": sha256_file(path)}
    return EventData(float(gps), start, duration, freqs, strain, psd, w, prov)


def network_input(event: EventData, info: Mapping[str, Any]) -> Any:
    """The model's x (n_det, 2 n_bins + bands) as a float32 torch tensor."""
    import torch

    from gwinfer.data.fd_dataset import network_input as build
    from gwinfer.detectors.frequency import band_matrix

    bands = band_matrix(event.frequencies, int(info["bands"]))
    dets = list(info["detectors"])
    fd = np.stack([event.strain[d] for d in dets])
    psd = np.stack([event.psd[d] for d in dets])
    return torch.from_numpy(build(fd, psd, bands, event.duration, event.window_power))


def noise_coverage(event: EventData, info: Mapping[str, Any], strict: bool = False) -> dict[str, Any]:
    """Per detector: the distance (RMS ln ASD) of the event's noise to the training family (module docstring),
    the nearest member, and warnings; ``strict`` raises instead of warning."""
    from gwinfer.data.fd_dataset import asd_features
    from gwinfer.detectors.frequency import band_matrix

    bands = band_matrix(event.frequencies, int(info["bands"]))
    fam = np.asarray(info["family_features"], dtype=float)
    centres = np.exp(bands @ np.log(event.frequencies))
    tilt_x = 0.5 * np.log(centres / 100.0)
    a_max, b_max = 0.5 * float(info["psd_scale"]), float(info["psd_tilt"])
    out: dict[str, Any] = {"limit": COVERAGE_LIMIT, "detectors": {}, "warnings": []}
    for det in event.detectors:
        r = asd_features(event.psd[det], bands)[None, :] - fam  # (K, bands)
        design = np.stack([np.ones_like(tilt_x), tilt_x], axis=1)
        coef, *_ = np.linalg.lstsq(design, r.T, rcond=None)  # (2, K)
        coef[0] = np.clip(coef[0], -a_max, a_max)
        coef[1] = np.clip(coef[1], -b_max, b_max)
        resid = r - (design @ coef).T
        dist = np.sqrt(np.mean(resid**2, axis=1))
        k = int(np.argmin(dist))
        out["detectors"][det] = {"distance": float(dist[k]), "nearest": info["family_names"][k]}
        if dist[k] > COVERAGE_LIMIT:
            msg = (
                f"{det} noise is {dist[k]:.2f} (RMS ln ASD) from the nearest training noise curve "
                f"({info['family_names'][k]}), beyond {COVERAGE_LIMIT}: the network was not trained for it"
            )
            if strict:
                raise GwinferError(msg)
            out["warnings"].append(msg)
    return out


def to_event_coordinates(samples: Mapping[str, np.ndarray], gps: float) -> dict[str, np.ndarray]:
    """Model coordinates -> what a user sees: ``ra`` rotated from sidereal time 0 to the event's GPS time,
    ``geocent_time`` in GPS s (both with unit Jacobian)."""
    from gwinfer.detectors.frequency import ra_at

    out = {k: np.asarray(v, dtype=float) for k, v in samples.items()}
    out["ra"] = ra_at(out["ra"], gps)
    out["geocent_time"] = out["geocent_time"] + gps
    return out


def analyze_event(
    model_path: str | Path,
    files: Mapping[str, str | Path],
    gps: float,
    out: str | Path,
    n: int = 20000,
    seed: int = 0,
    importance: Any = None,
    corner: bool = True,
    strict: bool = False,
    allow_low_ess: bool = False,
    reference: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Posterior of the event at ``gps`` with the event model ``model_path``: network draws, or with
    ``importance`` (an :class:`~gwinfer.evaluation.event_is.ISConfig`) importance-sampled ones, or with
    ``reference`` (``nlive``, ``naccept``, ``npool`` of
    :func:`~gwinfer.evaluation.event_reference.event_reference`) dynesty's on the same likelihood and prior.
    Writes a bilby result (+ corner plot) to ``out``; returns paths, timings, IS summary and warnings.

    An importance-sampling run that ends below its target ESS is an error ("the model does not cover this
    event"), unless ``allow_low_ess``: then the result is written with a warning (no corner plot below an
    ESS of 50)."""
    import dataclasses
    import json

    from gwinfer.data.fd_bank import prior_from_text
    from gwinfer.evaluation.event_is import EventSampler, spec_of, summary_of
    from gwinfer.evaluation.importance import systematic_resample
    from gwinfer.evaluation.posterior import make_result, sample_in_prior, save_result
    from gwinfer.models import load_estimator
    from gwinfer.provenance import provenance

    t0 = time.perf_counter()
    model, meta = load_estimator(model_path)
    model.eval()
    info = event_model_info(meta)
    names = list(meta["names"])
    event = prepare_event(files, gps, info)
    coverage = noise_coverage(event, info, strict=strict)
    x = network_input(event, info)
    t_data = time.perf_counter() - t0
    spec = spec_of(event, info, meta["prior_text"])
    user_prior = prior_from_text(meta["prior_text"], time_offset=gps)
    meta_data: dict[str, Any] = {}
    log_w = None
    evidences: tuple[float, float] | None = None
    t1 = time.perf_counter()
    if reference is not None:
        from gwinfer.evaluation.event_reference import event_reference

        ref = event_reference(spec, seed=seed, **reference)
        samples = {k: ref.posterior[k].to_numpy() for k in [*names, "log_likelihood"]}
        evidences = (float(ref.log_evidence), float(ref.log_evidence_err))
        meta_data["dynesty"] = {**dict(reference), "likelihood_calls": int(ref.num_likelihood_evaluations or 0)}
    elif importance is None:
        prior = prior_from_text(meta["prior_text"])  # model coordinates

        def log_prior(s: Mapping[str, np.ndarray]) -> np.ndarray:
            return np.asarray(prior.ln_prob(dict(s), axis=0), dtype=float)

        samples, acceptance = sample_in_prior(model, x, n, names, log_prior, seed=seed)
        samples = to_event_coordinates(samples, gps)
        meta_data["prior_acceptance"] = acceptance
    else:
        sampler = EventSampler(model, x, names, spec, importance)
        run = sampler.run()
        summary = summary_of(run, importance.target_ess)
        log_w = run["log_weights"]
        weights = np.exp(log_w - np.max(log_w))  # -inf (outside the prior) -> 0; all -inf: one-line error
        keep = systematic_resample(np.nan_to_num(weights), max(int(summary["ess"]), 1), importance.seed)
        samples = sampler.to_user(run["theta"][keep])
        samples["geocent_time"] = sampler.time_samples(run["theta"][keep], importance.seed)
        samples["log_likelihood"] = run["log_likelihood"][keep]
        meta_data["importance_sampling"] = {**summary, "config": dataclasses.asdict(importance)}
        if not summary["converged"]:
            msg = (
                f"importance sampling reached ESS {summary['ess']:.0f} < target {importance.target_ess:g} with "
                f"{summary['likelihood_calls']} likelihood calls (efficiency {summary['efficiency']:.2%}): the model "
                "does not cover this event"
            )
            if not allow_low_ess:
                raise GwinferError(msg + " (--allow-low-ess writes the noisy result anyway)")
            coverage["warnings"].append(msg + "; the result is noisy")
            corner = corner and summary["ess"] >= 50
        evidences = (summary["log_evidence"], summary["log_evidence_err"])
    t_sample = time.perf_counter() - t1
    for w in coverage["warnings"]:
        log.warning(w)
    meta_data.update(
        {
            "model": str(model_path),
            "gps": float(gps),
            "segment_start": event.start,
            "segment_duration": event.duration,
            "band_hz": [float(event.frequencies[0]), float(event.frequencies[-1])],
            "psd": "off-source median Welch (2 s segments) of each file outside the segment +- 2 s",
            "coverage": coverage,
            "data_seconds": t_data,
            "sampling_seconds": t_sample,
            "files": event.files,
            "provenance": json.dumps(
                provenance(
                    "event-posterior",
                    {
                        "gps": gps,
                        "n": n,
                        "seed": seed,
                        "importance": None if importance is None else dataclasses.asdict(importance),
                        "dynesty": None if reference is None else dict(reference),
                    },
                    parents=[model_path, *files.values()],
                )
            ),
        }
    )
    result = make_result(
        samples,
        label=Path(out).stem,
        search_parameter_keys=names,
        meta_data={"gwinfer": meta_data},
        sampling_time=t_sample,
        priors={k: user_prior[k] for k in names},
    )
    if evidences is not None:
        result.log_evidence, result.log_evidence_err = evidences
        result.log_noise_evidence = float(_noise_log_likelihood(spec))
        result.log_bayes_factor = result.log_evidence - result.log_noise_evidence
    paths = save_result(result, out, corner=corner)
    return {
        "result": paths["result"],
        "corner": paths.get("corner"),
        "seconds": time.perf_counter() - t0,
        "posterior": result.posterior,
        "warnings": coverage["warnings"],
        "importance_sampling": meta_data.get("importance_sampling"),
        "log_weights": log_w,
    }


def _noise_log_likelihood(spec: Any) -> float:
    from gwinfer.evaluation.event_is import build_likelihood

    return float(build_likelihood(spec).noise_log_likelihood())
