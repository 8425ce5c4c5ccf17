"""Training data for posterior estimators: simulated whitened signals plus fresh Gaussian noise.

:class:`StrainDataset` loads a simulation file (:mod:`gwinfer.data.simulate`) into memory and yields
``(theta float32 (D,), x float32 (n_det, n_samples))`` with ``x = signal + noise_std * N(0, 1)``. The noise
of item ``i`` (its row in the FILE, whatever subset is used) in epoch ``e`` comes from
``numpy.random.default_rng((seed, e, i))``: a new realisation every epoch (the paper adds noise at train
time), yet identical for the same (seed, epoch, index) - reproducible runs and exact resumes.
``set_epoch(e)`` selects the epoch; a validation set never calls it and keeps fixed noise.

Posterior training itself (:func:`gwinfer.training.posterior.train_posterior`) lives in the training layer.
"""

from __future__ import annotations

import json
import logging
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
    x = sim.signals[int(index)].astype(np.float32) + noise_realisation(noise_seed, 0, int(index), sim.signals.shape[1:])
    return x, params


class StrainDataset(Dataset):
    """``(theta, signal + noise)`` pairs of a simulation file (module docstring), in memory.

    ``source``: a simulation file path or a loaded :class:`~gwinfer.data.simulate.Simulation`.
    ``indices``: the file rows to use (default all). ``seed``: noise seed. ``noise_std``: 0 gives the
    noise-free signals.
    """

    def __init__(
        self,
        source: str | Path | Simulation,
        indices: np.ndarray | list[int] | None = None,
        seed: int = 0,
        noise_std: float = 1.0,
    ) -> None:
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
    return np.sort(perm[: n - n_val]), np.sort(perm[n - n_val :])


def simulation_config_of(metadata: dict[str, Any]) -> Any:
    """The :class:`~gwinfer.data.simulate.SimulationConfig` stored in a posterior model's metadata."""
    from gwinfer.data.simulate import SimulationConfig

    if "simulation" not in metadata:
        raise GwinferError(
            "the model's metadata has no 'simulation' entry: it was not trained by gwinfer train-posterior"
        )
    return SimulationConfig.from_json(json.dumps(metadata["simulation"]))


__all__ = ["StrainDataset", "injection_data", "noise_realisation", "simulation_config_of", "split_indices"]
