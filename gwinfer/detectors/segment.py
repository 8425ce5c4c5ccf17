"""An event's analysis segment in the frequency domain and its off-source PSD (numpy; units s, Hz, GPS s).

The same two functions prepare the data of a real event for an event model's network
(:mod:`gwinfer.evaluation.event`) and for bilby's likelihood, and make the PSD family the model is trained
over (:mod:`gwinfer.data.fd_bank`), so the three cannot drift apart:

* :func:`offsource_psd`: median-averaged Welch (Hann, ``seglen`` s, 50 % overlap) of every stretch of the
  file at least ``guard`` s away from the analysis segment, the stretches' estimates averaged with weights
  equal to their segment counts. With 32 s files and an 8 s segment, 2 s Welch segments give ~20 averages
  (4 s segments only ~8; see :func:`gwinfer.detectors.psd.welch_psd` for the over-whitening of few averages).
* :func:`fd_segment`: the ``duration`` s from ``start``, Tukey-windowed as bilby does (``roll_off`` s),
  ``rfft * dt`` (strain/Hz, bilby's convention), and the window power mean(window**2) that whitening needs.
"""

from __future__ import annotations

import numpy as np

from gwinfer.detectors.psd import PSD, welch_psd
from gwinfer.errors import GwinferError

#: bilby's default Tukey roll-off (s) of an analysis segment.
ROLL_OFF = 0.2


def offsource_psd(
    strain: np.ndarray,
    fs: float,
    t0: float,
    exclude: tuple[float, float],
    guard: float = 2.0,
    seglen: float = 2.0,
) -> PSD:
    """PSD (1/Hz) of ``strain`` (samples at ``fs`` Hz from GPS ``t0``) outside ``exclude`` = (start, end) GPS s
    widened by ``guard`` s on each side; a one-line error if no stretch holds two Welch segments."""
    x = np.asarray(strain, dtype=float)
    t = t0 + np.arange(x.size) / fs
    lo, hi = exclude[0] - guard, exclude[1] + guard
    need = int(round(2 * seglen * fs))
    pieces = [x[t < lo], x[t >= hi]]
    usable = [p for p in pieces if p.size >= need]
    if not usable:
        raise GwinferError(
            f"no off-source stretch of >= {2 * seglen:g} s outside [{lo:.2f}, {hi:.2f}] GPS s in data "
            f"[{t0:.2f}, {t[-1]:.2f}]: give a longer strain file"
        )
    estimates = [welch_psd(p, fs, seglen=seglen, average="median") for p in usable]
    nper = int(round(seglen * fs))
    counts = np.array([(p.size - nper) // (nper // 2) + 1 for p in usable], dtype=float)
    values = sum(c * e.values for c, e in zip(counts, estimates)) / counts.sum()
    return PSD.from_arrays(estimates[0].frequencies, values, name=f"off-source welch({seglen:g} s, median)")


def fd_segment(
    strain: np.ndarray, fs: float, t0: float, start: float, duration: float, roll_off: float = ROLL_OFF
) -> tuple[np.ndarray, np.ndarray, float]:
    """(frequencies (Hz), frequency series (strain/Hz), window power) of the ``duration`` s of ``strain``
    (``fs`` Hz from GPS ``t0``) that start at GPS ``start`` (rounded to the nearest sample)."""
    from gwinfer.detectors.frequency import tukey_window

    x = np.asarray(strain, dtype=float)
    i0 = int(round((start - t0) * fs))
    n = int(round(duration * fs))
    if i0 < 0 or i0 + n > x.size:
        raise GwinferError(
            f"segment [{start:.3f}, {start + duration:.3f}] GPS s is not inside the data "
            f"[{t0:.3f}, {t0 + x.size / fs:.3f}]"
        )
    w = tukey_window(n, roll_off, fs)
    piece = x[i0 : i0 + n]
    if not np.all(np.isfinite(piece)):
        raise GwinferError("the analysis segment contains NaN/inf samples (a data gap)")
    return np.fft.rfftfreq(n, 1.0 / fs), np.fft.rfft(piece * w) / fs, float(np.mean(w**2))
