"""Training a posterior estimator (``maf``, ``nsf``, ``iaf``, ``cvae``, ...) from one YAML file.

Sections: ``data`` (:class:`PosteriorDataConfig`: the simulation file of ``gwinfer simulate``), ``model``
(a :func:`gwinfer.models.build_estimator` spec without shapes), ``train`` (:class:`TrainConfig`) and
optional ``init_from`` (a trained estimator file to fine-tune); see ``configs/train-gw5d-maf.yaml``. The
noise is drawn at train time (:class:`~gwinfer.data.strain_dataset.StrainDataset`, fresh every epoch) and
the run goes through the shared run layer (:mod:`gwinfer.training.run`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gwinfer.checks import positive_int
from gwinfer.config import Settings, from_dict, to_dict
from gwinfer.data.simulate import Simulation, read_simulation
from gwinfer.data.strain_dataset import StrainDataset, split_indices
from gwinfer.errors import GwinferError
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


@dataclass(frozen=True)
class PosteriorDataConfig:
    """``data:`` section of a posterior training YAML.

    simulation: file written by ``gwinfer simulate``. val_fraction: share held out for validation (fixed
    noise). noise_seed: seed of the training noise (validation uses noise_seed + 1). fit_samples:
    training examples fitting the standardisation (and, noise-free, an ``svd`` embedding's basis).
    limit: use only the first ``limit`` rows (None = all).
    """

    simulation: str = ""
    val_fraction: float = 0.05
    noise_seed: int = 0
    split_seed: int = 0
    fit_samples: int = 4096
    limit: int | None = None

    def __post_init__(self) -> None:
        if not self.simulation:
            raise GwinferError("data.simulation must name a simulation file (gwinfer simulate --out ...)")
        positive_int(self.fit_samples, "data.fit_samples", minimum=2)
        if self.limit is not None:
            positive_int(self.limit, "data.limit", minimum=2)


def training_datasets(data: PosteriorDataConfig) -> tuple[Simulation, StrainDataset, StrainDataset]:
    """(the simulation without its signal array, training set, validation set) of a ``data`` section.

    The sets copy their rows out of the file's signals, which are then released: the signals are held in
    memory once (3.3 GB for 200k two-detector 2 s signals), not twice.
    """
    from dataclasses import replace

    sim = read_simulation(data.simulation)
    n = len(sim) if data.limit is None else min(len(sim), data.limit)
    train_idx, val_idx = split_indices(n, data.val_fraction, data.split_seed)
    train_set = StrainDataset(sim, train_idx, seed=data.noise_seed)
    val_set = StrainDataset(sim, val_idx, seed=data.noise_seed + 1)
    light = replace(sim, signals=np.empty((0, *sim.signals.shape[1:]), dtype=np.float32))
    train_set.simulation = val_set.simulation = light
    return light, train_set, val_set


def fit_examples(train_set: StrainDataset, n_fit: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(theta, noisy x, noise-free signals) of ``n_fit`` evenly spread training rows: what
    ``fit_standardization`` is fitted on."""
    pick = even_sample(len(train_set), n_fit)
    theta, x = zip(*(train_set[i] for i in pick))
    return torch.stack(theta), torch.stack(x), train_set.signals[pick]


def data_metadata(sim: Simulation) -> dict[str, Any]:
    """What a posterior model file records about its training data (``gwinfer sample`` needs nothing else)."""
    return {
        "names": list(sim.names),
        "simulation": json.loads(sim.config.to_json()),
        "simulation_file": str(sim.path),
        "psd_sha256": str(sim.attrs.get("psd_sha256")),
        "prior_text": str(sim.attrs.get("prior_text")),
        "noise_std": 1.0,
    }


def initial_estimator(path: str | Path, spec: dict[str, Any], theta_dim: int, x_shape: tuple[int, ...]) -> Any:
    """The estimator of file ``path`` (weights and fitted standardisation) to fine-tune: its kind, config
    and shapes must be those the experiment's ``model`` section builds, else a one-line error."""
    from gwinfer.models import build_estimator, load_estimator

    try:
        model, _ = load_estimator(path)
    except GwinferError as err:
        raise GwinferError(f"init_from {path}: {err}") from None
    want = build_estimator(dict(spec), theta_dim=theta_dim, x_shape=x_shape).spec()
    if model.spec() != want:
        raise GwinferError(
            f"init_from {path}: its model ({model.spec()['kind']}, {model.spec()['config']}) is "
            f"not the experiment's ({want['kind']}, {want['config']})"
        )
    return model.train()


def train_posterior(
    source: Source,
    out_dir: str | Path,
    resume: bool = True,
    settings: Settings = (),
) -> Path:
    """Train the posterior experiment ``source`` into ``out_dir``; return the path of ``out_dir/model.pt``.

    ``settings`` override values of the config: ``["train.lr=2e-3"]`` (as ``--set``) or
    ``{"train": {"lr": 2e-3}}`` (see :func:`~gwinfer.training.run.load_sections`).

    ``model.pt`` is a :func:`gwinfer.models.save_estimator` file whose metadata holds the simulation config
    (``simulation``: fs, detectors, PSD, ...), the parameter ``names``, the data provenance and the training
    summary, so ``gwinfer sample`` / ``pp`` need nothing else.
    """
    from gwinfer.models import build_estimator, save_estimator

    raw = load_sections(source, ("data", "model"), ("train", "init_from"), "a posterior experiment", settings)
    if "bank" in raw["data"]:  # a frequency-domain event model (issue 15)
        from gwinfer.training.event import train_event_model

        return train_event_model(raw, source, out_dir, resume)
    data = from_dict(PosteriorDataConfig, raw["data"], "data")
    train_cfg = train_settings(raw)
    sim, train_set, val_set = training_datasets(data)
    init = raw.get("init_from")
    seed_everything(train_cfg.seed)
    if init:  # fine-tune: start from a trained file's weights and standardisation (fresh optimiser)
        model = initial_estimator(init, raw["model"], len(sim.names), train_set.x_shape)
    else:
        model = build_estimator(dict(raw["model"]), theta_dim=len(sim.names), x_shape=train_set.x_shape)
        with announced(fitting(min(len(train_set), data.fit_samples))):
            model.fit_standardization(*fit_examples(train_set, data.fit_samples))

    experiment = {
        "data": to_dict(data),
        "model": raw["model"],
        "train": to_dict(train_cfg),
        **({"init_from": str(init)} if init else {}),
    }
    metadata = {
        **data_metadata(sim),
        **run_metadata(
            "posterior-model",
            source,
            experiment,
            parents=[data.simulation, *([init] if init else [])],
            libraries=("torch", "numpy", "zuko"),
        ),
    }
    return fit_and_save(
        Run(
            model,
            train_set,
            val_set,
            train_cfg,
            metadata,
            lambda path: save_estimator(path, model.cpu(), metadata=metadata),
            "posterior model",
        ),
        out_dir,
        resume,
    )
