"""One-sided noise power spectral densities (PSDs) and their evaluation on FFT frequency grids.

Conventions
-----------
* A PSD ``S(f)`` is **one-sided**, in 1/Hz: for stationary noise ``n(t)``, ``var n = integral_0^inf S(f) df``.
  An amplitude spectral density (ASD) is ``sqrt(S)`` in 1/sqrt(Hz).
* A segment of ``duration`` T seconds sampled at ``fs`` Hz has the FFT grid ``f_k = k df``, ``df = 1/T``,
  ``k = 0 .. N/2`` with ``N = fs T`` (``numpy.fft.rfftfreq``). :meth:`PSD.on_grid` returns the PSD there,
  with ``+inf`` outside the analysis band ``[f_min, f_max]``: dividing by ``sqrt(S)`` then zeroes those bins,
  which is how :mod:`gwinfer.detectors.whitening` band-limits.

Sources: lalsimulation's analytic/tabulated design curves (``PSD.from_lalsimulation("aLIGOZeroDetHighPower")``
calls ``lalsimulation.SimNoisePSDaLIGOZeroDetHighPower``), two-column text files (``PSD.from_file``), and
off-source Welch estimates (:func:`welch_psd`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.external import external_dir

#: The design curve stored with the project data (equal to lalsimulation's ...GWINC curve, see SOURCES.md).
DEFAULT_PSD_FILE = external_dir() / "psd/aLIGO_ZERO_DET_high_P_psd.txt"


def _check_values(freqs: np.ndarray, values: np.ndarray, where: str) -> None:
    if freqs.ndim != 1 or values.shape != freqs.shape or freqs.size < 2:
        raise GwinferError(f"{where}: need two equal-length 1-D columns (frequency Hz, value) with >= 2 rows")
    if not (np.all(np.isfinite(freqs)) and np.all(np.isfinite(values))):
        raise GwinferError(f"{where}: frequencies and values must be finite")
    if np.any(values <= 0):
        raise GwinferError(f"{where}: PSD values must be > 0 (found {int(np.sum(values <= 0))} non-positive)")
    if np.any(freqs <= 0):
        raise GwinferError(f"{where}: frequencies must be > 0 Hz")
    if np.any(np.diff(freqs) <= 0):
        raise GwinferError(f"{where}: frequencies must be strictly increasing")


@dataclass(frozen=True, eq=False)
class PSD:
    """A one-sided PSD (1/Hz), either tabulated (``frequencies``, ``values``) or an analytic ``function``.

    Tabulated PSDs are interpolated linearly in log f - log S; evaluating outside
    ``[frequencies[0], frequencies[-1]]`` is an error. Analytic PSDs (a lalsimulation ``SimNoisePSD*``
    function of one frequency in Hz) are valid for ``f >= f_lowest`` Hz.
    """

    name: str
    frequencies: np.ndarray | None = None
    values: np.ndarray | None = None
    function: Callable[[float], float] | None = None
    f_lowest: float = 0.0

    # ---- constructors -------------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, frequencies: np.ndarray, values: np.ndarray, name: str = "table") -> PSD:
        """A tabulated PSD from frequencies (Hz, strictly increasing, > 0) and values (1/Hz, > 0)."""
        f = np.asarray(frequencies, dtype=float)
        v = np.asarray(values, dtype=float)
        _check_values(f, v, name)
        return cls(name=name, frequencies=f, values=v)

    @classmethod
    def from_file(cls, path: str | Path, kind: str = "psd") -> PSD:
        """Read a two-column text file: frequency (Hz) and PSD (1/Hz, ``kind="psd"``) or ASD (``kind="asd"``)."""
        p = Path(path)
        if kind not in ("psd", "asd"):
            raise GwinferError(f"PSD file kind = {kind!r}; accepted: 'psd', 'asd'")
        if not p.is_file():
            raise GwinferError(f"PSD file {p} does not exist")
        try:
            data = np.loadtxt(p, ndmin=2)
        except ValueError as err:
            raise GwinferError(f"PSD file {p} is not two numeric columns: {str(err).splitlines()[0]}") from None
        if data.shape[1] != 2:
            raise GwinferError(f"PSD file {p} has {data.shape[1]} columns; expected 2 (Hz, {kind})")
        freqs, vals = data[:, 0], data[:, 1]
        _check_values(freqs, vals, str(p))
        return cls(name=p.name, frequencies=freqs, values=vals**2 if kind == "asd" else vals)

    @classmethod
    def from_lalsimulation(cls, name: str = "aLIGOZeroDetHighPower", f_lowest: float = 10.0) -> PSD:
        """An analytic/tabulated lalsimulation design curve ``lalsimulation.SimNoisePSD<name>``.

        Examples: ``aLIGOZeroDetHighPower`` (analytic fit), ``aLIGOZeroDetHighPowerGWINC`` (the
        ZERO_DET_high_P table, equal to :data:`DEFAULT_PSD_FILE`), ``aLIGODesignSensitivityP1200087``.
        """
        import lalsimulation

        func = getattr(lalsimulation, f"SimNoisePSD{name}", None)
        if func is None or not callable(func) or name in ("", "FromFile"):
            raise GwinferError(f"lalsimulation has no PSD function SimNoisePSD{name}; try 'aLIGOZeroDetHighPower'")
        try:
            func(100.0)
        except TypeError:  # a tabulated curve filling a REAL8FrequencySeries from flow: tabulate it at 1/16 Hz
            import lal

            df, f_hi = 0.0625, 8192.0
            series = lal.CreateREAL8FrequencySeries(name, lal.LIGOTimeGPS(0), 0.0, df, lal.DimensionlessUnit,
                                                    int(f_hi / df) + 1)  # fmt: skip
            func(series, float(f_lowest))
            freqs, vals = df * np.arange(series.data.length), np.array(series.data.data)
            i0 = int(np.ceil(f_lowest / df))
            bad = np.nonzero(vals[i0:] <= 0)[0]  # the table ends where lalsimulation returns 0
            i1 = i0 + (int(bad[0]) if bad.size else vals.size - i0)
            return cls.from_arrays(freqs[i0:i1], vals[i0:i1], name=name)
        return cls(name=name, function=func, f_lowest=float(f_lowest))

    @classmethod
    def from_name(cls, name: str | Path) -> PSD:
        """A lalsimulation curve by name, or a file path (``*_asd.txt`` read as an ASD, otherwise a PSD)."""
        s = str(name)
        if Path(s).suffix in (".txt", ".dat", ".csv") or Path(s).is_file():
            return cls.from_file(s, kind="asd" if "asd" in Path(s).name.lower() else "psd")
        return cls.from_lalsimulation(s)

    # ---- evaluation ---------------------------------------------------------------------------------
    @property
    def f_range(self) -> tuple[float, float]:
        """Frequencies (Hz) where the PSD can be evaluated."""
        if self.function is not None:
            return self.f_lowest, np.inf
        return float(self.frequencies[0]), float(self.frequencies[-1])  # type: ignore[index]

    def __call__(self, f: np.ndarray | float) -> np.ndarray:
        """The PSD (1/Hz) at frequencies ``f`` (Hz), which must lie within :attr:`f_range`."""
        fa = np.atleast_1d(np.asarray(f, dtype=float))
        lo, hi = self.f_range
        if fa.size and (fa.min() < lo * (1 - 1e-12) or fa.max() > hi * (1 + 1e-12)):
            raise GwinferError(
                f"PSD {self.name}: requested frequencies [{fa.min():g}, {fa.max():g}] Hz lie outside its range "
                f"[{lo:g}, {hi:g}] Hz"
            )
        if self.function is not None:
            out = np.array([self.function(float(x)) for x in fa])
        else:
            out = np.exp(np.interp(np.log(fa), np.log(self.frequencies), np.log(self.values)))
        if not np.all(np.isfinite(out)) or np.any(out <= 0):
            raise GwinferError(f"PSD {self.name}: non-positive or non-finite values in [{fa.min():g}, {fa.max():g}] Hz")
        return out

    def on_grid(self, fs: float, duration: float, f_min: float, f_max: float | None = None) -> np.ndarray:
        """The PSD (1/Hz) on ``rfftfreq(fs*duration, 1/fs)``; ``+inf`` outside ``[f_min, f_max]`` Hz.

        ``f_max`` defaults to the Nyquist frequency ``fs/2``. The band must lie within :attr:`f_range`.
        """
        n = int(round(fs * duration))
        if n < 2 or abs(n - fs * duration) > 1e-6:
            raise GwinferError(f"fs * duration = {fs * duration} must be a whole number of samples >= 2")
        freqs = np.fft.rfftfreq(n, 1.0 / fs)
        f_hi = fs / 2.0 if f_max is None else float(f_max)
        if not (0 < f_min < f_hi <= fs / 2.0):
            raise GwinferError(f"analysis band [{f_min}, {f_hi}] Hz must satisfy 0 < f_min < f_max <= fs/2 = {fs / 2}")
        out = np.full(freqs.shape, np.inf)
        band = (freqs >= f_min) & (freqs <= f_hi)
        out[band] = self(freqs[band])
        return out


def welch_psd(strain: np.ndarray, fs: float, seglen: float = 4.0, average: str = "median") -> PSD:
    """Off-source PSD estimate: ``scipy.signal.welch``, Hann window, ``seglen`` s segments, 50 % overlap.

    Returns a tabulated :class:`PSD` on ``df = 1/seglen`` (the f = 0 bin dropped). ``average`` is
    ``"median"`` (robust to glitches; scipy applies the median bias correction) or ``"mean"``.

    Whitening with an estimate from few segments over-whitens on average (E[S / S_est] > 1): on GW150914 H1
    (12 s off-source, 1024 Hz) the whitened variance of other off-source data is 0.97 / 1.09 / 1.34 for
    ``seglen`` = 1 / 2 / 4 s (23 / 11 / 5 median-averaged segments), against 0.96 expected. Use >= ~20 segments.
    """
    from scipy.signal import welch

    x = np.asarray(strain, dtype=float)
    nper = int(round(seglen * fs))
    if average not in ("median", "mean"):
        raise GwinferError(f"welch average = {average!r}; accepted: 'median', 'mean'")
    if not np.all(np.isfinite(x)):
        raise GwinferError("welch_psd: strain contains NaN or inf samples")
    if nper < 8 or x.size < 2 * nper:
        raise GwinferError(f"welch_psd: need at least 2 segments of {seglen} s ({2 * nper} samples), got {x.size}")
    f, p = welch(x, fs=fs, window="hann", nperseg=nper, noverlap=nper // 2, average=average, detrend="constant")
    return PSD.from_arrays(f[1:], p[1:], name=f"welch({seglen:g} s, {average})")
