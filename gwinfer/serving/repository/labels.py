"""Production and development versions of a served model: ``labels.json``.

Labels live in one small JSON file per model, next to its ``config.pbtxt``::

    REPO/<name>/labels.json      {"production": 2, "development": 3, "updated": "2026-11-23T10:00:00+00:00"}

* ``production`` (required): the version that answers requests without an explicit version.
* ``development`` (optional, != production): a candidate; ``gwinfer serve`` mirrors production requests
  to it after answering them and compares the outputs (:mod:`gwinfer.serving.server.shadow`).
* ``updated``: when the file was written (informational).

The file is written atomically (temporary file + rename, :func:`write_labels`) and validated on every
read and write: an object with exactly these keys, versions integers >= 1 that exist as version folders.
Real Triton ignores ``labels.json``; for Triton, what production is comes from ``config.pbtxt``'s
``version_policy`` (:func:`gwinfer.serving.repository.config.set_version_policy`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gwinfer.errors import GwinferError
from gwinfer.provenance import atomic_path
from gwinfer.serving.repository.layout import list_versions

LABELS_FILE = "labels.json"
LABEL_KEYS = ("production", "development", "updated")
STAGES = ("production", "development")


@dataclass(frozen=True)
class Labels:
    """The labels of one model: production version, optional development version."""

    production: int
    development: int | None = None
    updated: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"production": self.production}
        if self.development is not None:
            out["development"] = self.development
        if self.updated is not None:
            out["updated"] = self.updated
        return out

    def as_strings(self) -> dict[str, str]:
        """{"production": "2", "development": "3"} (KServe v2 writes versions as strings)."""
        out = {"production": str(self.production)}
        if self.development is not None:
            out["development"] = str(self.development)
        return out

    def label_of(self, version: int) -> str | None:
        return "production" if version == self.production else "development" if version == self.development else None


def _version_number(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GwinferError(f"{where}: {key!r} must be a version number (an integer >= 1), got {value!r}")
    return value


def parse_labels(data: Any, where: str = LABELS_FILE) -> Labels:
    """Labels of a decoded labels.json; one-line error naming what is wrong."""
    if not isinstance(data, dict):
        raise GwinferError(f'{where}: must be a JSON object like {{"production": 1, "development": 2}}')
    unknown = sorted(set(data) - set(LABEL_KEYS))
    if unknown:
        raise GwinferError(f"{where}: unknown key(s) {unknown}; allowed: {list(LABEL_KEYS)}")
    if "production" not in data:
        raise GwinferError(f"{where}: no 'production' version")
    production = _version_number(data["production"], "production", where)
    development = data.get("development")
    if development is not None:
        development = _version_number(development, "development", where)
        if development == production:
            raise GwinferError(f"{where}: development and production are both version {production}")
    updated = data.get("updated")
    if updated is not None and not isinstance(updated, str):
        raise GwinferError(f"{where}: 'updated' must be a string")
    return Labels(production, development, updated)


def check_labels(labels: Labels, versions: Any, where: str = LABELS_FILE) -> Labels:
    """``labels`` if each labelled version is in ``versions``; else a one-line error."""
    available = sorted(versions)
    for stage in STAGES:
        v = getattr(labels, stage)
        if v is not None and v not in available:
            raise GwinferError(f"{where}: {stage} version {v} does not exist; versions: {available}")
    return labels


def read_labels(model_dir: str | Path, check_versions: bool = True) -> Labels | None:
    """The labels of a model folder (None without a labels.json), validated against its version folders."""
    p = Path(model_dir) / LABELS_FILE
    try:
        text = p.read_text()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise GwinferError(f"cannot read {p}: {err.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise GwinferError(f"{p} is not valid JSON ({err.msg} at line {err.lineno})") from None
    labels = parse_labels(data, str(p))
    return check_labels(labels, list_versions(model_dir), str(p)) if check_versions else labels


def write_labels(model_dir: str | Path, labels: Labels) -> Path:
    """Validate ``labels`` against the version folders and write labels.json atomically."""
    p = Path(model_dir) / LABELS_FILE
    check_labels(parse_labels(labels.to_json(), str(p)), list_versions(model_dir), str(p))
    with atomic_path(p) as tmp:
        tmp.write_text(json.dumps(labels.to_json(), indent=2) + "\n")
    return p
