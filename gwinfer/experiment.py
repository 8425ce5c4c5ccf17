"""A training run from one YAML file: which catalogue (``data``), which model (``model``), how (``train``).

::

    data:  {catalogue: catalogues/small, t_start: -10000, t_end: 130, dt: 2.0, in_memory: true}
    model: {kind: wavenet, config: {...}}
    train: {epochs: 30, batch_size: 64, optimizer: lamb, ...}

``run_experiment`` builds the datasets on the model's time grid, fits the model's standardisation on a
training sample, trains with :class:`gwinfer.training.Trainer` (one process or torchrun/DDP), and writes
``OUT/model.pt`` from the best checkpoint with the time grid, approximant and provenance inside.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gwinfer.config import from_dict, load_yaml, to_dict
from gwinfer.errors import GwinferError
from gwinfer.physics.timegrid import TimeGrid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataConfig:
    """Where the training data come from and on which time grid (M) the model reads them.

    ``t_start``/``t_end``/``dt`` default to the catalogue's grid; ``limit_train`` caps the training set;
    ``fit_samples`` training examples fit the standardisation (and reduced bases).
    """

    catalogue: str = ""
    train_split: str = "train"
    val_split: str = "val"
    t_start: float | None = None
    t_end: float | None = None
    dt: float | None = None
    in_memory: bool = True
    limit_train: int | None = None
    fit_samples: int = 4096

    def __post_init__(self) -> None:
        if not self.catalogue:
            raise GwinferError("data.catalogue must name a catalogue folder")
        if self.fit_samples < 2:
            raise GwinferError(f"data.fit_samples = {self.fit_samples} must be >= 2")

    def grid(self, catalogue_grid: TimeGrid) -> TimeGrid:
        return TimeGrid(
            catalogue_grid.t_start if self.t_start is None else self.t_start,
            catalogue_grid.t_end if self.t_end is None else self.t_end,
            catalogue_grid.dt if self.dt is None else self.dt,
        )


def load_experiment(path: str | Path) -> dict[str, Any]:
    raw = load_yaml(path)
    unknown = sorted(set(raw) - {"data", "model", "train"})
    if unknown or "model" not in raw or "data" not in raw:
        raise GwinferError(f"{path}: an experiment has sections data, model, train (got {sorted(raw)})")
    return raw


def run_experiment(config_path: str | Path, out_dir: str | Path, resume: bool = True,
                   overrides: dict[str, Any] | None = None) -> Path:
    """Train the experiment of ``config_path`` into ``out_dir``; return the path of the exported model."""
    import torch

    from gwinfer.data.loaders import CatalogueDataset
    from gwinfer.data.store import catalogue_grid, read_manifest
    from gwinfer.models.builder import build_model, save_model
    from gwinfer.provenance import provenance, sha256_file
    from gwinfer.training import Trainer, TrainConfig
    from gwinfer.training import distributed as D

    raw = load_experiment(config_path)
    data = from_dict(DataConfig, raw["data"], "data")
    train_cfg = from_dict(TrainConfig, {**(raw.get("train") or {}), **(overrides or {})}, "train")
    root = Path(data.catalogue)
    grid = data.grid(catalogue_grid(root, data.train_split))
    train_set = CatalogueDataset(root, data.train_split, grid=grid, in_memory=data.in_memory, limit=data.limit_train)
    val_set = CatalogueDataset(root, data.val_split, grid=grid, in_memory=data.in_memory)
    model = build_model(raw["model"], n_samples=grid.n)

    # fit standardisation on a deterministic sample of the training set (identical on every rank)
    n_fit = min(data.fit_samples, len(train_set))
    idx = torch.linspace(0, len(train_set) - 1, n_fit).long().tolist()
    theta, x = zip(*(train_set[i] for i in idx))
    model.fit_standardization(torch.stack(theta), torch.stack(x))

    manifest = read_manifest(root) or {}
    manifest_path = root / "manifest.json"
    metadata = {
        "time_grid": grid.to_dict(),
        "approximant": (manifest.get("backend") or {}).get("name", "unknown"),
        "catalogue": {"path": str(root), "name": (manifest.get("config") or {}).get("name", root.name),
                      "manifest_sha256": sha256_file(manifest_path) if manifest_path.exists() else None},
        "experiment": {"data": to_dict(data), "model": raw["model"], "train": to_dict(train_cfg)},
        "command": " ".join(sys.argv),
        "provenance": provenance("model", {"experiment": str(config_path)}, parents=[config_path, manifest_path]
                                 if manifest_path.exists() else [config_path], libraries=("torch", "numpy")),
    }
    trainer = Trainer(model, train_set, val_set, train_cfg, out_dir, metadata=metadata)
    result, out = trainer.fit_and_save(lambda path: save_model(path, model.cpu(), metadata=metadata), metadata,
                                       resume=resume)
    D.cleanup()
    if result["stopped"] == "interrupted":
        # the best model so far was exported; the caller learns the run is unfinished (exit status 130)
        raise KeyboardInterrupt
    return out
