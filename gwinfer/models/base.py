"""What every gwinfer model shares: boundary checks, the MLP block and the model-file I/O.

A model file is one ``torch.save`` of a dict of tensors and plain Python values only, so it loads with
``torch.load(path, weights_only=True)``::

    {"format": "gwinfer-model" | "gwinfer-posterior", "format_version": 1, "gwinfer_version": "0.1.0",
     "model_spec": {"kind": ..., "config": {...}, ...},
     "model_state": {<state_dict: parameters and the fitted standardisation buffers>},
     "metadata": {<caller's: time grid, approximant, provenance, ...>}}

A training checkpoint (any dict holding ``model_spec``, ``model_state`` and ``metadata``, without a
``format`` key) reads as a model file too.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gwinfer._version import __version__
from gwinfer.errors import GwinferError
from gwinfer.provenance import atomic_path

_PLAIN = (str, int, float, bool, type(None))


def checking() -> bool:
    """False while tracing/scripting/compiling for export (the checks are Python-side control flow)."""
    return not (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling())


def mlp(sizes: list[int], activation: type[nn.Module], dropout: float = 0.0) -> nn.Sequential:
    """Fully connected stack sizes[0] -> ... -> sizes[-1]; activation (+dropout) between, none at the end."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def check_plain(obj: Any, where: str) -> None:
    """Raise a one-line GwinferError unless ``obj`` is made only of tensors and plain Python values."""
    if type(obj) in _PLAIN or isinstance(obj, torch.Tensor):
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if type(k) not in (str, int):
                raise GwinferError(f"{where} has a key {k!r} of type {type(k).__name__}; use str or int keys")
            check_plain(v, f"{where}[{k!r}]")
        return
    raise GwinferError(
        f"{where} is a {type(obj).__module__}.{type(obj).__name__}; checkpoints and model files hold only tensors "
        "and plain values (dict, list, tuple, str, int, float, bool, None)"
    )


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


def read_payload(
    path: Path, file_format: str, what: str, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(spec, state, metadata) of the model file ``path`` of ``file_format`` (or a checkpoint of one).

    ``what`` names the file kind in the one-line errors ("model", "estimator"). The metadata gets
    ``"gwinfer_version"`` (of the writer) added if absent.
    """
    if not zipfile.is_zipfile(path):
        raise GwinferError(f"{path} is not a gwinfer {what} file (not a torch archive)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 (the unpickler raises many kinds on foreign bytes)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GwinferError(f"{path} is not a gwinfer {what} file (torch.load failed: {first[:200]})") from None
    if not isinstance(payload, dict) or not {"model_state", "model_spec"} <= set(payload):
        raise GwinferError(f'{path} is not a gwinfer {what} file (no "model_spec"/"model_state" entries)')
    if payload.get("format", file_format) != file_format:
        raise GwinferError(f"{path} is not a gwinfer {what} file (format {payload.get('format')!r})")
    spec, state = payload["model_spec"], payload["model_state"]
    metadata = payload.get("metadata") or {}
    if not isinstance(spec, dict) or not isinstance(state, dict) or not isinstance(metadata, dict):
        raise GwinferError(f"{path} is not a gwinfer {what} file (malformed spec, state or metadata)")
    metadata = dict(metadata)
    metadata.setdefault("gwinfer_version", payload.get("gwinfer_version", "unknown"))
    return spec, state, metadata


def load_state(model: nn.Module, state: dict[str, Any], path: Path) -> None:
    """Load ``state`` into ``model`` after checking names and shapes, with a one-line error on mismatch."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    what = f"{path}: state_dict does not match a {model.kind} model built from its spec"
    if missing or unexpected:
        raise GwinferError(
            f"{what} (missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})"
        )
    for k, v in expected.items():
        if not isinstance(state[k], Tensor) or tuple(state[k].shape) != tuple(v.shape):
            got = tuple(state[k].shape) if isinstance(state[k], Tensor) else type(state[k]).__name__
            raise GwinferError(f"{what} ({k} has shape {got}, expected {tuple(v.shape)})")
    model.load_state_dict(state, strict=True)
    model.eval()
