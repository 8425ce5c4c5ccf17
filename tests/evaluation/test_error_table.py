"""Tests of gwinfer.evaluation.quantiles (the paper's quantile table of prediction errors)."""

from __future__ import annotations

import numpy as np
import pytest

from gwinfer.errors import GwinferError
from gwinfer.evaluation.quantiles import PAPER_TABLE, error_table, format_table, quantile_row

ROW_KEYS = {"min", "q1", "median", "q3", "max"}
QUANTITIES = {"q", "s1", "s2", "sigma_eff", "S_eff", "overlap"}


def _sample(rng: np.random.Generator, n: int):
    q = rng.uniform(1.0, 8.0, n)
    s1 = rng.uniform(-0.8, 0.8, n)
    s2 = rng.uniform(-0.8, 0.8, n)
    true = {"q": q, "s1": s1, "s2": s2}
    pred = {"q": q + rng.normal(0, 0.05, n), "s1": s1 + rng.normal(0, 0.02, n), "s2": s2 + rng.normal(0, 0.03, n)}
    overlaps = np.clip(1.0 - rng.exponential(0.01, n), 0.0, 1.0)
    return pred, true, overlaps


def _independent_row(x: np.ndarray) -> dict[str, float]:
    """Quantiles computed independently: sorted-array linear interpolation (numpy's default method)."""
    xs = np.sort(x)
    n = xs.size

    def pct(p: float) -> float:
        pos = p / 100.0 * (n - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, n - 1)
        return float(xs[lo] + (pos - lo) * (xs[hi] - xs[lo]))

    return {"min": float(xs[0]), "q1": pct(25), "median": pct(50), "q3": pct(75), "max": float(xs[-1])}


def test_quantile_row_matches_independent_computation():
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 101, 1000):
        x = rng.normal(size=n)
        row = quantile_row(x)
        assert set(row) == ROW_KEYS and all(type(v) is float for v in row.values())
        ref = _independent_row(x)
        np.testing.assert_allclose([row[k] for k in ref], list(ref.values()), rtol=0, atol=1e-14)
        np.testing.assert_allclose([row["q1"], row["median"], row["q3"]], np.percentile(x, [25, 50, 75]), atol=1e-14)


def test_quantile_row_small_known_values():
    assert quantile_row([4.0, 1.0, 3.0, 2.0]) == {"min": 1.0, "q1": 1.75, "median": 2.5, "q3": 3.25, "max": 4.0}


def test_error_table_structure_and_values():
    rng = np.random.default_rng(1)
    pred, true, ov = _sample(rng, 2001)
    res = error_table(pred, true, ov)
    assert set(res) == {"table", "overlap_fraction_below", "n"}
    assert set(res["table"]) == QUANTITIES
    assert all(set(r) == ROW_KEYS for r in res["table"].values())
    assert list(res["overlap_fraction_below"]) == ["0.97", "0.90", "0.85"]
    assert res["n"] == 2001

    # errors are prediction - truth; effective spins from the formulas, computed here independently
    def sig(q, a, b):
        return (q * a + b) / (1 + q)

    def seff(q, a, b):
        return (1 + 3 / (4 * q)) * a + (1 + 3 * q / 4) * b

    expected = {k: pred[k] - true[k] for k in ("q", "s1", "s2")}
    expected["sigma_eff"] = sig(pred["q"], pred["s1"], pred["s2"]) - sig(true["q"], true["s1"], true["s2"])
    expected["S_eff"] = seff(pred["q"], pred["s1"], pred["s2"]) - seff(true["q"], true["s1"], true["s2"])
    expected["overlap"] = ov
    for k, x in expected.items():
        ref = _independent_row(x)
        for c in ROW_KEYS:
            assert res["table"][k][c] == pytest.approx(ref[c], abs=1e-12), (k, c)
    # sign convention: a prediction that is too large gives positive errors
    shifted = error_table({**true, "q": true["q"] + 0.5}, true, ov)
    assert shifted["table"]["q"]["min"] == pytest.approx(0.5) and shifted["table"]["s1"]["max"] == 0.0


def test_overlap_fractions_use_paper_comparisons():
    ov = np.array([0.97, 0.90, 0.85, 0.5, 0.99, 1.0, 0.96, 0.86])
    z = np.zeros(ov.size)
    d = {"q": z + 2.0, "s1": z, "s2": z}
    fr = error_table(d, d, ov)["overlap_fraction_below"]
    assert fr["0.97"] == pytest.approx(6 / 8)  # <= 0.97: 0.97, 0.90, 0.85, 0.5, 0.96, 0.86
    assert fr["0.90"] == pytest.approx(4 / 8)  # <= 0.90: 0.90, 0.85, 0.5, 0.86
    assert fr["0.85"] == pytest.approx(1 / 8)  # <  0.85: only 0.5 (0.85 itself excluded)
    fr2 = error_table(d, d, ov, thresholds=(0.85, 0.95), strict=())["overlap_fraction_below"]
    assert fr2 == {"0.85": pytest.approx(2 / 8), "0.95": pytest.approx(4 / 8)}


def test_nan_and_bad_inputs_raise():
    rng = np.random.default_rng(2)
    pred, true, ov = _sample(rng, 50)
    bad = dict(pred)
    bad["s1"] = pred["s1"].copy()
    bad["s1"][3] = np.nan
    with pytest.raises(GwinferError, match="NaN") as info:
        error_table(bad, true, ov)
    assert "\n" not in str(info.value)
    ov_bad = ov.copy()
    ov_bad[0] = np.inf
    with pytest.raises(GwinferError, match="overlaps"):
        error_table(pred, true, ov_bad)
    with pytest.raises(GwinferError, match="missing"):
        error_table({"q": pred["q"], "s1": pred["s1"]}, true, ov)
    with pytest.raises(GwinferError, match="values but overlaps"):
        error_table(pred, true, ov[:-1])
    with pytest.raises(GwinferError, match="positive"):
        error_table({**pred, "q": pred["q"] * 0.0}, true, ov)
    with pytest.raises(GwinferError, match="NaN"):
        quantile_row([1.0, np.nan])
    with pytest.raises(GwinferError, match="empty"):
        quantile_row([])


def test_paper_table_and_markdown():
    t = PAPER_TABLE["table"]
    assert set(t) == QUANTITIES
    assert t["q"] == {"min": -0.074, "q1": -0.010, "median": -0.004, "q3": 0.002, "max": 0.188}
    assert t["S_eff"]["min"] == -0.516 and t["overlap"]["median"] == 0.995
    assert PAPER_TABLE["overlap_fraction_below"] == {"0.97": 0.093, "0.90": 0.0041, "0.85": 0.0009}
    for r in t.values():
        assert r["min"] <= r["q1"] <= r["median"] <= r["q3"] <= r["max"]
    rng = np.random.default_rng(3)
    res = error_table(*_sample(rng, 300))
    md = format_table(res, PAPER_TABLE)
    lines = md.splitlines()
    assert lines[0].startswith("| quantity | min | Q1 | median | Q3 | max |")
    assert sum(line.startswith("| Δq") for line in lines) == 2  # this run + reference
    assert "| Δq (reference) | -0.074 | -0.010 | -0.004 | 0.002 | 0.188 |" in lines
    assert f"| overlap | {res['table']['overlap']['min']:.3f}" in md
    assert "< 0.85" in md and "<= 0.97" in md
    plain = format_table(res)
    assert "reference" not in plain and plain.count("\n| Δ") == 5
