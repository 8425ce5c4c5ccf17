"""Detector response of ground-based interferometers (H1, L1, V1) through lal.

``h_det(t) = F+(ra, dec, psi, t_gps) h+(t - dt) + Fx(ra, dec, psi, t_gps) hx(t - dt)``, where ``dt`` is
the arrival-time delay at the detector relative to the geocentre and ``F+``, ``Fx`` are the antenna
patterns of ``lal.ComputeDetAMResponse`` (Anderson et al. 2001 conventions) at the Greenwich mean sidereal
time of ``t_gps``. Angles are in radians (``ra`` right ascension, ``dec`` declination, ``psi``
polarisation angle); times are GPS seconds. The patterns are evaluated once per signal (the Earth's
rotation during a few-second segment is neglected, as in bilby).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gwinfer.errors import GwinferError

DETECTORS = ("H1", "L1", "V1")


@lru_cache(maxsize=None)
def _lal_detector(name: str):  # noqa: ANN202 (a lal.Detector)
    import lal

    if name not in DETECTORS:
        raise GwinferError(f"unknown detector {name!r}; accepted: {', '.join(DETECTORS)}")
    return lal.cached_detector_by_prefix[name]


def _gps(t: float):  # noqa: ANN202 (a lal.LIGOTimeGPS)
    import lal

    return lal.LIGOTimeGPS(float(t))


def antenna_pattern(detector: str, ra: float, dec: float, psi: float, gps: float) -> tuple[float, float]:
    """``(F+, Fx)`` of ``detector`` for a source at (``ra``, ``dec``) rad, polarisation ``psi`` rad, at GPS ``gps`` s."""
    import lal

    det = _lal_detector(detector)
    gmst = lal.GreenwichMeanSiderealTime(_gps(gps))
    fp, fc = lal.ComputeDetAMResponse(det.response, float(ra), float(dec), float(psi), gmst)
    return float(fp), float(fc)


def time_delay(detector: str, ra: float, dec: float, gps: float) -> float:
    """Arrival time at ``detector`` minus arrival time at the geocentre (s) for a source at (``ra``, ``dec``)."""
    import lal

    det = _lal_detector(detector)
    return float(lal.TimeDelayFromEarthCenter(det.location, float(ra), float(dec), _gps(gps)))


def time_shift_fd(htilde: np.ndarray, fs: float, shift: float) -> np.ndarray:
    """Delay a frequency series on the rfft grid of ``2 (len - 1)`` samples at ``fs`` Hz by ``shift`` s
    (any real number: sub-sample shifts are exact for band-limited periodic signals):
    ``h~(f) exp(-2 pi i f shift)``."""
    n = 2 * (htilde.size - 1)
    f = np.fft.rfftfreq(n, 1.0 / fs)
    return htilde * np.exp(-2j * np.pi * f * shift)


def project_fd(
    hp: np.ndarray, hc: np.ndarray, fs: float, detector: str, ra: float, dec: float, psi: float, geocent_time: float
) -> np.ndarray:
    """Frequency-domain detector strain ``(F+ h+~ + Fx hx~) exp(-2 pi i f dt)`` on the rfft grid.

    ``geocent_time`` (GPS s) is where the patterns and the delay ``dt`` are evaluated; ``hp``, ``hc`` are
    already aligned to the geocentre.
    """
    fp, fc = antenna_pattern(detector, ra, dec, psi, geocent_time)
    return time_shift_fd(fp * hp + fc * hc, fs, time_delay(detector, ra, dec, geocent_time))


def project(
    hp: np.ndarray, hc: np.ndarray, detector: str, ra: float, dec: float, psi: float, geocent_time: float, fs: float
) -> np.ndarray:
    """Time-domain detector strain from geocentre-aligned polarisations ``hp``, ``hc`` (equal length, ``fs`` Hz).

    The delay is applied as a frequency-domain phase shift (sub-sample, **cyclic**: up to ~21 ms wrap
    around the ends; keep ~30 ms of margin, or work on a padded segment as :mod:`gwinfer.detectors.signal`
    does). ``geocent_time`` is the GPS time (s) used for the patterns and delay.
    """
    hp_a, hc_a = np.asarray(hp, dtype=float), np.asarray(hc, dtype=float)
    if hp_a.shape != hc_a.shape or hp_a.ndim != 1:
        raise GwinferError(f"project: hp and hc must be 1-D of equal length, got {hp_a.shape} and {hc_a.shape}")
    out = project_fd(np.fft.rfft(hp_a), np.fft.rfft(hc_a), fs, detector, ra, dec, psi, geocent_time)
    return np.fft.irfft(out, n=hp_a.size)
