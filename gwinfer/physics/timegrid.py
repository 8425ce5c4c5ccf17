"""The uniform time grid of a catalogue or a model, in units of the total mass M (G = c = 1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from gwinfer.errors import GwinferError


@dataclass(frozen=True)
class TimeGrid:
    """Uniform grid ``t_k = t_start + k dt`` for ``k = 0 .. n - 1``, ``t_end`` included, times in M.

    The amplitude peak of |h22| sits at t = 0, so the grid must contain it: ``t_start < 0 < t_end``.
    """

    t_start: float = -10000.0
    t_end: float = 130.0
    dt: float = 1.0

    def __post_init__(self) -> None:
        for name in ("t_start", "t_end", "dt"):
            if not np.isfinite(getattr(self, name)):
                raise GwinferError(f"time grid {name} must be finite, got {getattr(self, name)!r}")
        if self.dt <= 0:
            raise GwinferError(f"time step dt = {self.dt} M must be > 0")
        if not self.t_start < 0 < self.t_end:
            raise GwinferError(
                f"time window [{self.t_start}, {self.t_end}] M must contain the peak: need t_start < 0 < t_end"
            )
        span = (self.t_end - self.t_start) / self.dt
        if abs(span - round(span)) > 1e-6 * max(1.0, span):
            raise GwinferError(
                f"time window [{self.t_start}, {self.t_end}] M is not a whole number of steps dt = {self.dt} M"
            )

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(round((self.t_end - self.t_start) / self.dt)) + 1

    def times(self) -> np.ndarray:
        """The sample times in M (float64)."""
        return self.t_start + self.dt * np.arange(self.n, dtype=np.float64)

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_times(cls, times: np.ndarray) -> "TimeGrid":
        """Recover the grid of a stored ``times`` array, refusing non-uniform spacing."""
        t = np.asarray(times, dtype=np.float64)
        if t.ndim != 1 or t.size < 2:
            raise GwinferError("times must be a 1-D array of at least 2 samples")
        dt = float(np.median(np.diff(t)))
        if np.max(np.abs(np.diff(t) - dt)) > 1e-6 * dt:
            raise GwinferError("times are not uniformly spaced")
        return cls(float(t[0]), float(t[-1]), round(dt, 12))

    def covers(self, other: "TimeGrid") -> bool:
        """True if this grid spans ``other``'s window at a step that divides ``other.dt``."""
        ratio = other.dt / self.dt
        return (
            self.t_start <= other.t_start + 1e-9
            and self.t_end >= other.t_end - 1e-9
            and abs(ratio - round(ratio)) < 1e-6
            and round(ratio) >= 1
        )
