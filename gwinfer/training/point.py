"""Training a point estimator from one YAML file: which catalogue (``data``), which model (``model``), how (``train``).

::

    data:  {catalogue: catalogues/small, t_start: -10000, t_end: 130, dt: 2.0, in_memory: true}
    model: {kind: wavenet, config: {...}}
    train: {epochs: 30, batch_size: 64, optimizer: lamb, ...}

``train_point`` builds the datasets on the model's time grid, fits the model's standardisation on a
training sample, trains through the run layer (:mod:`gwinfer.training.run`: one process or torchrun/DDP), and writes
``OUT/model.pt`` from the best checkpoint with the time grid, approximant and provenance inside.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gwinfer.checks import positive_int
from gwinfer.config import Settings, from_dict, to_dict
from gwinfer.errors import GwinferError
from gwinfer.physics.timegrid import TimeGrid
from gwinfer.training.checkpoint import seed_everything
from gwinfer.training.run import (
    Run,
    Source,
    announced,
    even_sample,
    fit_and_save,
    fitting,
    load_sections,
    run_metadata,
    train_settings,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataConfig:
    """Where the training data come from and on which time grid (M) the model reads them.

    ``t_start``/``t_end``/``dt`` default to the catalogue's grid; ``catalogues`` adds more catalogues (other
    waveform codes, labelled by their manifests) whose splits are concatenated with the first one's;
    ``limit_train`` caps each catalogue's training set;
    ``fit_samples`` training examples fit the standardisation (and reduced bases).
    """

    catalogue: str = ""
    catalogues: tuple[str, ...] = ()  # more catalogues trained on together (e.g. other waveform codes)
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
        positive_int(self.fit_samples, "data.fit_samples", minimum=2)
        if self.limit_train is not None:
            positive_int(self.limit_train, "data.limit_train")

    def grid(self, catalogue_grid: TimeGrid) -> TimeGrid:
        return TimeGrid(
            catalogue_grid.t_start if self.t_start is None else self.t_start,
            catalogue_grid.t_end if self.t_end is None else self.t_end,
            catalogue_grid.dt if self.dt is None else self.dt,
        )


def catalogue_record(root: Path) -> dict[str, Any]:
    """What a model file records about one training catalogue: path, name, waveform code, manifest hash."""
    from gwinfer.data.store import read_manifest
    from gwinfer.provenance import sha256_file

    manifest = read_manifest(root) or {}
    manifest_path = root / "manifest.json"
    cfg = manifest.get("config") or {}
    return {
        "path": str(root),
        "box": {k: cfg.get(k) for k in ("q_min", "q_max", "spin_min", "spin_max")},
        "name": (manifest.get("config") or {}).get("name", root.name),
        "approximant": (manifest.get("backend") or {}).get("name", "unknown"),
        "manifest_sha256": sha256_file(manifest_path) if manifest_path.exists() else None,
    }


def training_domain(sources: list[dict[str, Any]]):
    """The smallest parameter box holding every training catalogue (the paper's box where unrecorded)."""
    from gwinfer.models import Domain

    boxes = [c["box"] for c in sources if None not in c["box"].values()]
    if not boxes:
        return Domain()
    return Domain(
        min(b["q_min"] for b in boxes),
        max(b["q_max"] for b in boxes),
        max(max(abs(b["spin_min"]), abs(b["spin_max"])) for b in boxes),
    )


def train_point(
    config_path: Source,
    out_dir: str | Path,
    resume: bool = True,
    settings: Settings = (),
) -> Path:
    """Train the point-estimator experiment ``config_path`` into ``out_dir``; return the path of ``model.pt``.

    ``settings`` override values of the config: ``["train.lr=2e-3"]`` (as ``--set``) or
    ``{"train": {"lr": 2e-3}}`` (see :func:`~gwinfer.training.run.load_sections`)."""
    import torch
    from torch.utils.data import ConcatDataset

    from gwinfer.data.loaders import CatalogueDataset
    from gwinfer.data.store import catalogue_grid
    from gwinfer.models import build_model, save_model

    raw = load_sections(config_path, ("data", "model"), ("train",), "a point-estimator experiment", settings)
    data = from_dict(DataConfig, raw["data"], "data")
    train_cfg = train_settings(raw)
    roots = [Path(c) for c in (data.catalogue, *data.catalogues)]
    grid = data.grid(catalogue_grid(roots[0], data.train_split))
    train_set = ConcatDataset(
        [
            CatalogueDataset(r, data.train_split, grid=grid, in_memory=data.in_memory, limit=data.limit_train)
            for r in roots
        ]
    )
    val_set = ConcatDataset([CatalogueDataset(r, data.val_split, grid=grid, in_memory=data.in_memory) for r in roots])
    seed_everything(train_cfg.seed)
    model = build_model(raw["model"], n_samples=grid.n)
    theta, x = zip(*(train_set[i] for i in even_sample(len(train_set), data.fit_samples)))
    with announced(fitting(len(theta))):
        model.fit_standardization(torch.stack(theta), torch.stack(x))

    sources = [catalogue_record(r) for r in roots]
    metadata = {
        "time_grid": grid.to_dict(),
        "approximant": sources[0]["approximant"],  # the code a prediction is regenerated with by default
        "approximants": [c["approximant"] for c in sources],
        "catalogue": sources[0],
        "catalogues": sources,
        "domain": training_domain(sources).to_dict(),
        **run_metadata(
            "model",
            config_path,
            {"data": to_dict(data), "model": raw["model"], "train": to_dict(train_cfg)},
            parents=[r / "manifest.json" for r in roots if (r / "manifest.json").exists()],
            libraries=("torch", "numpy"),
        ),
    }
    return fit_and_save(
        Run(
            model,
            train_set,
            val_set,
            train_cfg,
            metadata,
            lambda path: save_model(path, model.cpu(), metadata=metadata),
        ),
        out_dir,
        resume,
    )
