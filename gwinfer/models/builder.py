"""Config -> model, and model files <-> models, for both families.

* point estimators: :func:`build_model`, :func:`save_model`, :func:`load_model` (format ``gwinfer-model``);
* posterior estimators: :func:`build_estimator`, :func:`save_estimator`, :func:`load_estimator`
  (format ``gwinfer-posterior``);
* :func:`resolve_model_path` (a shipped-model folder or a file) and :func:`is_posterior_file`.

The file layout and its checks are in :mod:`gwinfer.models.base`; the kinds in :mod:`gwinfer.models.registry`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gwinfer.config import from_dict
from gwinfer.errors import GwinferError
from gwinfer.models.base import file_payload, load_state, read_payload, write_payload
from gwinfer.models.point.base import PointEstimator
from gwinfer.models.posterior.base import FILE_FORMAT as POSTERIOR_FORMAT
from gwinfer.models.posterior.base import FORMAT_VERSION as POSTERIOR_FORMAT_VERSION
from gwinfer.models.posterior.base import PosteriorEstimator
from gwinfer.models.registry import POINT_ESTIMATORS, POSTERIOR_ESTIMATORS

FILE_FORMAT = "gwinfer-model"
FORMAT_VERSION = 1


def resolve_model_path(path: str | Path) -> Path:
    """``path`` itself, or ``path/model.pt`` for a shipped-model folder; one-line error if neither exists."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    if not p.is_file():
        raise GwinferError(f"model file {p} does not exist")
    return p


# --- point estimators -----------------------------------------------------------------------------------
def build_model(spec: dict[str, Any], n_samples: int) -> PointEstimator:
    """A fresh (unfitted) point model from ``spec = {"kind": ..., "config": {...}}`` for inputs of n_samples.

    Unknown kinds and unknown/ill-typed config keys raise a one-line GwinferError.
    """
    if not isinstance(spec, dict) or "kind" not in spec:
        raise GwinferError('model spec must be a mapping with a "kind" (and optional "config")')
    cls = POINT_ESTIMATORS.get_kind(spec["kind"])
    unknown = sorted(set(spec) - {"kind", "config", "n_samples"})
    if unknown:
        raise GwinferError(f"model spec: unknown key(s) {unknown}; accepted: ['config', 'kind', 'n_samples']")
    config = from_dict(cls.config_class, spec.get("config") or {}, where=f"model.{cls.kind}")
    return cls(config, n_samples=n_samples)


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
    grid = metadata.get("time_grid")
    if isinstance(grid, dict):
        from gwinfer.physics.timegrid import TimeGrid

        try:
            return TimeGrid(**{k: float(grid[k]) for k in ("t_start", "t_end", "dt")}).n
        except (KeyError, TypeError, ValueError):
            pass
    raise GwinferError(f"{where}: the model spec has no n_samples and the metadata no usable time_grid")


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[PointEstimator, dict[str, Any]]:
    """Load a point-model file, folder or trainer checkpoint; returns (model in eval mode, metadata)."""
    p = resolve_model_path(path)
    spec, state, metadata = read_payload(p, FILE_FORMAT, "model", map_location)
    model = build_model({k: v for k, v in spec.items() if k != "n_samples"}, _n_samples(spec, metadata, str(p)))
    load_state(model, state, p)
    return model, metadata


# --- posterior estimators -------------------------------------------------------------------------------
def estimator_kinds() -> dict[str, type[PosteriorEstimator]]:
    """``{kind: class}`` of every posterior estimator (imports every family)."""
    return dict(POSTERIOR_ESTIMATORS.items())


def spec_class(spec: Any, what: str = "posterior spec") -> type[PosteriorEstimator]:
    """The estimator class named by ``spec["kind"]``; one-line errors for a non-mapping or unknown kind."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise GwinferError(f'{what} must be a mapping with a "kind" (and optional "config")')
    return POSTERIOR_ESTIMATORS.get_kind(spec["kind"])


def _as_shape(s: Any) -> tuple[int, ...]:
    if isinstance(s, int) and not isinstance(s, bool):
        return (s,)
    if isinstance(s, (list, tuple)):
        return tuple(s)
    raise GwinferError(f"x_shape = {s!r} must be an integer or a list of integers")


def build_estimator(
    spec: dict[str, Any], theta_dim: int | None = None, x_shape: int | tuple[int, ...] | None = None
) -> PosteriorEstimator:
    """A fresh (unfitted) estimator from ``spec = {"kind", "config", "theta_dim", "x_shape"}``.

    ``theta_dim``/``x_shape`` arguments fill in (or must agree with) the spec's entries.
    """
    cls = spec_class(spec)
    unknown = sorted(set(spec) - {"kind", "config", "theta_dim", "x_shape"})
    if unknown:
        raise GwinferError(
            f"posterior spec: unknown key(s) {unknown}; accepted: ['config', 'kind', 'theta_dim', 'x_shape']"
        )
    d = spec.get("theta_dim", theta_dim)
    s = spec.get("x_shape", x_shape)
    if d is None or s is None:
        raise GwinferError("posterior spec: theta_dim and x_shape are needed (in the spec or as arguments)")
    if theta_dim is not None and theta_dim != d:
        raise GwinferError(f"posterior spec has theta_dim = {d} but {theta_dim} was requested")
    if x_shape is not None and list(_as_shape(x_shape)) != list(_as_shape(s)):
        raise GwinferError(
            f"posterior spec has x_shape = {list(_as_shape(s))} but {list(_as_shape(x_shape))} was requested"
        )
    config = from_dict(cls.config_class, spec.get("config") or {}, where=f"posterior.{cls.kind}")
    return cls(config, theta_dim=d, x_shape=_as_shape(s))


def estimator_payload(model: PosteriorEstimator, metadata: dict[str, Any]) -> dict[str, Any]:
    """The dict :func:`save_estimator` writes."""
    if not isinstance(model, PosteriorEstimator):
        raise GwinferError(f"cannot save a {type(model).__name__}: not a gwinfer posterior estimator")
    return file_payload(model, metadata, POSTERIOR_FORMAT, POSTERIOR_FORMAT_VERSION)


def save_estimator(path: str | Path, model: PosteriorEstimator, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (spec + state_dict, including fitted standardisation) and metadata atomically."""
    return write_payload(path, estimator_payload(model, dict(metadata or {})))


def load_estimator(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[PosteriorEstimator, dict[str, Any]]:
    """Load an estimator file, folder or trainer checkpoint; returns (estimator in eval mode, metadata)."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    if not p.is_file():
        raise GwinferError(f"estimator file {p} does not exist")
    spec, state, metadata = read_payload(p, POSTERIOR_FORMAT, "estimator", map_location)
    model = build_estimator(spec)
    load_state(model, state, p)
    return model, metadata


def is_posterior_file(path: str | Path) -> bool:
    """True for a posterior estimator file: format ``gwinfer-posterior``, or a file without a format
    (trainer checkpoint) whose model spec names a posterior kind."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 (load_model reports unreadable files)
        return False
    if not isinstance(payload, dict):
        return False
    if payload.get("format") is not None:
        return payload["format"] == POSTERIOR_FORMAT
    spec = payload.get("model_spec")
    return isinstance(spec, dict) and spec.get("kind") in POSTERIOR_ESTIMATORS
