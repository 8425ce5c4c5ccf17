"""``gwinfer predict`` and ``gwinfer evaluate``: a point estimator on a catalogue split, judged by overlaps.

The model reads the catalogue cropped/decimated to its own time grid, but every overlap is computed over
the catalogue's full span at the catalogue's step (<= 2 M): a shorter window inflates overlaps, so a model
that reads a window is still judged on the whole waveform. The truth is the catalogue's waveform; the
reconstruction is the same backend regenerated at the predicted parameters (clipped into the backend's
validity box, which is counted). Work streams shard by shard, so memory stays flat for large test sets.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gwinfer.data.loaders import grid_slice
from gwinfer.data.store import Shard, catalogue_grid, read_manifest, read_rows, split_shards
from gwinfer.errors import GwinferError
from gwinfer.evaluation.predictions import Evaluation
from gwinfer.physics.timegrid import TimeGrid
from gwinfer.provenance import atomic_path, provenance, sha256_file

log = logging.getLogger(__name__)
#: Coarsest catalogue step (M) on which overlaps are computed: a coarser grid under-resolves the merger.
MAX_OVERLAP_DT = 2.0


def load_point_model(path: str | Path) -> tuple[Any, dict[str, Any], TimeGrid]:
    """(point model, its metadata, the time grid (M) it reads) of a model file or folder."""
    from gwinfer.models import load_model

    model, meta = load_model(path)
    if "time_grid" not in meta:
        raise GwinferError(f"{path} records no time_grid: cannot tell which samples the model reads")
    return model, meta, TimeGrid(**{k: float(meta["time_grid"][k]) for k in ("t_start", "t_end", "dt")})


def predict_rows(model: Any, h: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, 3) float64 predictions [q, s1z, s2z] of complex h22 rows (N, T), fed as (Re, Im) in batches."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(h), batch):
            x = torch.from_numpy(np.stack([h[i : i + batch].real, h[i : i + batch].imag], axis=1).astype(np.float32))
            out.append(model.predict(x).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, 3))


def run_split(
    model_path: str | Path,
    data: str | Path,
    split: str = "test",
    *,
    with_overlaps: bool = True,
    workers: int = 2,
    limit: int | None = None,
    progress: bool = True,
) -> tuple[Evaluation, dict[str, Any]]:
    """Predict every waveform of ``split`` and (optionally) its overlap with the regenerated prediction.

    ``limit``: at most this many waveforms (default all); ``workers``: processes regenerating waveforms.
    Returns the :class:`~gwinfer.evaluation.predictions.Evaluation` and the provenance of model and data.
    """
    from tqdm import tqdm

    from gwinfer.data.generate import backend_options, compute_waveforms
    from gwinfer.evaluation.overlap import overlap_batch
    from gwinfer.models import NON_FINITE, OUT_OF_DOMAIN, domain_of, guard
    from gwinfer.waveforms import get_backend

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise GwinferError(f"limit = {limit!r} must be a positive integer (or None for the whole split)")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise GwinferError(f"workers = {workers!r} must be a positive integer")
    model, meta, model_grid = load_point_model(model_path)
    root = Path(data)
    full = catalogue_grid(root, split)
    sl = grid_slice(full, model_grid)
    manifest = read_manifest(root)
    approximant = meta.get("approximant", "IMRPhenomT")
    options: dict[str, float] = {}
    if manifest is not None:
        if manifest["backend"]["name"] != approximant:
            log.warning(
                "catalogue made with %s, model trained on %s: reconstructions use the catalogue's backend",
                manifest["backend"]["name"],
                approximant,
            )
        approximant, options = manifest["backend"]["name"], dict(manifest["backend"].get("options") or {})
    elif approximant in ("IMRPhenomT", "IMRPhenomXAS", "SEOBNRv4_opt"):
        from gwinfer.config import from_dict
        from gwinfer.data.grid import CatalogueConfig

        options = backend_options(from_dict(CatalogueConfig, {"backend": approximant}))
    if with_overlaps and full.dt > MAX_OVERLAP_DT:
        raise GwinferError(f"catalogue step dt = {full.dt} M is too coarse for overlaps (need <= {MAX_OVERLAP_DT} M)")
    validity = get_backend(approximant, **options).validity if with_overlaps else None

    domain = domain_of(meta)
    truths, preds, raws, overlaps, all_flags, n_clipped, n_done = [], [], [], [], [], 0, 0
    paths = split_shards(root, split)
    n_total = sum(Shard.open(p).count for p in paths) if limit is None else limit
    bar = tqdm(total=n_total, disable=not progress, unit="wf", desc=f"evaluating {split}")
    try:  # the bar ends its line before any one-line error
        for path in paths:
            if limit is not None and limit - n_done <= 0:
                break
            theta, h = read_rows(path, None if limit is None else limit - n_done)
            if not np.all(np.isfinite(h.view(np.float32))):
                raise GwinferError(f"{path}: waveform contains NaN or inf")
            raw = predict_rows(model, h[:, sl])
            pred, flags = guard(raw, domain)
            raws.append(raw)
            truths.append(theta)
            preds.append(pred)
            all_flags.append(flags)
            if with_overlaps:
                clipped = np.column_stack(
                    [
                        np.clip(pred[:, 0], validity.q_min, validity.q_max),
                        np.clip(pred[:, 1:], -validity.spin_max, validity.spin_max),
                    ]
                )
                n_clipped += int(np.any(clipped != pred, axis=1).sum())
                rec, failures = compute_waveforms(clipped, approximant, full, workers=workers, options=options)
                if failures:
                    raise GwinferError(f"regenerating {len(failures)} prediction(s) failed, first: {failures[0]}")
                ov = overlap_batch(h, rec, full.dt)
                overlaps.append(np.where(flags & NON_FINITE, 0.0, ov))  # a failed prediction scores 0
            n_done += len(theta)
            bar.update(len(theta))
    finally:
        bar.close()
    flags = np.concatenate(all_flags) if all_flags else np.zeros(0, dtype=np.int64)
    n_bad, n_out = int(np.count_nonzero(flags & NON_FINITE)), int(np.count_nonzero(flags & OUT_OF_DOMAIN))
    if n_bad or n_out:
        log.warning(
            "%d non-finite prediction(s) (scored as failures) and %d outside the model's domain %s (clamped)",
            n_bad,
            n_out,
            domain.describe(),
        )
    ev = Evaluation(
        np.concatenate(truths),
        np.concatenate(preds),
        np.concatenate(overlaps) if overlaps else None,
        full,
        approximant,
        options,
        n_clipped,
        n_non_finite=n_bad,
        n_out_of_domain=n_out,
        raw=np.concatenate(raws) if raws else None,
        flags=flags,
    )
    from gwinfer.models import resolve_model_path

    model_file = resolve_model_path(model_path)
    info = {
        "model": {
            "path": str(model_file),
            "sha256": sha256_file(model_file),
            "kind": model.kind,
            "time_grid": model_grid.to_dict(),
            "approximant": meta.get("approximant"),
        },
        "data": {
            "path": str(root),
            "split": split,
            "backend": approximant,
            "grid": full.to_dict(),
            "manifest_sha256": sha256_file(root / "manifest.json") if manifest else None,
        },
    }
    return ev, info


def predict_to_file(
    model_path: str | Path,
    data: str | Path,
    split: str,
    out: str | Path,
    limit: int | None = None,
    progress: bool = True,
) -> Path:
    """``gwinfer predict``: write truth and predicted (q, s1z, s2z) of a split to HDF5 with provenance.

    Predictions are kept inside the model's domain (:func:`gwinfer.models.guard`); the raw network
    outputs and a per-row ``flags`` dataset (1: outside the domain, clamped; 2: non-finite) go beside them.
    """
    ev, info = run_split(model_path, data, split, with_overlaps=False, limit=limit, progress=progress)
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, arr in (("truth", ev.truth), ("prediction", ev.pred), ("raw_prediction", ev.raw)):
                d = f.create_dataset(name, data=arr)
                d.attrs["columns"] = np.array(["q", "s1z", "s2z"], dtype="S3")
            f.create_dataset("flags", data=ev.flags).attrs["meaning"] = (
                "0 ok, 1 outside the model's domain (clamped), 2 non-finite"
            )
            f.attrs["provenance"] = json.dumps(provenance("predictions", info, parents=[info["model"]["path"]]))
    return Path(out)


def model_name(model_path: str | Path) -> str:
    """A model's name for titles: its folder's name for ``DIR`` or ``DIR/model.pt``, else the file's stem."""
    p = Path(model_path)
    return p.name if p.is_dir() else (p.parent.name if p.name == "model.pt" else p.stem)


def results_dict(ev: Evaluation, info: dict[str, Any]) -> dict[str, Any]:
    """The results.json content: the paper's table, fractions, n, and provenance."""
    from gwinfer.evaluation.quantiles import error_table

    res = error_table(*ev.columns(), ev.overlaps)
    res["n_clipped_for_regeneration"] = ev.n_clipped
    res["n_non_finite_predictions"] = ev.n_non_finite
    res["n_out_of_domain_predictions"] = ev.n_out_of_domain
    res["provenance"] = provenance("evaluation", info, parents=[info["model"]["path"]])
    return res


def evaluate_model(
    model_path: str | Path,
    data: str | Path,
    split: str = "test",
    json_path: str | Path | None = None,
    report_dir: str | Path | None = None,
    workers: int = 2,
    limit: int | None = None,
    progress: bool = True,
    title: str | None = None,
) -> dict[str, Any]:
    """``gwinfer evaluate``: the error table (results.json) and, with ``report_dir``, figures + index.html."""
    from gwinfer.evaluation.plots import (
        errors_across_manifold,
        overlap_histograms,
        overlap_maps,
        reconstruction_examples,
    )
    from gwinfer.evaluation.report import write_report
    from gwinfer.provenance import write_json

    ev, info = run_split(model_path, data, split, workers=workers, limit=limit, progress=progress)
    results = results_dict(ev, info)
    if json_path is not None:
        write_json(json_path, results)
    if report_dir is not None:
        out = Path(report_dir)
        out.mkdir(parents=True, exist_ok=True)
        figures = [
            overlap_histograms(ev, out / "overlap_by_q.png"),
            errors_across_manifold(ev, out / "errors_manifold.png"),
            overlap_maps(ev, out / "overlap_maps.png"),
            reconstruction_examples(ev, out / "examples.png"),
        ]
        np.savez_compressed(out / "per_waveform.npz", truth=ev.truth, prediction=ev.pred, overlap=ev.overlaps)
        write_report(out, results, figures, title=title or f"{model_name(model_path)}: {split} of {Path(data).name}")
    return results
