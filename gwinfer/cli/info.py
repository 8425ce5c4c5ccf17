"""``gwinfer info``: what any file gwinfer writes is, with its provenance.

:func:`describe` knows catalogue folders and shards, point and posterior models (file, folder or
checkpoint), simulation, frequency-domain bank, prediction and stream-table files (HDF5 or CSV), bilby
results (JSON or HDF5: a summary, not every sample), whitened segments (``gwinfer prepare``'s ``.npy``),
PSD text files and JSON records; anything else is a one-line error.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from gwinfer.errors import GwinferError

#: The dataset whose length is the number of rows of each kind of HDF5 file.
MAIN_DATASET = {"predictions": "prediction", "simulation": "theta", "catalogue-shard": "params", "fd-bank": "h_plus"}
#: The keys of a result that summarise it (the samples themselves stay in the file).
RESULT_KEYS = ("label", "search_parameter_keys", "log_evidence", "log_evidence_err", "log_bayes_factor", "sampler")


def describe(path: str | Path) -> dict[str, Any]:
    """What the file or folder ``path`` that gwinfer wrote is: a dict with its ``kind`` and provenance."""
    p = Path(path)
    if p.is_dir() and (p / "model.pt").is_file():
        p = p / "model.pt"
    if p.is_dir():
        from gwinfer.data.store import read_manifest

        manifest = read_manifest(p)
        if manifest is None:
            raise GwinferError(f"{p} has no manifest.json: not a gwinfer catalogue (nor a model folder)")
        return manifest
    if not p.is_file():
        raise GwinferError(f"{p} does not exist")
    suffix = p.suffix.lower()
    if suffix == ".json":
        return _describe_json(p)
    if suffix in (".h5", ".hdf5"):
        return _describe_hdf5(p)
    if suffix in (".txt", ".dat", ".csv"):
        return _describe_text(p)
    if suffix == ".npy":
        return _describe_segment(p)
    if not zipfile.is_zipfile(p):
        raise GwinferError(
            f"{p} is not a file gwinfer wrote (not a catalogue, model, checkpoint, simulation, bank, prediction, "
            "result, segment, PSD or table)"
        )
    return _describe_model(p)


def _describe_model(p: Path) -> dict[str, Any]:
    from gwinfer.models import is_posterior_file, load_estimator, load_model

    if is_posterior_file(p):
        model, meta = load_estimator(p)
        return {"kind": "posterior-model", "model_kind": model.kind, "spec": model.spec(),
                "n_parameters": sum(t.numel() for t in model.parameters()),
                "parameters": meta.get("names"), **{k: v for k, v in meta.items() if k != "prior_text"}}  # fmt: skip
    model, meta = load_model(p)
    grid = meta.get("time_grid", {})
    return {
        "kind": "model",
        "model_kind": model.kind,
        "spec": model.spec(),
        "n_parameters": sum(t.numel() for t in model.parameters()),
        "t_start": grid.get("t_start"),
        "t_end": grid.get("t_end"),
        "dt": grid.get("dt"),
        "approximant": meta.get("approximant"),
        **meta,
    }


def _result_summary(data: dict[str, Any], n_samples: int, parameters: list[str]) -> dict[str, Any]:
    """The description of a bilby result: its summary keys, sample count, columns and gwinfer metadata."""
    out = {"kind": "posterior-result", "n_samples": n_samples, "columns": parameters}
    out.update({k: data[k] for k in RESULT_KEYS if k in data})
    if isinstance(data.get("meta_data"), dict):
        out["meta_data"] = data["meta_data"]
    return out


def _describe_json(p: Path) -> dict[str, Any]:
    from gwinfer.provenance import read_json

    data = read_json(p)
    posterior = data.get("posterior") if isinstance(data, dict) else None
    if isinstance(posterior, dict) and "search_parameter_keys" in data:  # a bilby result
        columns = posterior.get("content", posterior)
        columns = columns if isinstance(columns, dict) else {}
        first = next(iter(columns.values()), [])
        return _result_summary(data, len(first) if isinstance(first, list) else 0, sorted(columns))
    return data


def _attrs(f: Any) -> dict[str, Any]:
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    for key in ("provenance", "config"):
        if isinstance(attrs.get(key), str):
            try:
                attrs[key] = json.loads(attrs[key])
            except ValueError:
                pass
    return {k: v for k, v in attrs.items() if not hasattr(v, "shape")}


def _describe_hdf5(p: Path) -> dict[str, Any]:
    import h5py

    try:
        with h5py.File(p, "r") as f:
            keys = sorted(f.keys())
            attrs = _attrs(f)
            if "posterior" in keys and "search_parameter_keys" in keys:
                return _bilby_hdf5(p)
            rows = {k: int(f[k].shape[0]) for k in keys if isinstance(f[k], h5py.Dataset) and f[k].ndim >= 1}
    except OSError as err:
        raise GwinferError(f"{p} is not a readable HDF5 file ({str(err).splitlines()[0][:120]})") from None
    if "prediction" in keys:
        kind = "predictions"
    elif "theta" in keys and "signals" in keys:
        kind = "simulation"
    elif "h22" in keys and "params" in keys:
        kind = "catalogue-shard"
    elif "h_plus" in keys and "psds" in keys:
        kind = "fd-bank"
    elif "columns" in attrs and "provenance" in attrs:
        kind = "stream-table"
    else:
        raise GwinferError(f"{p} is an HDF5 file gwinfer did not write (datasets {keys[:6]})")
    main = MAIN_DATASET.get(kind) or next(iter(rows), "")
    return {"kind": kind, "datasets": keys, "rows": rows.get(main, 0), **attrs}


def _bilby_hdf5(p: Path) -> dict[str, Any]:
    from bilby.core.result import read_in_result

    result = read_in_result(str(p))
    data = {k: getattr(result, k, None) for k in RESULT_KEYS}
    data["meta_data"] = result.meta_data
    return _result_summary(data, len(result.posterior), list(result.posterior.columns))


def _describe_text(p: Path) -> dict[str, Any]:
    with p.open() as fh:
        first = fh.readline()
        n_lines = 1 + sum(1 for _ in fh)
    if first.startswith("# {"):
        try:
            record = json.loads(first[2:])
        except ValueError:
            record = None
        if isinstance(record, dict):
            if p.suffix.lower() == ".csv":  # gwinfer stream: provenance line, header line, one row per chunk
                return {"kind": "stream-table", "rows": max(n_lines - 2, 0), "provenance": record}
            return {"kind": "psd", **record}
    raise GwinferError(f"{p} is not a file gwinfer wrote (no JSON provenance header)")


def _describe_segment(p: Path) -> dict[str, Any]:
    import numpy as np

    from gwinfer.evaluation.records import prepared_segment

    record = prepared_segment(p)
    if record is None:
        raise GwinferError(f"{p} is not a segment gwinfer prepared (no {p.with_suffix('.json').name} beside it)")
    try:
        x = np.load(p, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise GwinferError(f"{p} is not a readable .npy file ({err})") from None
    return {"shape": list(x.shape), "dtype": str(x.dtype), **record, "kind": "whitened-segment"}
