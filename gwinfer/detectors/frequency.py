"""Frequency-domain detector geometry, vectorised over many sources (the training batches of an event model).

Conventions are bilby's (``Interferometer.get_detector_response``), so a signal built here and bilby's
likelihood agree exactly (tested against bilby and lal):

* detector strain ``h_d(f) = [F+ h+(f) + Fx hx(f)] exp(-2 pi i f (t_c + dt_d - t_start))``, with ``t_c``
  the geocentre time of the waveform's t = 0, ``dt_d`` the arrival delay at the detector and ``t_start``
  the segment start (s);
* the antenna patterns and the delay depend on the sky position only through the Greenwich hour angle
  ``gmst - ra`` (rad): a model trained at one sidereal time serves any GPS time once its right ascension is
  rotated by :func:`ra_at` (Earth rotation; nutation and polar motion are below 1e-4 rad);
* whitened frequency series: ``d(f) / sqrt(S(f) T w / 4)`` for a one-sided PSD ``S`` (1/Hz), segment length
  ``T`` (s) and Tukey window power ``w`` = mean(window**2): stationary Gaussian noise then has independent
  N(0, 1) real and imaginary parts in every bin, and ``-0.5 sum |d_w - h_w|^2`` is bilby's Gaussian
  log-likelihood up to a constant.

No torch here (numpy float64); the batched torch version lives in :mod:`gwinfer.data.fd_dataset`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gwinfer.errors import GwinferError

#: Speed of light (m/s), as in lal.
C_SI = 299792458.0


@lru_cache(maxsize=None)
def detector_geometry(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(response tensor (3, 3), vertex position (3,) in m, Earth-fixed) of detector ``name`` from lal."""
    import lal

    try:
        det = lal.cached_detector_by_prefix[name]
    except KeyError:
        raise GwinferError(f"unknown detector {name!r}; accepted: H1, L1, V1, ...") from None
    return np.array(det.response, dtype=float), np.array(det.location, dtype=float)


def gmst(gps: float) -> float:
    """Greenwich mean sidereal time (rad, in [0, 2 pi)) at GPS time ``gps`` s (lal)."""
    import lal

    return float(lal.GreenwichMeanSiderealTime(lal.LIGOTimeGPS(float(gps)))) % (2 * np.pi)


def ra_at(ra_reference: np.ndarray, gps: float, gmst_reference: float = 0.0) -> np.ndarray:
    """Right ascension (rad, in [0, 2 pi)) at GPS ``gps`` of sources that have hour angle
    ``gmst_reference - ra_reference``: ``ra = ra_reference + gmst(gps) - gmst_reference``."""
    return np.mod(np.asarray(ra_reference, dtype=float) + gmst(gps) - gmst_reference, 2 * np.pi)


def _basis(ra: np.ndarray, dec: np.ndarray, psi: np.ndarray, gmst_rad: float) -> tuple[np.ndarray, ...]:
    """Unit vectors (..., 3): propagation-frame axes m, n and the direction to the source omega."""
    phi = gmst_rad - ra  # Greenwich hour angle
    cp, sp, cd, sd, cs, ss = np.cos(phi), np.sin(phi), np.cos(dec), np.sin(dec), np.cos(psi), np.sin(psi)
    # the polarisation basis of lal's XLALComputeDetAMResponse (Anderson et al. 2001)
    x = np.stack([-cs * sp - ss * cp * sd, -cs * cp + ss * sp * sd, ss * cd], axis=-1)
    y = np.stack([ss * sp - cs * cp * sd, ss * cp + cs * sp * sd, cs * cd], axis=-1)
    omega = np.stack([cd * cp, -cd * sp, sd], axis=-1)
    return x, y, omega


def antenna_patterns(
    detector: str, ra: np.ndarray, dec: np.ndarray, psi: np.ndarray, gmst_rad: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(F+, Fx)`` arrays for sources at (ra, dec) rad with polarisation psi rad at sidereal time ``gmst_rad``."""
    d, _ = detector_geometry(detector)
    x, y, _ = _basis(
        *np.broadcast_arrays(np.asarray(ra, float), np.asarray(dec, float), np.asarray(psi, float)), gmst_rad
    )
    xd, yd = x @ d, y @ d
    fplus = np.einsum("...i,...i->...", x, xd) - np.einsum("...i,...i->...", y, yd)
    fcross = np.einsum("...i,...i->...", x, yd) + np.einsum("...i,...i->...", y, xd)
    return fplus, fcross


def geocentre_delay(detector: str, ra: np.ndarray, dec: np.ndarray, gmst_rad: float) -> np.ndarray:
    """Arrival time at ``detector`` minus arrival at the geocentre (s) for sources at (ra, dec) rad."""
    _, r = detector_geometry(detector)
    _, _, omega = _basis(np.asarray(ra, float), np.asarray(dec, float), np.zeros(np.shape(ra)), gmst_rad)
    return -(omega @ r) / C_SI


def band_frequencies(duration: float, f_min: float, f_max: float) -> np.ndarray:
    """The rfft frequencies (Hz) of a ``duration`` s segment inside ``[f_min, f_max]``."""
    if not (duration > 0 and 0 < f_min < f_max):
        raise GwinferError(f"band [{f_min}, {f_max}] Hz and duration {duration} s need 0 < f_min < f_max, duration > 0")
    df = 1.0 / duration
    k = np.arange(int(np.ceil(f_min / df - 1e-9)), int(np.floor(f_max / df + 1e-9)) + 1)
    return k * df


def whitening_scale(psd: np.ndarray, duration: float, window_power: float = 1.0) -> np.ndarray:
    """``sqrt(S T w / 4)``: divide a frequency series (strain/Hz) by it to whiten (module docstring)."""
    psd = np.asarray(psd, dtype=float)
    if np.any(~np.isfinite(psd)) or np.any(psd <= 0):
        raise GwinferError("whitening needs a finite, positive PSD in every bin of the band")
    return np.sqrt(psd * duration * window_power / 4.0)


def tukey_window(n: int, roll_off: float, fs: float) -> np.ndarray:
    """bilby's data window: a Tukey window of ``n`` samples with ``roll_off`` s tapers (alpha = 2 roll_off / T)."""
    from scipy.signal.windows import tukey

    return tukey(n, alpha=min(1.0, 2.0 * roll_off * fs / n))


def band_matrix(frequencies: np.ndarray, n_bands: int) -> np.ndarray:
    """(n_bands, n_bins) averaging matrix over log-spaced frequency bands (rows sum to 1): the compact
    description of a PSD that an event model is conditioned on (``band_matrix @ log(asd)``)."""
    f = np.asarray(frequencies, dtype=float)
    edges = np.geomspace(f[0], f[-1] * (1 + 1e-12), n_bands + 1)
    idx = np.clip(np.searchsorted(edges, f, side="right") - 1, 0, n_bands - 1)
    m = np.zeros((n_bands, f.size))
    m[idx, np.arange(f.size)] = 1.0
    counts = m.sum(axis=1, keepdims=True)
    if np.any(counts == 0):
        raise GwinferError(f"{n_bands} log bands over {f[0]:g}-{f[-1]:g} Hz leave some band without a frequency bin")
    return m / counts
