"""Build point estimators from specs, and save/load them as single self-describing files.

A model file is one ``torch.save`` of a dict of tensors and plain Python values only, so it loads with
``torch.load(path, weights_only=True)``::

    {"format": "gwinfer-model", "format_version": 1, "gwinfer_version": "0.1.0",
     "model_spec": {"kind": "wavenet", "config": {...}, "n_samples": 5066},
     "model_state": {<state_dict: parameters and the fitted standardisation buffers>},
     "metadata": {<caller's: time grid, approximant, provenance, ...>}}

:func:`load_model` also accepts a training checkpoint written by the trainer: any dict holding
``"model_state"``, ``"model_spec"`` and ``"metadata"`` (extra keys such as optimiser state are ignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from gwinfer._version import __version__
from gwinfer.config import from_dict
from gwinfer.errors import GwinferError
from gwinfer.models.heads import PointEstimator
from gwinfer.models.reduced_basis import ReducedBasisModel
from gwinfer.models.wavenet import WaveNet
from gwinfer.provenance import atomic_path
from gwinfer.training.checkpoint import check_plain

FILE_FORMAT = "gwinfer-model"
FORMAT_VERSION = 1

MODEL_KINDS: dict[str, type[PointEstimator]] = {
    WaveNet.kind: WaveNet,
    ReducedBasisModel.kind: ReducedBasisModel,
}


def build_model(spec: dict[str, Any], n_samples: int) -> PointEstimator:
    """A fresh (unfitted) model from ``spec = {"kind": ..., "config": {...}}`` for inputs of n_samples samples.

    Unknown kinds and unknown/ill-typed config keys raise a one-line GwinferError.
    """
    if not isinstance(spec, dict) or "kind" not in spec:
        raise GwinferError('model spec must be a mapping with a "kind" (and optional "config")')
    kind = spec["kind"]
    if kind not in MODEL_KINDS:
        raise GwinferError(f"unknown model kind {kind!r}; choose one of {sorted(MODEL_KINDS)}")
    unknown = sorted(set(spec) - {"kind", "config", "n_samples"})
    if unknown:
        raise GwinferError(f"model spec: unknown key(s) {unknown}; accepted: ['config', 'kind', 'n_samples']")
    cls = MODEL_KINDS[kind]
    config = from_dict(cls.config_class, spec.get("config") or {}, where=f"model.{kind}")
    return cls(config, n_samples=n_samples)


def file_payload(model: nn.Module, metadata: dict[str, Any], file_format: str, format_version: int) -> dict[str, Any]:
    """The self-describing dict of a model file: format, version, spec, CPU state_dict and checked metadata."""
    if not isinstance(metadata, dict):
        raise GwinferError("model metadata must be a mapping")
    check_plain(metadata, "metadata")
    return {
        "format": file_format,
        "format_version": format_version,
        "gwinfer_version": __version__,
        "model_spec": model.spec(),
        "model_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": metadata,
    }


def write_payload(path: str | Path, payload: dict[str, Any]) -> Path:
    """``torch.save`` a payload atomically; returns the path."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def model_payload(model: PointEstimator, metadata: dict[str, Any]) -> dict[str, Any]:
    """The dict :func:`save_model` writes (also usable inside a trainer's checkpoint)."""
    if not isinstance(model, PointEstimator):
        raise GwinferError(f"cannot save a {type(model).__name__}: not a gwinfer point estimator")
    return file_payload(model, metadata, FILE_FORMAT, FORMAT_VERSION)


def save_model(path: str | Path, model: PointEstimator, *, metadata: dict[str, Any]) -> Path:
    """Write ``model`` (spec + state_dict) and ``metadata`` to one file, atomically; returns the path."""
    return write_payload(path, model_payload(model, metadata))


def _n_samples(spec: dict[str, Any], metadata: dict[str, Any], where: str) -> int:
    if isinstance(spec.get("n_samples"), int):
        return int(spec["n_samples"])
    grid = metadata.get("time_grid") if isinstance(metadata, dict) else None
    if isinstance(grid, dict):
        from gwinfer.physics.timegrid import TimeGrid

        try:
            return TimeGrid(**{k: float(grid[k]) for k in ("t_start", "t_end", "dt")}).n
        except (KeyError, TypeError, ValueError):
            pass
    raise GwinferError(f"{where}: the model spec has no n_samples and the metadata no usable time_grid")


def resolve_model_path(path: str | Path) -> Path:
    """``path`` itself, or ``path/model.pt`` for a shipped-model folder; one-line error if neither exists."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    if not p.is_file():
        raise GwinferError(f"model file {p} does not exist")
    return p


def is_posterior_file(path: str | Path) -> bool:
    """True for a posterior estimator file: format ``gwinfer-posterior``, or a file without a format
    (trainer checkpoint) whose model spec names a posterior kind."""
    from gwinfer.models.posterior import FILE_FORMAT as POSTERIOR_FORMAT
    from gwinfer.models.posterior import estimator_kinds

    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 (load_model reports unreadable files)
        return False
    if not isinstance(payload, dict):
        return False
    if payload.get("format") is not None:
        return payload["format"] == POSTERIOR_FORMAT
    spec = payload.get("model_spec")
    return isinstance(spec, dict) and spec.get("kind") in estimator_kinds()


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[PointEstimator, dict[str, Any]]:
    """Load a model file (or a trainer checkpoint); returns (model in eval mode, metadata).

    The returned metadata is the saved one with ``"gwinfer_version"`` (of the writer) added if absent.
    """
    p = resolve_model_path(path)
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 (the unpickler raises many kinds on foreign bytes)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GwinferError(f"{p} is not a gwinfer model file (torch.load failed: {first[:200]})") from None
    if not isinstance(payload, dict) or not {"model_state", "model_spec"} <= set(payload):
        raise GwinferError(f'{p} is not a gwinfer model file (no "model_spec"/"model_state" entries)')
    if payload.get("format", FILE_FORMAT) != FILE_FORMAT:
        raise GwinferError(f"{p} is not a gwinfer model file (format {payload.get('format')!r})")
    spec, state = payload["model_spec"], payload["model_state"]
    metadata = payload.get("metadata") or {}
    if not isinstance(spec, dict) or not isinstance(state, dict) or not isinstance(metadata, dict):
        raise GwinferError(f"{p} is not a gwinfer model file (malformed spec, state or metadata)")
    model = build_model(
        {k: v for k, v in spec.items() if k != "n_samples"}, _n_samples(spec, metadata, str(p))
    )
    _load_state(model, state, p)
    model.eval()
    metadata = dict(metadata)
    metadata.setdefault("gwinfer_version", payload.get("gwinfer_version", "unknown"))
    return model, metadata


def _load_state(model: nn.Module, state: dict[str, Any], p: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise GwinferError(
            f"{p}: state_dict does not match a {model.kind} model built from its spec "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})"
        )
    for k, v in expected.items():
        if not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != tuple(v.shape):
            got = tuple(state[k].shape) if isinstance(state[k], torch.Tensor) else type(state[k]).__name__
            raise GwinferError(
                f"{p}: state_dict does not match a {model.kind} model built from its spec "
                f"({k} has shape {got}, expected {tuple(v.shape)})"
            )
    model.load_state_dict(state, strict=True)
