"""Catalogue design: the paper's (q, s1z, s2z) grid, its midpoint validation/test sets, or uniform draws.

Khan, Huerta & Das train on q in [1, 8] in steps dq and s1z, s2z in [-0.8, 0.8] in steps ds, and
validate/test on the intermediate values, alternately assigned to validation and test, so no
validation or test point lies on the training grid. With ``eval_stride`` the midpoint grid can be
thinned per axis (the ``paper`` preset uses (1, 2, 2): ~195k test points, as the paper's ~197k).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.physics.timegrid import TimeGrid

SPLITS = ("train", "val", "test")
COLUMNS = ("q", "s1z", "s2z")


@dataclass(frozen=True)
class CatalogueConfig:
    """Everything that defines a catalogue; stored verbatim in its manifest.

    Times are in M; ``q = m1/m2 >= 1``; spins are the aligned components s1z, s2z.
    ``mode = "grid"`` is the paper's design; ``mode = "random"`` draws ``n_random`` = (train, val, test)
    points uniformly in the box with ``seed`` (off-grid test sets).
    """

    name: str = "catalogue"
    backend: str = "IMRPhenomT"
    t_start: float = -10000.0
    t_end: float = 130.0
    dt: float = 2.0
    q_min: float = 1.0
    q_max: float = 8.0
    dq: float = 1.0
    spin_min: float = -0.8
    spin_max: float = 0.8
    ds: float = 0.4
    eval_stride: tuple[int, ...] = (1, 1, 1)
    mode: str = "grid"
    n_random: tuple[int, ...] = (0, 0, 1000)
    seed: int = 0
    shard_size: int = 1000
    total_mass: float = 20.0
    max_generation_dt: float = 0.5

    def __post_init__(self) -> None:
        TimeGrid(self.t_start, self.t_end, self.dt)  # validates the window
        if self.mode not in ("grid", "random"):
            raise GwinferError(f"mode = {self.mode!r}; accepted: 'grid', 'random'")
        if self.dq <= 0 or self.ds <= 0:
            raise GwinferError(f"grid steps must be > 0, got dq = {self.dq}, ds = {self.ds}")
        if not 1.0 <= self.q_min < self.q_max:
            raise GwinferError(f"q range [{self.q_min}, {self.q_max}] must satisfy 1 <= q_min < q_max")
        if not -1.0 <= self.spin_min < self.spin_max <= 1.0:
            raise GwinferError(f"spin range [{self.spin_min}, {self.spin_max}] must lie in [-1, 1] with min < max")
        if len(self.eval_stride) != 3 or min(self.eval_stride) < 1:
            raise GwinferError(f"eval_stride = {list(self.eval_stride)} must be 3 integers >= 1 (q, s1z, s2z)")
        if len(self.n_random) != 3 or min(self.n_random) < 0:
            raise GwinferError(f"n_random = {list(self.n_random)} must be 3 counts >= 0 (train, val, test)")
        if self.shard_size < 1:
            raise GwinferError(f"shard_size = {self.shard_size} must be >= 1")
        if self.total_mass <= 0 or self.max_generation_dt <= 0:
            raise GwinferError("total_mass and max_generation_dt must be > 0")

    @property
    def grid(self) -> TimeGrid:
        return TimeGrid(self.t_start, self.t_end, self.dt)


def axis(low: float, high: float, step: float) -> np.ndarray:
    """``low, low + step, ...`` up to ``high`` (included when it falls on the grid, to 1e-9)."""
    n = int(np.floor((high - low) / step + 1e-9)) + 1
    return low + step * np.arange(n)


def _product(*axes: np.ndarray) -> np.ndarray:
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def training_grid(cfg: CatalogueConfig) -> np.ndarray:
    """(N, 3) training points (q, s1z, s2z) on the regular grid, lexicographic order."""
    q = axis(cfg.q_min, cfg.q_max, cfg.dq)
    s = axis(cfg.spin_min, cfg.spin_max, cfg.ds)
    return _product(q, s, s)


def midpoint_grid(cfg: CatalogueConfig) -> np.ndarray:
    """(N, 3) midpoints between neighbouring training values, thinned by ``eval_stride``."""
    q = axis(cfg.q_min, cfg.q_max, cfg.dq)
    s = axis(cfg.spin_min, cfg.spin_max, cfg.ds)
    if q.size < 2 or s.size < 2:
        raise GwinferError("the grid needs at least 2 values per axis to have midpoints: lower dq or ds")
    qm = (q[:-1] + cfg.dq / 2)[:: cfg.eval_stride[0]]
    s1m = (s[:-1] + cfg.ds / 2)[:: cfg.eval_stride[1]]
    s2m = (s[:-1] + cfg.ds / 2)[:: cfg.eval_stride[2]]
    return _product(qm, s1m, s2m)


def split_parameters(cfg: CatalogueConfig) -> dict[str, np.ndarray]:
    """The (N, 3) float64 parameters of every split, deterministic for a given config."""
    if cfg.mode == "grid":
        mid = midpoint_grid(cfg)
        return {"train": training_grid(cfg), "val": mid[0::2], "test": mid[1::2]}
    rng = np.random.default_rng(cfg.seed)
    out = {}
    for split, n in zip(SPLITS, cfg.n_random):
        q = rng.uniform(cfg.q_min, cfg.q_max, n)
        s = rng.uniform(cfg.spin_min, cfg.spin_max, (n, 2))
        out[split] = np.column_stack([q, s])
    return out


def on_training_grid(cfg: CatalogueConfig, params: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Boolean mask: which rows of ``params`` lie on the training grid (every coordinate on its axis)."""
    p = np.asarray(params, dtype=float)

    def on_axis(x: np.ndarray, low: float, high: float, step: float) -> np.ndarray:
        k = np.round((x - low) / step)
        return (np.abs(x - (low + k * step)) < tol) & (k >= 0) & (low + k * step <= high + tol)

    return (
        on_axis(p[:, 0], cfg.q_min, cfg.q_max, cfg.dq)
        & on_axis(p[:, 1], cfg.spin_min, cfg.spin_max, cfg.ds)
        & on_axis(p[:, 2], cfg.spin_min, cfg.spin_max, cfg.ds)
    )
