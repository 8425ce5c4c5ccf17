"""Real detector strain: GWOSC/LOSC HDF5 files read with gwpy, cut, checked and (optionally) resampled.

A strain series here is a ``gwpy.timeseries.TimeSeries`` (strain, GPS epoch ``t0`` s, ``sample_rate`` Hz).
Typical use, for a segment around a trigger::

    ts = read_strain(path)                                      # 32 s at 4096 Hz
    off = cut(ts, t_trig - 10, before=6, after=6, fs=1024, resample=True)
    psd = welch_psd(off.value, 1024, seglen=4)                  # off-source PSD estimate
    on = cut(ts, t_trig, before=4, after=4, fs=1024, resample=True)
    w = whiten(on.value, psd, 1024, f_min=20, alpha=0.1)        # N(0, 1) per sample if noise only
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError


def read_strain(path: str | Path) -> Any:
    """Read a GWOSC HDF5 strain file (``TimeSeries.read(path, format='hdf5.gwosc')``) as a gwpy TimeSeries."""
    from gwpy.timeseries import TimeSeries

    p = Path(path)
    if not p.is_file():
        raise GwinferError(f"strain file {p} does not exist")
    try:
        return TimeSeries.read(str(p), format="hdf5.gwosc")
    except (OSError, KeyError, ValueError) as err:
        raise GwinferError(f"cannot read GWOSC strain from {p}: {str(err).splitlines()[0]}") from None


def span(strain: Any) -> tuple[float, float]:
    """GPS (start, end) in s of a TimeSeries."""
    t0 = float(strain.t0.value)
    return t0, t0 + len(strain) / float(strain.sample_rate.value)


def cut(
    strain: Any, gps_center: float, before: float, after: float, fs: float | None = None, resample: bool = False
) -> Any:
    """The part of ``strain`` from ``gps_center - before`` to ``gps_center + after`` (GPS s).

    One-line errors for a window outside the data, for NaN samples (GWOSC marks gaps with NaN) and, when
    ``fs`` (Hz) is given, for a different sample rate unless ``resample=True`` (then gwpy's
    ``TimeSeries.resample``, which low-pass filters first; done on the cut plus 1 s each side, trimmed).
    """
    if before < 0 or after < 0 or before + after <= 0:
        raise GwinferError(f"cut: before = {before} s and after = {after} s must be >= 0 with a positive sum")
    start, end = span(strain)
    lo, hi = float(gps_center) - before, float(gps_center) + after
    if lo < start or hi > end:
        raise GwinferError(f"cut: window [{lo:.3f}, {hi:.3f}] GPS s is outside the data [{start:.3f}, {end:.3f}] GPS s")
    rate = float(strain.sample_rate.value)
    need_resample = fs is not None and abs(float(fs) - rate) > 1e-9
    if need_resample and not resample:
        raise GwinferError(f"cut: the data are sampled at {rate:g} Hz, not fs = {fs:g} Hz (pass resample=True)")
    margin = 1.0 if need_resample else 0.0
    a, b = max(start, lo - margin), min(end, hi + margin)
    i0, i1 = int(round((a - start) * rate)), int(round((b - start) * rate))
    piece = strain[i0:i1]
    if not np.all(np.isfinite(piece.value)):
        bad = np.nonzero(~np.isfinite(piece.value))[0]
        t_bad = start + (i0 + bad[0]) / rate
        raise GwinferError(f"cut: {bad.size} NaN/inf samples (a data gap) in the window, first at GPS {t_bad:.3f}")
    if need_resample:
        piece = piece.resample(float(fs))
        rate = float(fs)
    p0 = float(piece.t0.value)
    j0 = int(round((lo - p0) * rate))
    j1 = j0 + int(round((hi - lo) * rate))
    return piece[j0:j1]
