"""Bring any user-supplied (2,2) mode to a model's convention: :func:`canonical_h22`.

The convention is the one every backend follows (:mod:`gwinfer.waveforms.base`): ``h22 = h+ - i hx`` in
geometric units (time in M, strain as r h / M), the amplitude |h22| peaking at t = 0 and h22(0) real and
positive, sampled on the model's :class:`~gwinfer.physics.timegrid.TimeGrid`.

What :func:`canonical_h22` does to an input ``(t, h)`` (t in M on the input's own clock, any origin,
uniform or not):

1. refuses, with one line, what cannot be a waveform: mismatched lengths, fewer than
   :data:`MIN_SAMPLES` samples, times not strictly increasing, NaN or inf, a real-valued h, an
   all-zero h, or an amplitude that is largest at the first or last sample (no merger to align on);
2. conjugates an input whose phase turns the other way from gwinfer's h22 (:data:`H22_ROTATION`), e.g.
   one written as h+ + i hx, and says so in a warning;
3. locates the amplitude peak with :func:`~gwinfer.waveforms.base.peak_time` (better than 0.01 M at steps
   up to 2 M);
4. resamples onto the model's grid with :func:`~gwinfer.waveforms.base.align_to_grid` (amplitude and
   unwrapped phase through cubic splines); where the input does not cover the model's window, the result
   is zero and a warning states the covered span (``coverage`` is the covered fraction);
5. adds the warnings of :func:`bbh22_warnings` when the input does not look like a binary-black-hole
   (2,2) mode in geometric units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import CubicSpline

from gwinfer.errors import GwinferError
from gwinfer.physics.timegrid import TimeGrid
from gwinfer.waveforms.base import align_to_grid, peak_time

#: Sense of rotation of gwinfer's h22 = h+ - i hx: its phase decreases with time, d arg(h22)/dt < 0
#: (checked against the IMRPhenomT backend in tests/waveforms/test_canonical.py). An input turning the
#: other way (h+ + i hx, or the complex conjugate of h22) is conjugated.
H22_ROTATION = -1

#: Fewest samples accepted (the peak fit alone needs a dozen around the maximum).
MIN_SAMPLES = 16

#: Largest |h| below which an input counts as all zero.
MIN_AMPLITUDE = 1e-300

#: Range of M omega_22 (the (2,2) angular frequency, rad / M) at the amplitude peak measured with IMRPhenomT
#: (lalsimulation) on a 9 x 9 x 9 grid over q in [1, 8], s1z, s2z in [-0.8, 0.8]: 0.2489 (q = 8,
#: s1z = s2z = -0.8) to 0.4416 (q = 1, s1z = s2z = 0.8).
OMEGA22_PEAK_RANGE = (0.2489, 0.4416)

#: Range of the peak amplitude r |h22| / M on the same grid: 0.1399 (q = 8, s1z = -0.8, s2z = -0.4) to
#: 0.3983 (q = 1, s1z = s2z = 0.8).
AMPLITUDE_PEAK_RANGE = (0.1399, 0.3983)

#: Largest amplitude ratio |h22(t)| / |h22(0)| on the same grid 30 M and 50 M after the peak (the ringdown
#: has decayed to at most 0.429 and 0.113 of the peak; both maxima at q = 8, s1z = s2z = 0.8).
RINGDOWN_RATIO_MAX = {30.0: 0.4291, 50.0: 0.1125}

#: Ratio above which the ringdown check warns (1.5 and 2 times the measured maxima).
RINGDOWN_RATIO_LIMIT = {30.0: 0.65, 50.0: 0.25}

#: Input step (M) around the peak above which :func:`~gwinfer.waveforms.base.peak_time` is less accurate than 0.01 M.
PEAK_STEP_MAX = 2.0

#: Relative margin added on both sides of the measured ranges before a warning is raised (other models
#: and NR differ from IMRPhenomT by a few per cent at the same parameters).
WARNING_MARGIN = 0.10


@dataclass(frozen=True)
class CanonicalWaveform:
    """A user's h22 in a model's convention.

    Attributes
    ----------
    h:
        complex128 h22 on ``grid.times()`` (geometric units), |h| peaking at t = 0, h(0) real and > 0;
        zero where the input does not cover the grid.
    grid:
        The model's time grid (M).
    peak_time:
        Where the input's amplitude peaked, on the input's own clock (M).
    coverage:
        Fraction of the grid's window [t_start, t_end] that the input covers (1.0: all of it).
    conjugated:
        True if the input turned the other way and was conjugated.
    warnings:
        One-line warnings (conjugation, partial coverage, does not look like a BBH (2,2) mode).
    span:
        The input's time span around its peak, (first, last) sample time minus ``peak_time`` (M).
    omega_peak:
        M omega_22 at the peak, -d arg(h22)/dt after any conjugation (rad / M).
    amplitude_peak:
        |h22| at the peak (r h / M for an input in geometric units).
    ringdown_ratio:
        ``(dt_rd, |h(t_peak + dt_rd)| / |h(t_peak)|)`` with dt_rd = 50 M, or 30 M if the input ends
        earlier; ``None`` if it ends less than 30 M after its peak.
    input_step:
        The input's sampling step around its peak (M).
    """

    h: np.ndarray
    grid: TimeGrid
    peak_time: float
    coverage: float
    conjugated: bool
    warnings: list[str] = field(default_factory=list)
    span: tuple[float, float] = (0.0, 0.0)
    omega_peak: float = float("nan")
    amplitude_peak: float = float("nan")
    ringdown_ratio: tuple[float, float] | None = None
    input_step: float = float("nan")


def check_waveform(t: np.ndarray, h: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(t, h) as float64 / complex128 1-D arrays, or a one-line GwinferError, prefixed by ``label``, naming
    what is wrong: shapes, lengths, fewer than :data:`MIN_SAMPLES` samples, NaN or inf, t not strictly
    increasing, h zero everywhere (max |h| < :data:`MIN_AMPLITUDE`) or real-valued."""
    t = np.asarray(t)
    h = np.asarray(h)
    if t.ndim != 1 or h.ndim != 1:
        raise GwinferError(f"{label}: t and h must be 1-D arrays, got shapes {t.shape} and {h.shape}")
    if t.size != h.size:
        raise GwinferError(f"{label}: t has {t.size} samples but h has {h.size}; they must have the same length")
    if t.size < MIN_SAMPLES:
        raise GwinferError(f"{label}: {t.size} samples; at least {MIN_SAMPLES} are needed")
    if not np.issubdtype(t.dtype, np.number) or np.iscomplexobj(t):
        raise GwinferError(f"{label}: t must be real numbers (times in M), got dtype {t.dtype}")
    if not np.issubdtype(h.dtype, np.number):
        raise GwinferError(f"{label}: h must be complex numbers (h22 = h+ - i hx), got dtype {h.dtype}")
    t = t.astype(np.float64)
    h = h.astype(np.complex128)
    if not np.all(np.isfinite(t)):
        raise GwinferError(f"{label}: t contains NaN or inf")
    if not np.all(np.isfinite(h)):
        raise GwinferError(f"{label}: h contains NaN or inf")
    if np.any(np.diff(t) <= 0):
        k = int(np.argmax(np.diff(t) <= 0))
        raise GwinferError(
            f"{label}: t must be strictly increasing, but t[{k + 1}] = {t[k + 1]!r} <= t[{k}] = {t[k]!r}"
        )
    amp_max = float(np.max(np.abs(h)))
    if not amp_max >= MIN_AMPLITUDE:
        raise GwinferError(f"{label}: h is zero everywhere (max |h| = {amp_max:.3g} < {MIN_AMPLITUDE:g})")
    if not np.any(h.imag):
        raise GwinferError(
            f"{label}: h is real-valued; h22 is complex (h+ - i hx): give both polarisations, not h+ alone"
        )
    return t, h


def rotation_sense(t: np.ndarray, h: np.ndarray) -> int:
    """+1 if arg(h) mostly increases with time, -1 if it decreases.

    The phase increments between consecutive samples, wrapped to (-pi, pi], are summed with weights
    |h_k||h_k+1| (so the loud merger dominates and noise in silent stretches does not). This needs
    fewer than pi radians per sample, i.e. a step below pi / omega_22 around the merger.
    """
    z = h[1:] * np.conj(h[:-1])
    return 1 if float(np.sum(np.angle(z) * np.abs(z))) > 0 else -1


def _ringdown_ratio(t: np.ndarray, amp: np.ndarray, tp: float, amp_peak: float) -> tuple[float, float] | None:
    """(dt_rd, |h(tp + dt_rd)| / |h(tp)|) for dt_rd = 50 M, else 30 M, else None (input ends too early)."""
    for later in sorted(RINGDOWN_RATIO_LIMIT, reverse=True):
        if t[-1] >= tp + later:
            j = int(np.searchsorted(t, tp + later))
            lo, hi = max(j - 4, 0), min(j + 4, t.size)
            return later, float(CubicSpline(t[lo:hi], amp[lo:hi])(tp + later)) / amp_peak
    return None


def bbh22_warnings(c: CanonicalWaveform) -> list[str]:
    """One-line warnings when ``c`` does not look like a BBH (2,2) mode in geometric units.

    Checks, each against the IMRPhenomT ranges measured over q in [1, 8], |s| <= 0.8 (widened by
    :data:`WARNING_MARGIN`): M omega_22 at the peak (:data:`OMEGA22_PEAK_RANGE`; a waveform whose time is
    in seconds, or another mode, fails this), the peak amplitude r |h22| / M
    (:data:`AMPLITUDE_PEAK_RANGE`; strain in physical units or a normalised waveform fails this) and the
    ringdown (:data:`RINGDOWN_RATIO_MAX`: the amplitude must have decayed 30 or 50 M after the peak).
    """
    out = []
    margin = f"+-{100 * WARNING_MARGIN:g} %"
    lo, hi = OMEGA22_PEAK_RANGE[0] * (1 - WARNING_MARGIN), OMEGA22_PEAK_RANGE[1] * (1 + WARNING_MARGIN)
    if not lo <= c.omega_peak <= hi:
        out.append(
            f"M omega_22 at the amplitude peak is {c.omega_peak:.4g} rad/M, outside [{lo:.3f}, {hi:.3f}] "
            f"(IMRPhenomT over q in [1, 8], |s| <= 0.8, {margin}): not a BBH (2,2) mode with time in units of M "
            "(seconds?), or a binary outside the model's range"
        )
    lo, hi = AMPLITUDE_PEAK_RANGE[0] * (1 - WARNING_MARGIN), AMPLITUDE_PEAK_RANGE[1] * (1 + WARNING_MARGIN)
    if not lo <= c.amplitude_peak <= hi:
        out.append(
            f"peak |h22| is {c.amplitude_peak:.4g}, outside [{lo:.3f}, {hi:.3f}] (r |h22| / M of IMRPhenomT over "
            f"q in [1, 8], |s| <= 0.8, {margin}): not in geometric units (strain at a distance, or normalised?)"
        )
    if c.ringdown_ratio is not None:
        later, ratio = c.ringdown_ratio
        if ratio > RINGDOWN_RATIO_LIMIT[later]:
            out.append(
                f"|h22| is still {ratio:.3g} of its peak value {later:g} M after the peak (IMRPhenomT over q in "
                f"[1, 8], |s| <= 0.8: at most {RINGDOWN_RATIO_MAX[later]:.3g}; warning above "
                f"{RINGDOWN_RATIO_LIMIT[later]:.3g}): the amplitude does not decay like a ringdown"
            )
    if c.input_step > PEAK_STEP_MAX * (1 + 1e-9):
        out.append(
            f"the input's step around its peak, {c.input_step:.3g} M, is coarser than {PEAK_STEP_MAX:g} M: its peak "
            "is located less accurately (measured on IMRPhenomT: up to 0.07 M at 2.5 M, 0.35 M at 4 M)"
        )
    per_sample = c.omega_peak * c.input_step
    if np.isfinite(per_sample) and per_sample > np.pi / 2:
        out.append(
            f"the input is sampled too coarsely around its peak (omega_22 dt = {per_sample:.3g} rad per sample "
            "> pi/2): its phase cannot be followed reliably"
        )
    return out


def canonical_h22(
    t: np.ndarray, h: np.ndarray, grid: TimeGrid, *, label: str = "waveform", peak: float | None = None
) -> CanonicalWaveform:
    """``h`` (complex h22 in geometric units at times ``t`` in M) in the convention of a model on ``grid``.

    ``peak``: the peak time on the input's clock when it is known better than the amplitude alone tells
    (e.g. from the overlap with a regenerated template, :func:`gwinfer.evaluation.single.align_by_template`);
    default :func:`~gwinfer.waveforms.base.peak_time`.

    See the module docstring for the steps; refuses bad input with one line naming the problem, warns
    (``warnings``) about conjugation, partial coverage and inputs that do not look like a BBH (2,2) mode.
    """
    t, h = check_waveform(t, h, label)
    amp = np.abs(h)
    k = int(np.argmax(amp))
    if k == 0 or k == amp.size - 1:
        where = "first" if k == 0 else "last"
        raise GwinferError(
            f"{label}: |h| is largest at the {where} sample (t = {t[k]:.6g} M): the input has no merger peak "
            "to align on (it must contain the peak with samples on both sides)"
        )
    warnings: list[str] = []
    conjugated = rotation_sense(t, h) != H22_ROTATION
    if conjugated:
        h = np.conj(h)
        warnings.append(
            f"{label}: the phase turns the other way from gwinfer's h22 = h+ - i hx (as h+ + i hx would); "
            "the input was conjugated"
        )
    tp = peak_time(t, h) if peak is None else float(peak)
    lo, hi = max(k - 8, 0), min(k + 9, t.size)
    amp_peak = float(CubicSpline(t[lo:hi], amp[lo:hi])(tp))
    times = grid.times()
    span = (float(t[0] - tp), float(t[-1] - tp))
    covered = max(0.0, min(span[1], grid.t_end) - max(span[0], grid.t_start))
    result = CanonicalWaveform(
        h=np.zeros(times.size, dtype=np.complex128), grid=grid, peak_time=float(tp),
        coverage=float(covered / (grid.t_end - grid.t_start)), conjugated=bool(conjugated), warnings=warnings,
        span=span, omega_peak=-float(CubicSpline(t[lo:hi], np.unwrap(np.angle(h[lo:hi])))(tp, 1)),
        amplitude_peak=amp_peak, ringdown_ratio=_ringdown_ratio(t, amp, tp, amp_peak),
        input_step=float(np.median(np.diff(t[lo:hi]))),
    )  # fmt: skip
    # a re-found peak may leave a sliver (a fraction of a step) of the window just outside the input's span
    # (an input sampled on the model's own window): the splines continue it there instead of zeroing a sample
    slack = 0.25 * float(grid.dt)
    inside = (times >= t[0] - tp - slack) & (times <= t[-1] - tp + slack)
    i0, i1 = int(np.argmax(inside)), int(inside.size - 1 - np.argmax(inside[::-1]))
    if not (inside.any() and times[i0] < 0.0 < times[i1]):
        why = "".join(f"; {w}" for w in bbh22_warnings(result))
        raise GwinferError(
            f"{label}: the input spans [{span[0]:.3g}, {span[1]:.3g}] M around its peak; it must cover model samples "
            f"(dt = {grid.dt} M) on both sides of the peak{why}"
        )
    sub = TimeGrid(float(times[i0]), float(times[i1]), grid.dt)
    result.h[i0 : i0 + sub.n] = align_to_grid(t, h, sub, label=label, peak=tp, extrapolate=slack)
    if i0 > 0 or i1 < times.size - 1:
        warnings.append(
            f"{label}: the input spans [{span[0]:.1f}, {span[1]:.1f}] M around its peak and covers "
            f"{100 * result.coverage:.1f} % of the model window [{grid.t_start}, {grid.t_end}] M; zero-padded outside"
        )
    warnings.extend(f"{label}: {w}" for w in bbh22_warnings(result))
    return result
