"""Reading catalogues: whole splits as arrays (evaluation) or a torch Dataset that streams from disk.

Both accept a *target* time grid (a model's): the catalogue's grid is cropped to the target window and
decimated to its step, which must be a whole multiple of the catalogue's step and aligned with it;
otherwise the catalogue is refused with a one-line error. Decimation takes every k-th sample without a
filter: h22 is band-limited (the ringdown of this parameter box stays below 0.25 / M), so any step
<= 2 M loses nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from gwinfer.data.store import Shard, catalogue_grid, read_rows, split_shards
from gwinfer.errors import GwinferError
from gwinfer.physics.timegrid import TimeGrid


def grid_slice(source: TimeGrid, target: TimeGrid) -> slice:
    """Index slice of ``source`` samples that gives ``target``'s samples (crop + decimate)."""
    if not source.covers(target):
        raise GwinferError(
            f"catalogue grid [{source.t_start}, {source.t_end}] M at dt = {source.dt} M cannot provide the "
            f"model's grid [{target.t_start}, {target.t_end}] M at dt = {target.dt} M (needs a covering window "
            "and a step that divides the model's)"
        )
    step = int(round(target.dt / source.dt))
    start = int(round((target.t_start - source.t_start) / source.dt))
    if abs(source.t_start + start * source.dt - target.t_start) > 1e-6 * source.dt:
        raise GwinferError(f"catalogue samples are not aligned with the model's grid start {target.t_start} M")
    return slice(start, start + step * (target.n - 1) + 1, step)


def _check_finite(h: np.ndarray, where: str) -> None:
    if h.size == 0:
        raise GwinferError(f"{where}: empty waveform")
    if not np.all(np.isfinite(h.view(np.float32) if h.dtype == np.complex64 else h)):
        raise GwinferError(f"{where}: waveform contains NaN or inf")


def load_split(
    root: str | Path, split: str, grid: TimeGrid | None = None, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, TimeGrid]:
    """All of ``split`` in memory: params (N, 3) float64 [q, s1z, s2z], h22 (N, T) complex64, and its grid."""
    root = Path(root)
    source = catalogue_grid(root, split)
    target = grid or source
    sl = grid_slice(source, target)
    params, waves, n = [], [], 0
    for path in split_shards(root, split):
        Shard.open(path)
        p, h = read_rows(path, None if limit is None else limit - n, sl)
        params.append(p)
        waves.append(h)
        _check_finite(waves[-1], str(path))
        n += len(p)
        if limit is not None and n >= limit:
            break
    return np.concatenate(params), np.concatenate(waves), target


class CatalogueDataset:
    """A torch ``Dataset`` over one split: items ``(theta, x)``.

    ``theta`` is float32 (3,) = (q, s1z, s2z); ``x`` is float32 (2, T) = (Re h22, Im h22) on ``grid``.
    By default every item is read from disk when asked for (the paper's catalogue is ~1.5 TB); with
    ``in_memory=True`` the split is loaded once (fast training on small catalogues). Safe with
    DataLoader workers: each process opens its own file handles.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        grid: TimeGrid | None = None,
        in_memory: bool = False,
        limit: int | None = None,
    ) -> None:
        self.root, self.split = Path(root), split
        self.source_grid = catalogue_grid(self.root, split)
        self.grid = grid or self.source_grid
        self._slice = grid_slice(self.source_grid, self.grid)
        self._paths = split_shards(self.root, split)
        counts = [Shard.open(p).count for p in self._paths]
        self._offsets = np.concatenate([[0], np.cumsum(counts)])
        self._len = int(self._offsets[-1]) if limit is None else min(int(self._offsets[-1]), limit)
        self._files: dict[int, h5py.File] = {}
        self._pid = os.getpid()
        self._memory = None
        if in_memory:
            params, h22, _ = load_split(self.root, split, self.grid, limit=self._len)
            self._memory = (params.astype(np.float32), np.stack([h22.real, h22.imag], axis=1).astype(np.float32))

    def __len__(self) -> int:
        return self._len

    def _file(self, k: int) -> h5py.File:
        if os.getpid() != self._pid:  # forked into a DataLoader worker: don't share HDF5 handles
            self._files, self._pid = {}, os.getpid()
        if k not in self._files:
            self._files[k] = h5py.File(self._paths[k], "r")
        return self._files[k]

    def params(self) -> np.ndarray:
        """(N, 3) float64 parameters of the split, without reading any waveform."""
        out = []
        for k in range(len(self._paths)):
            out.append(self._file(k)["params"][:])
        return np.concatenate(out)[: self._len]

    def __getitem__(self, i: int):
        import torch

        if not 0 <= i < self._len:
            raise IndexError(i)
        if self._memory is not None:
            return torch.from_numpy(self._memory[0][i]), torch.from_numpy(self._memory[1][i])
        k = int(np.searchsorted(self._offsets, i, side="right") - 1)
        f = self._file(k)
        row = i - int(self._offsets[k])
        try:
            h = f["h22"][row, self._slice]
        except OSError as err:
            raise GwinferError(
                f"shard {self._paths[k]} is damaged at row {row} ({str(err).splitlines()[0][:120]}): "
                "`gwinfer validate` the catalogue"
            ) from None
        _check_finite(h, f"{self._paths[k]} row {row}")
        theta = f["params"][row].astype(np.float32)
        x = np.stack([h.real, h.imag]).astype(np.float32)
        return torch.from_numpy(theta), torch.from_numpy(x)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_files"] = {}
        return state
