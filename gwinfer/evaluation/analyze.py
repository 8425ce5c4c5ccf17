"""Real events: GWOSC strain -> off-source PSD -> whitened segment -> network posterior (``gwinfer analyze``).

The data are prepared exactly as the training signals were (:mod:`gwinfer.data.simulate`):

1. each detector's file is read with gwpy (:func:`gwinfer.detectors.strain.read_strain`) and resampled to
   the model's ``fs`` (gwpy low-passes first);
2. PSD: median-averaged Welch (Hann, ``psd_seglen`` s segments, 50 % overlap) of the off-source data: the
   longer of the stretches before and after the event, ``guard`` s away from the trigger
   (:func:`event_psd`, also behind ``gwinfer psd``, which writes the two-column files a two-detector
   simulation config lists under ``psds``);
3. whitening in the frequency domain with that PSD over ``[f_min, f_max]`` on a stretch of ``context`` s
   each side of the segment (Tukey-tapered at its far ends), then the segment is cut out: as in
   training, where the signal is whitened in a longer buffer and cropped. The segment starts
   ``time_offset`` s (the simulation's trigger position) before the trigger GPS time ``gps``;
4. the estimator draws ``n`` samples; ``geocent_time`` goes back to GPS seconds.

Noise convention: the training noise is N(0, 1) in every frequency bin; whitened real data have the bins
outside ``[f_min, f_max]`` zeroed (variance 1 - 20/512 ~ 0.96 at 1024 Hz from 20 Hz). The signals
(and so an ``svd`` embedding's basis) live inside the band, so the difference is invisible to the
projection; :func:`noise_check` measures it on off-source data.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError

log = logging.getLogger(__name__)

#: GPS seconds kept free of the event on either side when choosing off-source data.
GUARD = 2.0


def load_series(path: str | Path, fs: float) -> Any:
    """The whole file as a gwpy TimeSeries at ``fs`` Hz (gwpy's low-pass + decimation)."""
    from gwinfer.detectors.strain import read_strain

    ts = read_strain(path)
    if not np.all(np.isfinite(ts.value)):
        bad = int(np.sum(~np.isfinite(ts.value)))
        raise GwinferError(f"{path}: {bad} NaN/inf samples (data gaps); gwinfer analyze needs contiguous data")
    rate = float(ts.sample_rate.value)
    if rate < fs:
        raise GwinferError(f"{path} is sampled at {rate:g} Hz, below the model's {fs:g} Hz")
    return ts.resample(float(fs)) if abs(rate - fs) > 1e-9 else ts


def _check_gps(ts: Any, gps: float, path: str | Path) -> tuple[float, float]:
    """(start, end) GPS s of ``ts``; a GwinferError unless ``gps`` lies strictly inside."""
    from gwinfer.detectors.strain import span

    start, end = span(ts)
    if not start < gps < end:
        raise GwinferError(f"GPS time {gps} is outside {path} ([{start:.3f}, {end:.3f}] GPS s)")
    return start, end


def event_psd(
    path: str | Path, gps: float, fs: float, seglen: float = 1.0, guard: float = GUARD, series: Any = None
) -> Any:
    """Off-source median-Welch PSD (:class:`~gwinfer.detectors.psd.PSD`) of the strain file around ``gps``.

    Uses the longer of [file start, gps - guard] and [gps + guard, file end] (s), resampled to ``fs`` Hz.
    Needs >= 20 Welch segments of ``seglen`` s (fewer over-whiten, see ``welch_psd``). ``series``: the
    file already read by ``load_series(path, fs)`` (saves reading and resampling it again).
    """
    from gwinfer.detectors.psd import welch_psd

    ts = load_series(path, fs) if series is None else series
    start, end = _check_gps(ts, gps, path)
    i_lo = int(round((gps - guard - start) * fs))
    i_hi = int(round((gps + guard - start) * fs))
    before, after = ts.value[: max(i_lo, 0)], ts.value[max(i_hi, 0) :]
    off = before if before.size >= after.size else after
    n_seg = int(off.size / (seglen * fs) * 2) - 1
    if n_seg < 20:
        raise GwinferError(
            f"{path}: only {off.size / fs:.1f} s of off-source data ({n_seg} Welch segments of "
            f"{seglen} s); need >= 20 segments"
        )
    return welch_psd(off, fs, seglen=seglen, average="median")


def write_psd(psd: Any, path: str | Path, header: Mapping[str, Any]) -> Path:
    """Write a tabulated PSD as two columns (Hz, 1/Hz) with a JSON provenance header line, atomically."""
    from gwinfer.provenance import atomic_path

    p = Path(path)
    with atomic_path(p) as tmp:
        np.savetxt(tmp, np.column_stack([psd.frequencies, psd.values]), fmt="%.10e", header=json.dumps(dict(header)))
    return p


def whitened_segment(
    path: str | Path, gps: float, psd: Any, config: Any, context: float = 4.0, series: Any = None
) -> tuple[np.ndarray, float]:
    """(whitened float32 segment (n_samples,), GPS start of the segment) of one detector.

    ``config``: the model's :class:`~gwinfer.data.simulate.SimulationConfig` (fs, duration, band,
    time_offset). The segment is [gps - time_offset, gps - time_offset + duration]; whitening runs on
    ``context`` s of data each side of it (Tukey alpha covering 1 s at each far end). ``series`` as for
    :func:`event_psd`.
    """
    from gwinfer.detectors.whitening import whiten

    fs, dur = config.fs, config.duration
    ts = load_series(path, fs) if series is None else series
    start, end = _check_gps(ts, gps, path)
    seg0 = gps - config.time_offset
    lo, hi = seg0 - context, seg0 + dur + context
    if lo < start or hi > end:
        raise GwinferError(
            f"{path}: the segment and {context} s of context each side ([{lo:.2f}, {hi:.2f}] GPS s) "
            f"do not fit in the file ([{start:.2f}, {end:.2f}])"
        )
    i0 = int(round((lo - start) * fs))
    n_ctx, n = int(round(context * fs)), config.n_samples
    stretch = ts.value[i0 : i0 + 2 * n_ctx + n]
    w = whiten(stretch, psd, fs, config.f_min, config.f_max, alpha=2.0 / (2 * context + dur))
    return w[n_ctx : n_ctx + n].astype(np.float32), start + i0 / fs + context


def event_data(
    files: Mapping[str, str | Path], gps: float, config: Any, psd_seglen: float = 1.0, guard: float = GUARD
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """(x float32 (n_det, n_samples), segment GPS start, {detector: PSD}) for the model's detectors."""
    missing = [d for d in config.detectors if d not in files]
    if missing:
        raise GwinferError(f"the model needs strain for {list(config.detectors)}; missing {missing}")
    series = {d: load_series(files[d], config.fs) for d in config.detectors}
    psds = {d: event_psd(files[d], gps, config.fs, psd_seglen, guard, series[d]) for d in config.detectors}
    rows, starts = [], []
    for d in config.detectors:
        w, s0 = whitened_segment(files[d], gps, psds[d], config, series=series[d])
        rows.append(w)
        starts.append(s0)
    return np.stack(rows), float(starts[0]), psds


def noise_check(
    model: Any,
    files: Mapping[str, str | Path],
    gps: float,
    config: Any,
    offsets: tuple[float, ...],
    psd_seglen: float = 1.0,
) -> dict[str, float]:
    """Variance of off-source whitened data, per sample and projected on an ``svd`` embedding's basis.

    ``offsets``: trigger-time shifts (s) giving signal-free segments. Returns means over detectors and
    segments (N(0, 1) training noise gives 1 for both).
    """
    import torch

    series = {d: load_series(files[d], config.fs) for d in config.detectors}
    psds = {d: event_psd(files[d], gps, config.fs, psd_seglen, series=series[d]) for d in config.detectors}
    xs = np.stack(
        [
            np.stack(
                [whitened_segment(files[d], gps + o, psds[d], config, series=series[d])[0] for d in config.detectors]
            )
            for o in offsets
        ]
    )
    out = {"sample_variance": float(np.var(xs))}
    emb = getattr(model, "embedding", None)
    if emb is not None and hasattr(emb, "project"):
        with torch.no_grad():
            coeff = emb.project(model.x_scale(torch.from_numpy(xs))).numpy()
        out["projected_variance"] = float(np.mean(coeff**2)) * float(model.x_scale.std) ** 2
    return out


def analyze(
    model_path: str | Path,
    files: Mapping[str, str | Path],
    gps: float,
    out: str | Path,
    n: int = 50000,
    psd_seglen: float = 1.0,
    corner: bool = True,
    seed: int | None = 0,
) -> dict[str, Any]:
    """Posterior of the event at ``gps`` (GPS s) in the strain ``files`` ({detector: GWOSC HDF5}) with the
    posterior model ``model_path``; writes a bilby result (+ corner plot) to ``out``. ``seed`` fixes the
    draws (None: torch's global generator). Returns ``{"result", "corner", "seconds", "segment_start"}``."""
    from gwinfer.data.strain_dataset import simulation_config_of
    from gwinfer.evaluation.posterior import make_result, sample_in_prior, save_result
    from gwinfer.evaluation.prior_support import model_log_prior
    from gwinfer.models import load_estimator, symmetrised
    from gwinfer.provenance import provenance, sha256_file

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GwinferError(f"number of samples n = {n!r} must be an integer >= 1")
    model, meta = load_estimator(model_path)
    model = symmetrised(model, meta)
    config = simulation_config_of(meta)
    if "plus" in config.detectors:
        raise GwinferError(f"{model_path} was trained on the '+' polarisation alone; real data need an H1/L1 model")
    unknown = sorted(set(files) - set(config.detectors))
    if unknown:
        raise GwinferError(f"the model was trained on {list(config.detectors)}; no use for strain of {unknown}")
    t0 = time.perf_counter()
    x, seg0, psds = event_data(files, gps, config, psd_seglen)
    t_data = time.perf_counter() - t0
    names = list(meta.get("names") or [])
    coverage = coverage_report(config, psds, gps)
    t1 = time.perf_counter()
    samples, acceptance = sample_in_prior(model, x, n, names, model_log_prior(meta, names), seed=seed)
    t_sample = time.perf_counter() - t1
    coverage["warnings"] += edge_warnings(samples, config.load_prior())
    for w in coverage["warnings"]:
        log.warning(w)
    if "geocent_time" in samples:
        samples["geocent_time"] = samples["geocent_time"] + seg0
    meta_data = {
        "gwinfer": {
            "model": str(model_path),
            "gps": gps,
            "segment_start": seg0,
            "n": n,
            "prior_acceptance": acceptance,
            "coverage": coverage,
            "data_seconds": t_data,
            "sampling_seconds": t_sample,
            "psd_seglen": psd_seglen,
            "files": {d: {"path": str(p), "sha256": sha256_file(p)} for d, p in files.items()},
            "provenance": json.dumps(
                provenance(
                    "event-posterior",
                    {"gps": gps, "n": n, "psd_seglen": psd_seglen},
                    parents=[model_path, *files.values()],
                )
            ),
        }
    }
    result = make_result(
        samples,
        label=Path(out).stem,
        search_parameter_keys=names,
        meta_data=meta_data,
        sampling_time=t_sample,
        priors=gps_prior(config.load_prior(), seg0),
    )
    paths = save_result(result, out, corner=corner)
    return {
        "result": paths["result"],
        "corner": paths.get("corner"),
        "seconds": t_data + t_sample,
        "segment_start": seg0,
        "posterior": result.posterior,
        "warnings": coverage["warnings"],
    }


#: Thresholds of :func:`coverage_report`: the event's PSD differs from the training PSD by more than 10 %
#: (median over the band of |ln S_event / S_train|) or by more than a factor e^0.3 = 1.35 on a tenth of the band.
PSD_MEDIAN_LIMIT, PSD_P90_LIMIT = 0.10, 0.30
#: A posterior with more than this share of its draws within 2 % (of the prior's width) of a bound is flagged.
EDGE_SHARE_LIMIT = 0.10


def psd_distance(event: Any, train: Any, f_lo: float, f_hi: float) -> dict[str, float]:
    """|ln(S_event / S_train)| over 200 log-spaced frequencies in the band both PSDs cover (Hz):
    its median and 90th percentile, and the mean of ln(S_event / S_train)."""
    lo = max(f_lo, event.f_range[0], train.f_range[0])
    hi = min(f_hi, event.f_range[1], train.f_range[1])
    if not lo < hi:
        raise GwinferError(f"the event's PSD ({event.f_range} Hz) and the training PSD do not share the band")
    f = np.geomspace(lo, hi, 200)
    r = np.log(event(f) / train(f))
    return {"median_abs_log_ratio": float(np.median(np.abs(r))), "p90_abs_log_ratio": float(np.quantile(np.abs(r), 0.9)),
            "mean_log_ratio": float(np.mean(r)), "f_lo": float(lo), "f_hi": float(hi)}  # fmt: skip


def coverage_report(config: Any, psds: Mapping[str, Any], gps: float) -> dict[str, Any]:
    """How far an event's noise and time are from a posterior model's training conditions.

    ``psds``: the event's PSD per detector; ``config``: the model's simulation config. Returns per-detector
    :func:`psd_distance` and one-line ``warnings`` (the answer is then likely biased or too wide/narrow).
    """
    from gwinfer.data.simulate import load_psd

    f_hi = 0.95 * (config.f_max or config.fs / 2)
    report: dict[str, Any] = {"psd": {}, "warnings": []}
    for det, spec in config.detector_psds.items():
        if det not in psds:
            continue
        d = psd_distance(psds[det], load_psd(spec)[0], config.f_min, f_hi)
        report["psd"][det] = d
        if d["median_abs_log_ratio"] > PSD_MEDIAN_LIMIT or d["p90_abs_log_ratio"] > PSD_P90_LIMIT:
            report["warnings"].append(
                f"{det}: the event's noise differs from the model's training PSD ({spec}) by a median factor "
                f"{np.exp(d['median_abs_log_ratio']):.2f} over {d['f_lo']:.0f}-{d['f_hi']:.0f} Hz (limit "
                f"{np.exp(PSD_MEDIAN_LIMIT):.2f}): the model was not trained for this noise; its posterior may be "
                "biased and mis-sized"
            )
    report["gps_offset_days"] = float((gps - config.gps_start) / 86400.0)
    return report


def edge_warnings(samples: Mapping[str, np.ndarray], prior: Any) -> list[str]:
    """Parameters whose draws pile against a bound of the training prior (the event may lie outside it)."""
    out = []
    for name, values in samples.items():
        p = prior.get(name) if prior is not None else None
        lo, hi = getattr(p, "minimum", None), getattr(p, "maximum", None)
        if lo is None or hi is None or not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
            continue
        width = hi - lo
        share = float(np.mean((values < lo + 0.02 * width) | (values > hi - 0.02 * width)))
        if share > EDGE_SHARE_LIMIT and name not in ("phase", "psi", "ra"):  # periodic: edges mean nothing
            out.append(f"{100 * share:.0f} % of the {name} draws lie at a bound of the training prior [{lo:g}, {hi:g}]: "
                       "the event may lie outside what the model was trained on")  # fmt: skip
    return out


def gps_prior(prior: Any, seg0: float) -> Any:
    """The training prior with geocent_time moved from seconds after the segment start to GPS seconds
    (the frame of the stored samples), so the result's prior and posterior agree."""
    from bilby.core.prior import Uniform

    g = prior.get("geocent_time") if prior is not None else None
    if isinstance(g, Uniform):
        prior["geocent_time"] = Uniform(g.minimum + seg0, g.maximum + seg0, name="geocent_time",
                                        latex_label="$t_c$ [GPS s]", unit="s")  # fmt: skip
    return prior


def prepare_segment(
    model_path: str | Path, files: Mapping[str, str | Path], gps: float, out: str | Path, psd_seglen: float = 1.0
) -> dict[str, Path]:
    """``gwinfer prepare``: the whitened segment a posterior model reads, from GWOSC strain, as ``OUT`` (.npy,
    float32 (n_det, n_samples)) with ``OUT.json`` beside it (GPS of the segment start, detectors, sample
    rate, band, strain files with their sha256, provenance) and each detector's off-source PSD as
    ``OUT-<det>-psd.txt``. ``gwinfer sample --strain OUT`` and the server take the array; ``sample`` reads
    the JSON to give geocent_time in GPS seconds."""
    from gwinfer.data.strain_dataset import simulation_config_of
    from gwinfer.models import load_estimator
    from gwinfer.provenance import atomic_path, provenance, sha256_file, write_json

    out = Path(out)
    if out.suffix != ".npy":
        raise GwinferError(f"--out {out} must end in .npy (the whitened segment is a numpy array)")
    _, meta = load_estimator(model_path)
    config = simulation_config_of(meta)
    x, seg0, psds = event_data(files, gps, config, psd_seglen)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, x.astype(np.float32))
    psd_paths = {}
    for d, psd in psds.items():
        psd_paths[d] = write_psd(psd, out.with_name(f"{out.stem}-{d}-psd.txt"),
                                 {"detector": d, "gps": gps, "psd_seglen": psd_seglen, "method": psd.name})  # fmt: skip
    record = {
        "kind": "whitened-segment",
        "segment_start": seg0,
        "gps": gps,
        "detectors": list(config.detectors),
        "fs": config.fs,
        "duration": config.duration,
        "f_min": config.f_min,
        "shape": list(x.shape),
        "model": str(model_path),
        "files": {d: {"path": str(p), "sha256": sha256_file(p)} for d, p in files.items()},
        "psds": {d: str(p) for d, p in psd_paths.items()},
        "provenance": provenance(
            "whitened-segment", {"gps": gps, "psd_seglen": psd_seglen}, parents=[model_path, *files.values()]
        ),  # fmt: skip
    }
    write_json(out.with_suffix(".json"), record)
    return {"segment": out, "record": out.with_suffix(".json"), **{f"psd_{d}": p for d, p in psd_paths.items()}}
