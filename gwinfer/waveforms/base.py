"""One interface for every waveform backend: the complex (2,2) mode h22(t) in geometric units.

Conventions (all backends)
--------------------------
* ``h22 = h+ - i hx`` restricted to the l = |m| = 2, m = +2 mode amplitude, i.e. the coefficient of
  the spin-weighted spherical harmonic -2Y22 (LIGO/LAL convention ``h+ - i hx = sum_lm h_lm -2Y_lm``).
* Geometric units G = c = M = 1: time in units of the total mass M, strain scaled by D / M (so the
  result does not depend on the total mass or distance used to call the underlying code).
* |h22| peaks at t = 0 (located to sub-sample precision), and the constant phase is fixed so that
  h22(0) is real and positive. Binary parameters are (q, s1z, s2z) with q = m1/m2 >= 1.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from gwinfer.errors import GwinferError
from gwinfer.physics.timegrid import TimeGrid


def check_approximant(backend: str, approximant: str) -> None:
    """One-line error when a single-approximant backend is built under another name."""
    if approximant != backend:
        raise GwinferError(f"the {backend} backend generates {backend} only, not {approximant!r}")


@dataclass(frozen=True)
class ValidityRange:
    """The parameter box a backend accepts: q = m1/m2 and the aligned spin components."""

    q_min: float
    q_max: float
    spin_max: float

    def check(self, backend: str, q: float, s1: float, s2: float) -> None:
        if not (np.isfinite(q) and self.q_min <= q <= self.q_max):
            raise GwinferError(f"{backend}: q = {q} is outside its validity range [{self.q_min}, {self.q_max}]")
        for name, s in (("s1z", s1), ("s2z", s2)):
            if not (np.isfinite(s) and abs(s) <= self.spin_max):
                raise GwinferError(
                    f"{backend}: {name} = {s} is outside its validity range [-{self.spin_max}, {self.spin_max}]"
                )


class WaveformBackend(ABC):
    """A source of h22(t; q, s1z, s2z) on a requested uniform grid of times in M."""

    name: str
    validity: ValidityRange

    def h22(self, q: float, s1z: float, s2z: float, grid: TimeGrid) -> np.ndarray:
        """h22 on ``grid`` (complex128, length ``grid.n``), peak at t = 0, h22(0) real and positive."""
        self.validity.check(self.name, q, s1z, s2z)
        t, h = self.raw_h22(float(q), float(s1z), float(s2z), grid)
        return align_to_grid(t, h, grid, label=f"{self.name}(q={q}, s1z={s1z}, s2z={s2z})")

    @abstractmethod
    def raw_h22(self, q: float, s1z: float, s2z: float, grid: TimeGrid) -> tuple[np.ndarray, np.ndarray]:
        """Native output: uniformly sampled times (M, any origin) and h22 in geometric units.

        It must start early enough to cover ``grid`` once its peak is moved to t = 0.
        """

    def versions(self) -> dict[str, str]:
        """Versions of the libraries behind this backend (recorded in every catalogue manifest)."""
        return {}


def peak_time(t: np.ndarray, h: np.ndarray) -> float:
    """Time of the maximum of |h|, to sub-sample precision (root of the derivative of a local cubic spline)."""
    amp = np.abs(h)
    k = int(np.argmax(amp))
    lo, hi = max(k - 8, 0), min(k + 9, len(t))
    if hi - lo < 4:
        raise GwinferError("waveform too short to locate its amplitude peak")
    spline = CubicSpline(t[lo:hi], amp[lo:hi])
    roots = spline.derivative().roots(extrapolate=False)
    roots = roots[(roots >= t[max(k - 1, lo)]) & (roots <= t[min(k + 1, hi - 1)])]
    if roots.size == 0:
        return float(t[k])
    return float(roots[np.argmax(spline(roots))])


def align_to_grid(t: np.ndarray, h: np.ndarray, grid: TimeGrid, label: str = "waveform") -> np.ndarray:
    """Shift (t, h) so that |h| peaks at t = 0, resample onto ``grid`` and rotate so h(0) is real > 0.

    Resampling interpolates amplitude and unwrapped phase with cubic splines (both are smooth, unlike the
    oscillating real and imaginary parts), which keeps sub-sample shifts accurate at coarse steps.
    """
    if not np.all(np.isfinite(h)):
        raise GwinferError(f"{label}: the waveform contains NaN or inf")
    tp = peak_time(t, h)
    tt = t - tp
    if tt[0] > grid.t_start or tt[-1] < grid.t_end:
        raise GwinferError(
            f"{label}: the waveform spans [{tt[0]:.1f}, {tt[-1]:.1f}] M around its peak and cannot cover "
            f"the requested window [{grid.t_start}, {grid.t_end}] M"
        )
    target = grid.times()
    # only the part that covers the target (plus a few samples for the splines) is interpolated
    i0 = max(int(np.searchsorted(tt, target[0])) - 4, 0)
    i1 = min(int(np.searchsorted(tt, target[-1])) + 5, len(tt))
    tt, hh = tt[i0:i1], h[i0:i1]
    amp = CubicSpline(tt, np.abs(hh))(target)
    phase = CubicSpline(tt, np.unwrap(np.angle(hh)))
    return amp * np.exp(1j * (phase(target) - phase(0.0)))
