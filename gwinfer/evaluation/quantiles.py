"""The error table of Khan, Huerta & Das (2020): quantiles of prediction errors and of overlaps.

Errors are prediction minus truth for the mass ratio ``q = m1/m2 >= 1``, the spins ``s1, s2``
(dimensionless) and the two effective spins

    sigma_eff = (q s1 + s2) / (1 + q),      S_eff = (1 + 3/(4q)) s1 + (1 + 3q/4) s2,

each computed from the predicted and the true ``(q, s1, s2)`` (:mod:`gwinfer.physics.parameters`).
Each row gives min, first quartile, median, third quartile, max (numpy's default linear percentiles).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.physics.parameters import S_eff, sigma_eff

__all__ = ["PAPER_TABLE", "QUANTITIES", "error_table", "format_table", "prediction_errors", "quantile_row"]

#: Row order of the table.
QUANTITIES = ("q", "s1", "s2", "sigma_eff", "S_eff", "overlap")
_LABELS = {
    "q": "Δq",
    "s1": "Δs1",
    "s2": "Δs2",
    "sigma_eff": "Δσ_eff",
    "S_eff": "ΔS_eff",
    "overlap": "overlap",
}
_COLUMNS = ("min", "q1", "median", "q3", "max")
_COLUMN_LABELS = ("min", "Q1", "median", "Q3", "max")
#: Thresholds the paper counts with a strict "<" (its wording: "<= 0.97", "<= 0.90", "< 0.85").
_PAPER_STRICT = (0.85,)


def _row(mn: float, q1: float, med: float, q3: float, mx: float) -> dict[str, float]:
    """One table row as ``{"min", "q1", "median", "q3", "max"}``."""
    return {"min": mn, "q1": q1, "median": med, "q3": q3, "max": mx}


#: Published numbers: Khan, Huerta & Das, "Physics-inspired deep learning to characterize the
#: signal manifold of quasi-circular, spinning, non-precessing binary black hole mergers",
#: Phys. Lett. B 808 (2020) 135628 (arXiv:2004.09524), error table over ~197,000 test waveforms.
#: The paper prints the median of Δs2 as "-0.000" (a small negative number), stored as -0.0.
PAPER_TABLE: dict[str, Any] = {
    "table": {
        "q": _row(-0.074, -0.010, -0.004, 0.002, 0.188),
        "s1": _row(-0.687, -0.006, 0.002, 0.009, 0.441),
        "s2": _row(-0.466, -0.010, -0.0, 0.009, 0.767),
        "sigma_eff": _row(-0.074, -0.004, 0.002, 0.008, 0.098),
        "S_eff": _row(-0.516, -0.037, -0.004, 0.032, 0.493),
        "overlap": _row(0.278, 0.986, 0.995, 0.999, 1.000),
    },
    "overlap_fraction_below": {"0.97": 0.093, "0.90": 0.0041, "0.85": 0.0009},
    "n": 197000,
    "source": "Khan, Huerta & Das, Phys. Lett. B 808 (2020) 135628, arXiv:2004.09524, error table",
}


def _finite_1d(values: Any, name: str) -> np.ndarray:
    """``values`` as a non-empty, finite 1-D float array; a one-line GwinferError naming ``name`` otherwise."""
    try:
        a = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise GwinferError(f"{name} must be an array of real numbers") from None
    a = a.reshape(-1) if a.ndim <= 1 else a
    if a.ndim != 1:
        raise GwinferError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size == 0:
        raise GwinferError(f"{name} is empty")
    if not np.isfinite(a).all():
        raise GwinferError(f"{name} contains {int((~np.isfinite(a)).sum())} NaN or inf value(s)")
    return a


def quantile_row(values: Any, name: str = "values") -> dict[str, float]:
    """``{"min", "q1", "median", "q3", "max"}`` of a 1-D array (same unit as the values).

    q1/q3 are the 25th/75th percentiles with numpy's default (linear) interpolation.
    """
    a = _finite_1d(values, name)
    q1, med, q3 = np.percentile(a, [25.0, 50.0, 75.0])
    return _row(float(a.min()), float(q1), float(med), float(q3), float(a.max()))


def prediction_errors(pred: Mapping[str, np.ndarray], true: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Prediction minus truth of q, s1, s2, sigma_eff and S_eff (the table's rows, in that order).

    ``pred``, ``true``: ``{"q", "s1", "s2"}`` -> arrays of one shape; q = m1/m2 >= 1, spins dimensionless.
    The effective spins are computed from each side's (q, s1, s2) (:mod:`gwinfer.physics.parameters`), so
    all five errors are dimensionless.
    """
    p, t = pred, true
    errors = {k: p[k] - t[k] for k in ("q", "s1", "s2")}
    errors["sigma_eff"] = sigma_eff(p["q"], p["s1"], p["s2"]) - sigma_eff(t["q"], t["s1"], t["s2"])
    errors["S_eff"] = S_eff(p["q"], p["s1"], p["s2"]) - S_eff(t["q"], t["s1"], t["s2"])
    return errors


def _threshold_key(t: float) -> str:
    """JSON key of an overlap threshold: two decimals when exact (``"0.97"``), else the full repr."""
    return f"{t:.2f}" if round(t, 2) == t else repr(float(t))


def error_table(
    pred: Mapping[str, Any],
    true: Mapping[str, Any],
    overlaps: Any,
    thresholds: Sequence[float] = (0.97, 0.90, 0.85),
    *,
    strict: Sequence[float] = _PAPER_STRICT,
) -> dict[str, Any]:
    """The paper's error table.

    Parameters
    ----------
    pred, true : mapping with keys ``"q"``, ``"s1"``, ``"s2"`` -> arrays of shape (N,)
        Predicted and true mass ratio q = m1/m2 >= 1 and dimensionless aligned spins.
    overlaps : array (N,)
        Overlap of each predicted waveform with the true one (dimensionless).
    thresholds : overlap thresholds for the fractions below.
    strict : thresholds counted with ``overlap < t``; the others use ``overlap <= t``. The default
        follows the paper's wording: "<= 0.97", "<= 0.90", "< 0.85".

    Returns
    -------
    ``{"table": {quantity: row}, "overlap_fraction_below": {"0.97": f, ...}, "n": N}`` where the rows
    (see :func:`quantile_row`) are those of prediction - truth for q, s1, s2, sigma_eff, S_eff, and of
    the overlaps themselves.
    """
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for label, d in (("pred", pred), ("true", true)):
        if not isinstance(d, Mapping):
            raise GwinferError(f"{label} must be a mapping with keys q, s1, s2")
        missing = [k for k in ("q", "s1", "s2") if k not in d]
        if missing:
            raise GwinferError(f"{label} is missing key(s) {', '.join(missing)}")
        arrays[label] = {k: _finite_1d(d[k], f"{label}['{k}']") for k in ("q", "s1", "s2")}
        if np.any(arrays[label]["q"] <= 0):
            raise GwinferError(f"{label}['q'] must be positive (mass ratio q = m1/m2 >= 1)")
    ov = _finite_1d(overlaps, "overlaps")
    n = ov.size
    for label in ("pred", "true"):
        for k, a in arrays[label].items():
            if a.size != n:
                raise GwinferError(f"{label}['{k}'] has {a.size} values but overlaps has {n}")
    errors = prediction_errors(arrays["pred"], arrays["true"])
    table = {k: quantile_row(v, f"error of {k}") for k, v in errors.items()}
    table["overlap"] = quantile_row(ov, "overlaps")
    strict_set = {float(x) for x in strict}
    fractions = {}
    for thr in thresholds:
        thr = float(thr)
        below = ov < thr if thr in strict_set else ov <= thr
        fractions[_threshold_key(thr)] = float(below.mean())
    return {"table": table, "overlap_fraction_below": fractions, "n": int(n)}


def _fmt(x: float) -> str:
    """A table cell: three decimals."""
    return f"{x:.3f}"


def format_table(result: Mapping[str, Any], reference: Mapping[str, Any] | None = None) -> str:
    """Markdown table of an :func:`error_table` result (rows: quantities; columns: min/Q1/median/Q3/max).

    With ``reference`` (e.g. :data:`PAPER_TABLE`, or a bare ``{quantity: row}`` mapping) a reference row
    follows each quantity, and the overlap fractions are listed side by side.
    """
    if "table" not in result:
        raise GwinferError("result must be the dict returned by error_table (no 'table' key)")
    ref_table = None
    if reference is not None:
        ref_table = reference.get("table", reference)
    lines = ["| quantity | " + " | ".join(_COLUMN_LABELS) + " |", "|---" * (len(_COLUMNS) + 1) + "|"]
    for k in QUANTITIES:
        row = result["table"].get(k)
        if row is None:
            continue
        lines.append(f"| {_LABELS[k]} | " + " | ".join(_fmt(row[c]) for c in _COLUMNS) + " |")
        if ref_table is not None and k in ref_table:
            r = ref_table[k]
            lines.append(f"| {_LABELS[k]} (reference) | " + " | ".join(_fmt(r[c]) for c in _COLUMNS) + " |")
    fr = result.get("overlap_fraction_below", {})
    if fr:
        ref_fr = reference.get("overlap_fraction_below", {}) if reference is not None else {}
        lines += [
            "",
            "| overlap fraction below | this run | reference |" if ref_fr else "| overlap fraction below | this run |",
            "|---|---|---|" if ref_fr else "|---|---|",
        ]
        for key, val in fr.items():
            op = "<" if key in {_threshold_key(t) for t in _PAPER_STRICT} else "<="
            cells = f"| {op} {key} | {val:.4f} |"
            if ref_fr:
                rv = ref_fr.get(key)
                cells += f" {rv:.4f} |" if rv is not None else " – |"
            lines.append(cells)
    n_line = f"n = {result.get('n', '?')}"
    if reference is not None and "n" in reference:
        n_line += f" (reference n = {reference['n']})"
    lines += ["", n_line]
    return "\n".join(lines) + "\n"
