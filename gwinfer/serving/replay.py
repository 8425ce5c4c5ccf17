"""Replay strain files through a streaming posterior entry of a server (HERMES-style streaming).

    res = stream_strain("127.0.0.1:8000", "hl-gw150914-stream",
                        {"H1": "H-H1_LOSC_4_V2-1126259446-32.hdf5", "L1": "L-L1_LOSC_4_V2-1126259446-32.hdf5"},
                        "preds.csv", chunk=1.0, n_samples=1000, seed=0)

The strain of each file is read, resampled to the entry's rate, whitened once on the client with its
off-source PSD (as ``gwinfer analyze`` prepares data), and sent in ``chunk``-second updates of one
sequence (sequence_start on the first, sequence_end on the last): the server keeps the window. Each
answer's posterior samples are summarised per parameter (median, 5 % and 95 %) with the GPS time of the
window's end, and written atomically with provenance (``gwinfer stream``).

An entry exported with its training prior (config parameters ``prior``, ``prior_time_offset``) adds the
column ``prior_acceptance`` (draws inside the prior over draws made; NaN while the window is not full):
``gwinfer serve`` replaces the draws outside and reports it; from a server that runs only the graph (a real
Triton) the draws outside are dropped here (a stream cannot ask for more draws of a window it has passed),
so the quantiles are of the draws inside. A window whose draws are too rarely inside (the server's 422)
is kept as a row with NaN quantiles and acceptance 0; the stream goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.evaluation.prior_support import TrainingPrior, inside_prior
from gwinfer.serving.client import AsyncServedModel, InferenceFailed
from gwinfer.serving.export.prior import prior_of_parameters


@dataclass
class StreamSpec:
    """What a streaming posterior entry takes, read from the server (config ``parameters`` and metadata)."""

    detectors: list[str]
    sample_rate: float  # Hz
    kernel: int  # samples per window
    stride: int  # new samples per request
    f_min: float  # whitening band, Hz
    f_max: float | None
    parameter_names: list[str]
    theta_dim: int
    prior: TrainingPrior | None = None  # the training prior the entry carries (config parameters)

    @classmethod
    def from_model(cls, model: AsyncServedModel) -> StreamSpec:
        params = model.parameters
        need = [k for k in ("stream_kernel", "stream_stride", "detectors", "sample_rate", "f_min") if k not in params]
        if need or set(model.inputs) != {"update", "noise"}:
            raise GwinferError(
                f"model {model.name!r} is not a streaming posterior entry with its data settings "
                f"(inputs {sorted(model.inputs)}, missing config parameters {need}); export it with "
                f"gwinfer export --stream-stride from an estimator trained by gwinfer"
            )
        d = model.inputs["noise"][1][-1]
        names = (
            (params.get("parameter_names") or "").split(",")
            if params.get("parameter_names")
            else [f"theta_{i}" for i in range(d)]
        )
        f_max = params.get("f_max")
        return cls(
            params["detectors"].split(","),
            float(params["sample_rate"]),
            int(params["stream_kernel"]),
            int(params["stream_stride"]),
            float(params["f_min"]),
            float(f_max) if f_max else None,
            names,
            d,
            prior_of_parameters(params),
        )


def prepare_strain(
    files: dict[str, str | Path], spec: StreamSpec, psd_gps: float | None = None, psd_seglen: float = 1.0
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """(whitened float32 strain (n_det, n) in the model's detector order, GPS time of sample 0 (s), info).

    Each file is read and resampled to the model's rate as ``gwinfer analyze`` does
    (:func:`gwinfer.evaluation.analyze.load_series`); the PSD is its median-Welch off-source estimate
    (:func:`~gwinfer.evaluation.analyze.event_psd`, ``psd_seglen`` s segments, the longer side of
    ``psd_gps`` +- 2 s) when ``psd_gps`` is given, else the median-Welch PSD of the whole file; the WHOLE
    file is then whitened once (:func:`gwinfer.detectors.whitening.whiten` over [f_min, f_max], Tukey taper
    of 1 s at each end), so every window is cut from one whitened stretch rather than whitened with its own
    context as ``gwinfer analyze`` does (windows within ~1 s of the file ends see the taper).
    """
    from gwinfer.detectors.psd import welch_psd
    from gwinfer.detectors.strain import span
    from gwinfer.detectors.whitening import whiten
    from gwinfer.evaluation.analyze import event_psd, load_series

    if sorted(files) != sorted(spec.detectors):
        raise GwinferError(f"the model takes strain of {spec.detectors}; got files for {sorted(files)}")
    fs = spec.sample_rate
    rows, spans, psds = [], {}, {}
    for det in spec.detectors:
        ts = load_series(files[det], fs)
        spans[det] = span(ts)
        if psd_gps is not None:
            psd = event_psd(files[det], psd_gps, fs, psd_seglen, series=ts)
        else:
            psd = welch_psd(ts.value, fs, seglen=psd_seglen, average="median")
        duration = len(ts) / fs
        rows.append(whiten(ts.value, psd, fs, spec.f_min, spec.f_max, alpha=min(1.0, 2.0 / duration)))
        psds[det] = psd
    starts = {d: s[0] for d, s in spans.items()}
    if len({round(s[0] * fs) for s in spans.values()}) != 1 or len({r.size for r in rows}) != 1:
        raise GwinferError(f"the strain files cover different GPS spans: {spans}")
    return np.stack(rows).astype(np.float32), float(starts[spec.detectors[0]]), {"spans": spans, "psds": psds}


def chunk_noise(seed: int | None, chunk: int, n: int, d: int) -> np.ndarray:
    """float32 (1, n, d) standard-normal noise of replay chunk ``chunk``: ``default_rng([seed, chunk])``, so
    any chunk's draws can be reproduced alone (seed None: fresh entropy)."""
    rng = np.random.default_rng(None if seed is None else [int(seed), int(chunk)])
    return rng.standard_normal((1, n, d)).astype(np.float32)


def summarize(samples: np.ndarray, names: list[str], window_start: float) -> dict[str, float]:
    """Median and 5 / 95 % quantiles per parameter of (n, D) samples (``geocent_time`` shifted by the
    window's GPS start, s, as ``gwinfer analyze`` reports it); NaN without samples."""
    out: dict[str, float] = {}
    for i, name in enumerate(names):
        col = samples[:, i].astype(np.float64) + (window_start if name == "geocent_time" else 0.0)
        q05, q50, q95 = np.quantile(col, [0.05, 0.5, 0.95]) if col.size else (np.nan,) * 3
        out.update({f"{name}_median": float(q50), f"{name}_q05": float(q05), f"{name}_q95": float(q95)})
    return out


async def replay_strain(
    url: str,
    name: str,
    files: dict[str, str | Path],
    *,
    chunk: float = 1.0,
    n_samples: int = 1000,
    seed: int | None = 0,
    start: float | None = None,
    psd_gps: float | None = None,
    token: str | None = None,
    sequence_id: int | None = None,
    keep_samples: bool = False,
) -> dict[str, Any]:
    """Replay GWOSC strain files through a streaming posterior entry in ``chunk``-second pieces.

    ``files``: {detector: GWOSC HDF5}, exactly the model's detectors. The strain is prepared once
    (:func:`prepare_strain`), then sent from GPS ``start`` (default: the file start) in pieces of ``chunk``
    s, which must be the entry's stride; the first request carries ``sequence_start``, the last
    ``sequence_end``. Each request carries ``n_samples`` noise draws (:func:`chunk_noise`). Returns
    ``{"rows": [per chunk: chunk, gps_end, ready, <param>_median/_q05/_q95 ..., prior_acceptance (entries
    with a training prior)], "spec", "strain", "t0", "samples" (per chunk, with keep_samples)}``; the
    quantiles of chunks before the window is full (``ready`` False) are of a partly zero-padded window.
    Draws outside the training prior: see the module docstring.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise GwinferError(f"n_samples = {n_samples!r} must be an integer >= 1")
    async with await AsyncServedModel.open(url, name, token=token) as model:
        spec = StreamSpec.from_model(model)
        step = chunk * spec.sample_rate
        if abs(step - spec.stride) > 1e-6:
            raise GwinferError(
                f"chunk {chunk:g} s = {step:g} samples at {spec.sample_rate:g} Hz does not match the "
                f"stride of {name!r}, {spec.stride} samples ({spec.stride / spec.sample_rate:g} s)"
            )
        strain, t0, info = prepare_strain(files, spec, psd_gps)
        i0 = 0 if start is None else int(round((start - t0) * spec.sample_rate))
        n_chunks = (strain.shape[1] - i0) // spec.stride
        if not 0 <= i0 or n_chunks < 1:
            raise GwinferError(
                f"start = {start} GPS s leaves no {chunk:g} s chunk in the data "
                f"([{t0:.3f}, {t0 + strain.shape[1] / spec.sample_rate:.3f}])"
            )
        seq = sequence_id if sequence_id is not None else int(np.random.default_rng().integers(1, 2**62))
        log_prior = spec.prior.log_prior(spec.parameter_names) if spec.prior is not None else None
        rows, kept = [], []
        for k in range(n_chunks):
            a = i0 + k * spec.stride
            z = chunk_noise(seed, k, n_samples, spec.theta_dim)
            gps_end = t0 + (a + spec.stride) / spec.sample_rate
            try:
                out, params = await model.infer_response(
                    {"update": strain[None, :, a : a + spec.stride], "noise": z},
                    sequence_id=seq,
                    sequence_start=k == 0,
                    sequence_end=k == n_chunks - 1,
                )
            except InferenceFailed as err:
                if err.status != "422":  # only "too few draws inside the prior" leaves the stream going
                    raise
                out, params = {"samples": z[:, :0], "ready": np.ones((1, 1), bool)}, {"prior_acceptance": 0.0}
            samples, ready = out["samples"][0], bool(out["ready"].reshape(-1)[0])
            acceptance = np.nan
            if log_prior is not None and ready:
                if "prior_acceptance" in params:  # gwinfer serve replaced the draws outside
                    acceptance = float(params["prior_acceptance"])
                else:  # a server running only the graph: drop the draws outside
                    ok = inside_prior(samples, spec.parameter_names, log_prior)
                    samples, acceptance = samples[ok], float(ok.mean())
            row = {
                "chunk": k,
                "gps_end": gps_end,
                "ready": ready,
                **summarize(samples, spec.parameter_names, gps_end - spec.kernel / spec.sample_rate),
            }
            if log_prior is not None:
                row["prior_acceptance"] = acceptance
            rows.append(row)
            if keep_samples:
                kept.append(samples)
    return {
        "rows": rows,
        "spec": spec,
        "strain": strain,
        "t0": t0,
        "start_index": i0,
        "psds": info["psds"],
        "samples": kept,
    }


def write_stream_table(rows: list[dict[str, Any]], out: str | Path, record: dict[str, Any]) -> Path:
    """Write the per-chunk rows atomically: ``.csv`` (a ``# {provenance JSON}`` first line, then a header
    row) or ``.h5`` / ``.hdf5`` (one dataset per column, the provenance JSON in the ``provenance`` attribute)."""
    import json

    from gwinfer.provenance import atomic_path

    p = Path(out)
    if not rows:
        raise GwinferError("no chunks to write")
    cols = list(rows[0])
    if p.suffix.lower() == ".csv":
        with atomic_path(p) as tmp, open(tmp, "w") as f:
            f.write("# " + json.dumps(record) + "\n")
            f.write(",".join(cols) + "\n")
            for r in rows:
                f.write(",".join(str(int(r[c])) if isinstance(r[c], bool) else repr(r[c]) for c in cols) + "\n")
    elif p.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        with atomic_path(p) as tmp, h5py.File(tmp, "w") as f:
            for c in cols:
                f.create_dataset(c, data=np.asarray([r[c] for r in rows]))
            f.attrs["provenance"] = json.dumps(record)
            f.attrs["columns"] = ",".join(cols)
    else:
        raise GwinferError(f"output {p}: use a .csv or .h5 file")
    return p


def stream_strain(
    url: str,
    name: str,
    files: dict[str, str | Path],
    out: str | Path,
    *,
    chunk: float = 1.0,
    n_samples: int = 1000,
    seed: int | None = 0,
    start: float | None = None,
    psd_gps: float | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """:func:`replay_strain` then :func:`write_stream_table` with provenance (``gwinfer stream``).

    The record holds the call's settings, the server's model name/version/config parameters, the input
    files' sha256 (``parents``), gwinfer and library versions. Returns replay_strain's dict plus ``out``.
    """
    import asyncio

    from gwinfer.provenance import provenance

    res = asyncio.run(
        replay_strain(
            url, name, files, chunk=chunk, n_samples=n_samples, seed=seed, start=start, psd_gps=psd_gps, token=token
        )
    )
    spec = res["spec"]
    record = provenance(
        "stream-posterior",
        {
            "url": url,
            "model": name,
            "chunk_s": chunk,
            "n_samples": n_samples,
            "seed": seed,
            "start": start,
            "psd_gps": psd_gps,
            "files": {d: str(p) for d, p in files.items()},
        },
        parents=[files[d] for d in spec.detectors],
        model={
            "detectors": spec.detectors,
            "sample_rate": spec.sample_rate,
            "kernel": spec.kernel,
            "stride": spec.stride,
            "f_min": spec.f_min,
            "f_max": spec.f_max,
            "parameter_names": spec.parameter_names,
            "prior": None if spec.prior is None else {"time_offset": spec.prior.time_offset, "text": spec.prior.text},
        },
        whitening="whole file once on the client (median-Welch PSD; see gwinfer.serving.replay.prepare_strain)",
        columns="gps_end: GPS s of the window end; <param>_median/_q05/_q95 over the request's samples; "
        "geocent_time in GPS s; prior_acceptance (entries with a training prior): draws inside the prior over "
        "draws made, NaN before the window is full, 0 for a window refused for too few draws inside",
    )
    res["out"] = write_stream_table(res["rows"], out, record)
    return res
