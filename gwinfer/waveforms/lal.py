"""Backends that call lalsimulation (lalsuite): IMRPhenomT (default), IMRPhenomXAS, SEOBNRv4_opt.

``SimInspiralChooseTDModes`` has no time-domain mode method for these approximants, so the (2,2) mode is
taken from ``SimInspiralChooseTDWaveform`` at zero inclination, where only m = +2 modes contribute and,
for these (2,2)-only models, ``h+ - i hx = h22 -2Y22(0, .)``. Physical units are converted to geometric
ones with t / (M MTSUN_SI) and h D / (M MRSUN_SI).
"""

from __future__ import annotations

import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.physics.parameters import component_masses, symmetric_mass_ratio
from gwinfer.physics.timegrid import TimeGrid
from gwinfer.waveforms.base import ValidityRange, WaveformBackend

#: Validity boxes, from each model's paper: IMRPhenomT (Estellés et al. 2021, calibrated to q <= 18,
#: |chi| <= 0.99 on the same data set as PhenomX), IMRPhenomXAS (Pratten et al. 2020, q <= 18,
#: |chi| <= 0.99) and SEOBNRv4 (Bohé et al. 2017, q <= 100, |chi| <= 0.99; calibrated to q <= 8).
VALIDITY = {
    "IMRPhenomT": ValidityRange(1.0, 18.0, 0.99),
    "IMRPhenomXAS": ValidityRange(1.0, 18.0, 0.99),
    "SEOBNRv4_opt": ValidityRange(1.0, 100.0, 0.99),
}


def newtonian_frequency(span: float, q: float) -> float:
    """Dimensionless GW frequency M f that the leading-order chirp time puts ``span`` M before merger.

    tau_0 = 5 M / (256 eta) (pi M f)^(-8/3)  (Sathyaprakash & Dhurandhar 1991).
    """
    eta = float(symmetric_mass_ratio(q))
    return (span * 256.0 * eta / 5.0) ** (-3.0 / 8.0) / np.pi


#: Frequency-domain models converted to the time domain start below f_min with a taper and are high-passed
#: at f_min: only the part above CLEAN_FACTOR x f_min is clean. Time-domain models start clean at f_min.
CLEAN_FACTOR = {"IMRPhenomXAS": 1.3}


def clean_span(t: np.ndarray, h: np.ndarray, mf_clean: float) -> float:
    """Time (M) from where the GW frequency last rises through ``mf_clean`` to the amplitude peak."""
    freq = np.abs(np.diff(np.unwrap(np.angle(h)))) / (2.0 * np.pi * (t[1] - t[0]))
    k_peak = int(np.argmax(np.abs(h)))
    # the inspiral's frequency rises monotonically: the clean part starts after the *last* sample below
    # the threshold (the tapered start can be numerically noisy, so the first crossing is not reliable)
    below = np.nonzero(freq[:k_peak] < mf_clean)[0]
    start = t[below[-1] + 1] if below.size else t[0]
    return float(t[k_peak] - start)


class LALBackend(WaveformBackend):
    """h22 from ``lalsimulation.SimInspiralChooseTDWaveform`` for an aligned-spin, (2,2)-only approximant.

    Parameters
    ----------
    approximant:
        One of :data:`VALIDITY`'s keys.
    total_mass:
        Total mass in solar masses used for the physical call; the geometric result is independent of it.
    max_generation_dt:
        The native step (M) is ``min(grid.dt, max_generation_dt)``; a finer native step makes the
        sub-sample peak shift more accurate at coarse output steps (see tests/test_waveforms.py).
    """

    def __init__(self, approximant: str = "IMRPhenomT", total_mass: float = 20.0, max_generation_dt: float = 0.5):
        if approximant not in VALIDITY:
            raise GwinferError(f"unknown lalsimulation approximant {approximant!r}; accepted: {sorted(VALIDITY)}")
        import lal
        import lalsimulation

        self._lal, self._lalsim = lal, lalsimulation
        self.name = approximant
        self.validity = VALIDITY[approximant]
        self.total_mass = float(total_mass)
        self.max_generation_dt = float(max_generation_dt)
        self._approx = lalsimulation.GetApproximantFromString(approximant)
        self._y22 = lal.SpinWeightedSphericalHarmonic(0.0, 0.0, -2, 2, 2).real

    def _call(self, q: float, s1z: float, s2z: float, dt: float, f_min: float) -> tuple[np.ndarray, np.ndarray]:
        lal, lalsim = self._lal, self._lalsim
        M = self.total_mass
        m1, m2 = component_masses(M, q)
        distance = 1e6 * lal.PC_SI
        t_unit = M * lal.MTSUN_SI
        hp, hc = lalsim.SimInspiralChooseTDWaveform(
            float(m1) * lal.MSUN_SI, float(m2) * lal.MSUN_SI,
            0.0, 0.0, s1z, 0.0, 0.0, s2z,
            distance, 0.0, 0.0, 0.0, 0.0, 0.0,
            dt * t_unit, f_min, f_min, lal.CreateDict(), self._approx,
        )  # fmt: skip
        h = (hp.data.data - 1j * hc.data.data) * (distance / (M * lal.MRSUN_SI)) / self._y22
        t = float(hp.epoch) / t_unit + dt * np.arange(h.size)
        return t, h

    def raw_h22(self, q: float, s1z: float, s2z: float, grid: TimeGrid) -> tuple[np.ndarray, np.ndarray]:
        dt = min(grid.dt, self.max_generation_dt)
        # start 20 % (and at least 200 M) before the window, so that any taper at the start stays outside it
        need = -grid.t_start + max(0.2 * -grid.t_start, 200.0)
        factor = CLEAN_FACTOR.get(self.name, 1.0)
        mf = newtonian_frequency(1.1 * need, q) / factor
        for _ in range(6):
            f_min = mf / (self.total_mass * self._lal.MTSUN_SI)
            try:
                t, h = self._call(q, s1z, s2z, dt, f_min)
            except RuntimeError as err:
                raise GwinferError(f"{self.name}(q={q}, s1z={s1z}, s2z={s2z}) failed in lalsimulation: {err}") from None
            span = clean_span(t, h, 0.999 * factor * mf)
            if span >= need:
                return t, h
            # spin-orbit terms shorten anti-aligned inspirals: lower f_min by the chirp-time scaling tau ~ f^(-8/3)
            mf *= 0.97 * (span / need) ** (3.0 / 8.0)
        raise GwinferError(f"{self.name}(q={q}, s1z={s1z}, s2z={s2z}) could not cover {need:.0f} M before the peak")

    def versions(self) -> dict[str, str]:
        return {"lal": self._lal.__version__, "lalsimulation": self._lalsim.__version__}
