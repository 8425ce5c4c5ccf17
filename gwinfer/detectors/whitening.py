"""Frequency-domain whitening and Gaussian noise with a given one-sided PSD.

Normalisation (used everywhere in gwinfer)
------------------------------------------
Let ``x[n]``, ``n = 0..N-1``, be sampled at ``fs`` Hz (``dt = 1/fs``, ``T = N dt``, ``df = 1/T``) and
``F_k = sum_n x[n] exp(-2 pi i k n / N)`` its ``numpy.fft.rfft``. The continuous Fourier transform is
``x~(f_k) ~= dt F_k`` (this is what lalsimulation/bilby frequency-domain waveforms are, in strain/Hz).
For stationary Gaussian noise with one-sided PSD ``S`` (1/Hz)::

    E |x~(f_k)|^2 = T S(f_k) / 2            E |F_k|^2 = N fs S(f_k) / 2        (0 < f_k < fs/2)

Whitening divides each bin by its standard deviation and returns to the time domain::

    w = irfft( F / sqrt(fs S / 2) )  =  irfft( x~ * sqrt(2 fs / S) )

so whitened noise has ``E|.|^2 = N`` per bin and, by Parseval, **unit variance per time sample** and a flat
spectrum: it is N(0, 1) white noise, the same as :func:`whitened_noise`. Bins outside ``[f_min, f_max]`` are
set to zero, so band-limited whitened noise has variance equal to the kept fraction of bins,
:func:`band_fraction` (``1 - 20/512 = 0.96`` for ``f_min = 20 Hz``, ``fs = 1024 Hz``). For a signal ``h``,
``sum_n w_h[n]^2 = 4 df sum_k |h~(f_k)|^2 / S(f_k)`` is the optimal matched-filter SNR^2, and the
matched-filter SNR of data ``d`` is ``sum_n w_d[n] w_h[n] / sqrt(sum_n w_h[n]^2)``.

The FFT treats the segment as periodic: whiten a stretch longer than the one you keep (and/or use a Tukey
window, ``alpha`` = fraction of the segment tapered) so that edge effects fall outside it. The window is
not compensated: tapered samples have variance ``window[n]^2``.
"""

from __future__ import annotations

import numpy as np

from gwinfer.detectors.psd import PSD
from gwinfer.errors import GwinferError


def psd_array(psd: PSD | np.ndarray, n: int, fs: float, f_min: float, f_max: float | None = None) -> np.ndarray:
    """One-sided PSD (1/Hz) on ``rfftfreq(n, 1/fs)`` with ``+inf`` outside ``[f_min, f_max]``.

    ``psd`` is a :class:`PSD`, or an array already on that grid (length ``n//2 + 1``; the band is applied).
    """
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    if isinstance(psd, PSD):
        return psd.on_grid(fs, n / fs, f_min, f_max)
    s = np.asarray(psd, dtype=float).copy()
    if s.shape != freqs.shape:
        raise GwinferError(f"PSD array has {s.size} bins; the rfft grid of {n} samples has {freqs.size}")
    f_hi = fs / 2.0 if f_max is None else float(f_max)
    out_band = (freqs < f_min) | (freqs > f_hi)
    s[out_band] = np.inf
    if np.any(np.isnan(s)) or np.any(s[~out_band] <= 0):
        raise GwinferError("PSD array must be > 0 and not NaN inside the analysis band")
    return s


def band_fraction(n: int, fs: float, f_min: float, f_max: float | None = None) -> float:
    """Variance of whitened N(0, 1) noise after zeroing bins outside ``[f_min, f_max]``: kept fraction of
    the ``n`` two-sided bins (DC and Nyquist counted once, the others twice)."""
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    f_hi = fs / 2.0 if f_max is None else float(f_max)
    weight = np.full(freqs.shape, 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    keep = (freqs >= f_min) & (freqs <= f_hi)
    return float(weight[keep].sum() / n)


def tukey(n: int, alpha: float) -> np.ndarray:
    """``scipy.signal.windows.tukey(n, alpha)``: ``alpha`` in [0, 1] is the tapered fraction (0 = none)."""
    from scipy.signal.windows import tukey as _tukey

    if not 0.0 <= alpha <= 1.0:
        raise GwinferError(f"Tukey alpha = {alpha} is outside the accepted range [0, 1]")
    return _tukey(n, alpha)


def whiten_fd(htilde: np.ndarray, psd: np.ndarray, fs: float) -> np.ndarray:
    """Whitened time series (length ``2 (len - 1)``) from a continuous FT ``htilde`` (strain/Hz) and the
    PSD on its grid (``+inf`` bins give zero): ``irfft(htilde * sqrt(2 fs / S))``."""
    n = 2 * (htilde.size - 1)
    with np.errstate(divide="ignore"):
        scale = np.sqrt(2.0 * fs / psd)
    return np.fft.irfft(htilde * scale, n=n)


def whiten(
    x: np.ndarray, psd: PSD | np.ndarray, fs: float, f_min: float, f_max: float | None = None, alpha: float = 0.0
) -> np.ndarray:
    """Whiten the real series ``x`` (strain, sampled at ``fs`` Hz) with the one-sided ``psd`` (1/Hz).

    Whitened noise is N(0, 1) per sample within ``[f_min, f_max]`` Hz (see the module docstring);
    ``alpha`` > 0 applies a Tukey window first. With an *estimated* PSD (:func:`~gwinfer.detectors.psd.welch_psd`)
    the variance is biased up by the estimate's scatter (E[S / S_est] > 1): use >= ~20 Welch segments.
    """
    xa = np.asarray(x, dtype=float)
    if xa.ndim != 1 or xa.size < 4:
        raise GwinferError("whiten: x must be a 1-D series of at least 4 samples")
    if not np.all(np.isfinite(xa)):
        raise GwinferError("whiten: x contains NaN or inf samples")
    n = xa.size
    s = psd_array(psd, n, fs, f_min, f_max)
    if alpha > 0:
        xa = xa * tukey(n, alpha)
    return whiten_fd(np.fft.rfft(xa) / fs, s, fs)


def colored_noise(
    psd: PSD | np.ndarray,
    fs: float,
    duration: float,
    rng: np.random.Generator,
    f_min: float | None = None,
    f_max: float | None = None,
) -> np.ndarray:
    """Stationary Gaussian noise (strain) with one-sided PSD ``psd`` (1/Hz): ``fs * duration`` samples.

    Drawn in the frequency domain with ``x~_k = sqrt(T S_k / 4) (a + i b)``, ``a, b ~ N(0, 1)`` (real and
    ``sqrt(T S_k / 2) a`` at DC/Nyquist), so ``E|x~_k|^2 = T S_k / 2``; bins outside the band are zero.
    The series is periodic with period ``duration``. With a :class:`PSD`, ``f_min`` is required.
    """
    n = int(round(fs * duration))
    if isinstance(psd, PSD) and f_min is None:
        raise GwinferError("colored_noise: give f_min (Hz) when psd is a PSD object")
    s = psd_array(psd, n, fs, 0.0 if f_min is None else f_min, f_max)
    s = np.where(np.isfinite(s), s, 0.0)
    T = n / fs
    sigma = np.sqrt(T * s / 4.0)
    xt = sigma * (rng.standard_normal(s.size) + 1j * rng.standard_normal(s.size))
    xt[0] = np.sqrt(T * s[0] / 2.0) * rng.standard_normal()
    if n % 2 == 0:
        xt[-1] = np.sqrt(T * s[-1] / 2.0) * rng.standard_normal()
    return np.fft.irfft(xt, n=n) * fs


def whitened_noise(n: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Standard normal samples: whitened detector noise in the convention above (added to whitened signals)."""
    return rng.standard_normal(n)
