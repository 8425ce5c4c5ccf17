"""Training data for posterior estimators: simulated whitened signals plus fresh Gaussian noise, and the
training entry point :func:`train_posterior`.

:class:`StrainDataset` loads a simulation file (:mod:`gwinfer.data.simulate`) into memory and yields
``(theta float32 (D,), x float32 (n_det, n_samples))`` with ``x = signal + noise_std * N(0, 1)``. The noise
of item ``i`` (its row in the FILE, whatever subset is used) in epoch ``e`` comes from
``numpy.random.default_rng((seed, e, i))``: a new realisation every epoch (the paper adds noise at train
time), yet identical for the same (seed, epoch, index) - reproducible runs and exact resumes.
``set_epoch(e)`` selects the epoch; a validation set never calls it and keeps fixed noise.

:func:`train_posterior` trains a posterior estimator (``maf``, ``nsf``, ``iaf``, ``cvae``, ...) with the
shared :class:`gwinfer.training.Trainer` from a YAML file with sections ``data`` (:class:`PosteriorDataConfig`),
``model`` (a :func:`gwinfer.models.posterior.build_estimator` spec without shapes) and ``train``
(:class:`gwinfer.training.TrainConfig`); see ``configs/train-gw5d-maf.yaml``. The shared trainer calls
``train_set.set_epoch(epoch)`` before every epoch.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from gwinfer.data.simulate import Simulation, read_simulation
from gwinfer.errors import GwinferError

log = logging.getLogger(__name__)


def noise_realisation(seed: int, epoch: int, row: int, shape: tuple[int, ...], std: float = 1.0) -> np.ndarray:
    """float32 N(0, std^2) noise of file row ``row`` in ``epoch``: ``default_rng((seed, epoch, row))``."""
    rng = np.random.default_rng((int(seed), int(epoch), int(row)))
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)


def injection_data(sim: Simulation, index: int, noise_seed: int = 0) -> tuple[np.ndarray, dict[str, float]]:
    """(x float32 (n_det, n_samples), every drawn parameter) of injection ``index``: its signal plus the
    noise ``StrainDataset(sim, seed=noise_seed)`` gives it in epoch 0 (so ``sample``, ``pp`` and
    ``reference`` with the same seed see the same data)."""
    params = sim.parameters_of(int(index))
    if sim.signals.ndim != 3:
        raise GwinferError(f"{sim.path}: the simulation was read without its signals")
    x = sim.signals[int(index)].astype(np.float32) + noise_realisation(noise_seed, 0, int(index),
                                                                        sim.signals.shape[1:])
    return x, params


class StrainDataset(Dataset):
    """``(theta, signal + noise)`` pairs of a simulation file (module docstring), in memory.

    ``source``: a simulation file path or a loaded :class:`~gwinfer.data.simulate.Simulation`.
    ``indices``: the file rows to use (default all). ``seed``: noise seed. ``noise_std``: 0 gives the
    noise-free signals.
    """

    def __init__(self, source: str | Path | Simulation, indices: np.ndarray | list[int] | None = None,
                 seed: int = 0, noise_std: float = 1.0) -> None:
        sim = source if isinstance(source, Simulation) else read_simulation(source)
        if sim.signals.ndim != 3:
            raise GwinferError(f"{sim.path}: the simulation was read without its signals")
        n = len(sim)
        idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
            raise GwinferError(f"dataset indices must be a non-empty subset of [0, {n - 1}]")
        if not (noise_std >= 0 and np.isfinite(noise_std)):
            raise GwinferError(f"noise_std = {noise_std} must be a finite number >= 0")
        self.simulation = sim
        self.names = sim.names
        self.indices = idx
        self.theta = torch.from_numpy(np.ascontiguousarray(sim.theta[idx], dtype=np.float32))
        self.signals = torch.from_numpy(np.ascontiguousarray(sim.signals[idx], dtype=np.float32))
        self.seed, self.noise_std, self.epoch = int(seed), float(noise_std), 0

    def __len__(self) -> int:
        return int(self.indices.size)

    @property
    def x_shape(self) -> tuple[int, int]:
        return tuple(self.signals.shape[1:])  # type: ignore[return-value]

    def set_epoch(self, epoch: int) -> None:
        """Use the noise realisations of ``epoch`` from now on."""
        self.epoch = int(epoch)

    def noise(self, i: int, epoch: int | None = None) -> np.ndarray:
        """The float32 noise added to item ``i`` in ``epoch`` (default: the current one)."""
        e = self.epoch if epoch is None else int(epoch)
        return noise_realisation(self.seed, e, int(self.indices[i]), self.x_shape, self.noise_std)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        i %= len(self)
        x = self.signals[i]
        if self.noise_std > 0:
            x = x + torch.from_numpy(self.noise(i))
        return self.theta[i], x


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) row indices: a seeded permutation, the last ``round(val_fraction * n)`` (>= 1) for validation."""
    if not 0.0 < val_fraction < 1.0:
        raise GwinferError(f"val_fraction = {val_fraction} must lie in (0, 1)")
    n_val = max(1, int(round(val_fraction * n)))
    if n - n_val < 1:
        raise GwinferError(f"{n} signals cannot be split into training and validation sets")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n - n_val]), np.sort(perm[n - n_val:])


# ------------------------------------------------------------------------------------------- training
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
        if self.fit_samples < 2:
            raise GwinferError(f"data.fit_samples = {self.fit_samples} must be >= 2")
        if self.limit is not None and self.limit < 2:
            raise GwinferError(f"data.limit = {self.limit} must be >= 2")


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
    n_fit = min(int(n_fit), len(train_set))
    pick = np.linspace(0, len(train_set) - 1, n_fit).round().astype(int)
    theta, x = zip(*(train_set[int(i)] for i in pick))
    return torch.stack(theta), torch.stack(x), train_set.signals[pick]


def load_posterior_experiment(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """The raw ``{data, model, train}`` mapping of a posterior training YAML (or a dict)."""
    from gwinfer.config import load_yaml

    raw = dict(source) if isinstance(source, dict) else load_yaml(source)
    unknown = sorted(set(raw) - {"data", "model", "train", "init_from"})
    if unknown or "model" not in raw or "data" not in raw:
        raise GwinferError(f"a posterior experiment has sections data, model, train and optional init_from "
                           f"(got {sorted(raw)})")
    return raw


def initial_estimator(path: str | Path, spec: dict[str, Any], theta_dim: int, x_shape: tuple[int, ...]) -> Any:
    """The estimator of file ``path`` (weights and fitted standardisation) to fine-tune: its kind, config
    and shapes must be those the experiment's ``model`` section builds, else a one-line error."""
    from gwinfer.models.builder import build_estimator, load_estimator

    try:
        model, _ = load_estimator(path)
    except GwinferError as err:
        raise GwinferError(f"init_from {path}: {err}") from None
    want = build_estimator(dict(spec), theta_dim=theta_dim, x_shape=x_shape).spec()
    if model.spec() != want:
        raise GwinferError(f"init_from {path}: its model ({model.spec()['kind']}, {model.spec()['config']}) is "
                           f"not the experiment's ({want['kind']}, {want['config']})")
    return model.train()


def train_posterior(source: str | Path | dict[str, Any], out_dir: str | Path, resume: bool = True,
                    overrides: dict[str, Any] | None = None) -> Path:
    """Train the posterior experiment ``source`` into ``out_dir``; return the path of ``out_dir/model.pt``.

    ``model.pt`` is a :func:`gwinfer.models.posterior.save_estimator` file whose metadata holds the
    simulation config (``simulation``: fs, detectors, PSD, ...), the parameter ``names``, the data
    provenance and the training summary, so ``gwinfer sample`` / ``pp`` need nothing else.
    """
    from gwinfer.config import from_dict, to_dict
    from gwinfer.models.builder import build_estimator, save_estimator
    from gwinfer.provenance import provenance
    from gwinfer.training import Trainer, TrainConfig

    raw = load_posterior_experiment(source)
    data = from_dict(PosteriorDataConfig, raw["data"], "data")
    train_cfg = from_dict(TrainConfig, {**(raw.get("train") or {}), **(overrides or {})}, "train")
    sim, train_set, val_set = training_datasets(data)
    init = raw.get("init_from")
    if init:  # fine-tune: start from a trained file's weights and standardisation (fresh optimiser)
        model = initial_estimator(init, raw["model"], len(sim.names), train_set.x_shape)
    else:
        model = build_estimator(dict(raw["model"]), theta_dim=len(sim.names), x_shape=train_set.x_shape)
        model.fit_standardization(*fit_examples(train_set, data.fit_samples))

    config_label = str(source) if not isinstance(source, dict) else "<dict>"
    metadata: dict[str, Any] = {
        "names": list(sim.names),
        "simulation": json.loads(sim.config.to_json()),
        "simulation_file": str(sim.path),
        "psd_sha256": str(sim.attrs.get("psd_sha256")),
        "prior_text": str(sim.attrs.get("prior_text")),
        "noise_std": 1.0,
        "experiment": {"data": to_dict(data), "model": raw["model"], "train": to_dict(train_cfg),
                       **({"init_from": str(init)} if init else {})},
        "command": " ".join(sys.argv),
        "provenance": provenance("posterior-model", {"experiment": config_label},
                                 parents=[data.simulation] + ([source] if not isinstance(source, dict) else [])
                                 + ([init] if init else []),
                                 libraries=("torch", "numpy", "zuko")),
    }
    trainer = Trainer(model, train_set, val_set, train_cfg, out_dir, metadata=metadata)
    result, out = trainer.fit_and_save(lambda path: save_estimator(path, model.cpu(), metadata=metadata), metadata,
                                       resume=resume, what="posterior model")
    if result["stopped"] == "interrupted":
        raise KeyboardInterrupt
    return out


def simulation_config_of(metadata: dict[str, Any]) -> Any:
    """The :class:`~gwinfer.data.simulate.SimulationConfig` stored in a posterior model's metadata."""
    from gwinfer.data.simulate import SimulationConfig

    if "simulation" not in metadata:
        raise GwinferError("the model's metadata has no 'simulation' entry: it was not trained by train_posterior")
    return SimulationConfig.from_json(json.dumps(metadata["simulation"]))


__all__ = ["PosteriorDataConfig", "StrainDataset", "fit_examples", "injection_data", "noise_realisation",
           "simulation_config_of", "split_indices", "train_posterior", "training_datasets"]
