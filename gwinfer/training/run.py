"""The one run layer of every training task (point estimator, posterior estimator, distillation).

A task turns its sectioned YAML into a :class:`Run` (model, datasets, ``train`` settings, metadata and
how to write ``model.pt``); this module does the rest the same way for all of them:

* :func:`load_sections`: the YAML (or a dict) with the overriding ``settings`` merged in (``--set``
  strings or the equivalent ``{section: {key: value}}`` mapping) and its sections checked (unknown/missing
  ones, mappings);
* :func:`train_settings`: the ``train`` section as a validated :class:`TrainConfig`;
* the tasks call :func:`~gwinfer.training.checkpoint.seed_everything` BEFORE building the model, so two
  runs with one seed are equal;
* :func:`announced`: a long preparation step (the standardisation and an SVD basis, minutes on big
  fits) logged before it starts and with its duration after, so a run is never silent;
* :func:`even_sample`: the deterministic rows (same on every rank) that fit a model's standardisation;
* :func:`run_metadata`: the experiment, the command and the provenance recorded in ``model.pt``;
* :func:`fit_and_save`: the shared :class:`~gwinfer.training.trainer.Trainer` (one process or torchrun/DDP,
  resumable), ``model.pt`` from the best checkpoint, the process group closed, and an interrupted run
  reported as :class:`KeyboardInterrupt` (exit status 130) after the best model so far was written.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from gwinfer.config import Settings, deep_merge, from_dict, load_yaml, resolve_paths, settings_mapping
from gwinfer.errors import GwinferError
from gwinfer.provenance import provenance
from gwinfer.training import distributed as D
from gwinfer.training.config import TrainConfig
from gwinfer.training.trainer import Trainer

log = logging.getLogger(__name__)

Source = str | Path | dict[str, Any]
#: The settings of a training config that name files or folders (resolved against the config's folder).
PATH_KEYS = ("data.catalogue", "data.catalogues", "data.simulation", "data.bank", "init_from")


def load_sections(
    source: Source, required: Sequence[str], optional: Sequence[str], what: str, settings: Settings = ()
) -> dict[str, Any]:
    """The raw mapping of a sectioned YAML file (or a copy of a dict), with ``settings`` deep-merged in:
    the command line's ``--set`` strings (``["train.lr=2e-3"]``) or the same as a nested mapping
    (``{"train": {"lr": 2e-3}}``). Every ``required`` section present, no section outside
    ``required + optional``, and ``train`` (if given) a mapping; one-line errors."""
    if isinstance(source, dict):
        raw = copy.deepcopy(dict(source))
    else:  # paths in the file are relative to the file; those of --set to the working directory
        raw = resolve_paths(load_yaml(source), Path(source).resolve().parent, PATH_KEYS)
    raw = deep_merge(raw, settings_mapping(settings))
    accepted = [*required, *optional]
    unknown = sorted(set(raw) - set(accepted))
    missing = [s for s in required if s not in raw]
    if unknown or missing:
        raise GwinferError(
            f"{what} has sections {', '.join(accepted)}, of which {', '.join(required)} are "
            f"required (got {sorted(raw)})"
        )
    for key in ("train", "distill"):
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            raise GwinferError(f"the {key} section must be a mapping")
    return raw


def source_label(source: Source) -> str:
    """The config file's path, or ``<dict>`` for a config given as a mapping."""
    return "<dict>" if isinstance(source, dict) else str(source)


def train_settings(raw: dict[str, Any]) -> TrainConfig:
    """The ``train`` section of ``raw`` (settings already merged by :func:`load_sections`), validated."""
    return from_dict(TrainConfig, raw.get("train") or {}, "train")


@contextlib.contextmanager
def announced(what: str) -> Iterator[None]:
    """Log ``what`` before a long step and its duration [s] after it."""
    log.info("%s ...", what)
    t0 = time.perf_counter()
    yield
    log.info("%s: done in %.1f s", what, time.perf_counter() - t0)


def fitting(n: int) -> str:
    """The announcement of fitting a model's standardisation (and any SVD basis) on ``n`` examples."""
    return f"fitting the standardisation (and any SVD basis, float64) on {n} training examples"


def even_sample(n_total: int, n_fit: int) -> list[int]:
    """``min(n_fit, n_total)`` evenly spread row indices of a dataset of ``n_total`` rows (deterministic)."""
    n_fit = min(int(n_fit), int(n_total))
    return np.linspace(0, n_total - 1, n_fit).round().astype(int).tolist()


def run_metadata(
    kind: str,
    source: Source,
    experiment: dict[str, Any],
    parents: Sequence[str | Path],
    libraries: Sequence[str],
    **inputs: str,
) -> dict[str, Any]:
    """``experiment``, ``command`` and ``provenance`` entries of a model file's metadata.

    ``parents``: the files the model was made from (config, data, teacher, ...); ``inputs``: named inputs
    recorded in the provenance besides the config.
    """
    config_files = [] if isinstance(source, dict) else [source]
    return {
        "experiment": experiment,
        "command": " ".join(sys.argv),
        "provenance": provenance(
            kind,
            {"experiment": source_label(source), **inputs},
            parents=[*parents, *config_files],
            libraries=tuple(libraries),
        ),
    }


@dataclass
class Run:
    """Everything a task hands to :func:`fit_and_save`.

    ``save(path)`` writes ``model.pt`` from the trained model with ``metadata`` (the trainer adds the
    training summary to it first); ``what`` names the written model in the log.
    """

    model: nn.Module
    train_set: Any
    val_set: Any
    train: TrainConfig
    metadata: dict[str, Any]
    save: Callable[[Path], Any]
    what: str = "model"


def fit_and_save(run: Run, out_dir: str | Path, resume: bool = True) -> Path:
    """Train ``run`` into ``out_dir`` and write ``out_dir/model.pt``; return its path.

    Raises KeyboardInterrupt when the run was interrupted (the checkpoint and the best model so far are
    kept; the same command resumes it).
    """
    trainer = Trainer(run.model, run.train_set, run.val_set, run.train, out_dir, metadata=run.metadata)
    try:
        result, out = trainer.fit_and_save(run.save, run.metadata, resume=resume, what=run.what)
    finally:
        D.cleanup()
    if result["stopped"] == "interrupted":
        raise KeyboardInterrupt
    return out
