"""gwinfer.evaluation.published: reading the published posteriors and comparing ours against them.

References independent of the code under test: ``posterior_summaries_derived.csv`` (medians and 5/95 %
computed separately from the same eight files, printed to 4 significant figures), the 2-OGC files' own stored
``chi_eff`` column, ``numpy.quantile`` of integer-weighted samples expanded with ``numpy.repeat``, and the
JSD bound of identical sets.
"""

from __future__ import annotations

import csv
import json
import math

import h5py
import numpy as np
import pytest

from gwinfer.errors import GwinferError
from gwinfer.evaluation.published import (
    EVENTS,
    compare_to_published,
    comparison_json,
    comparison_markdown,
    overlay_corner,
    published_path,
    published_samples,
    systematic_resample,
    weighted_quantile,
)
from gwinfer.external import external_dir

EXT = external_dir()
POSTERIORS = EXT / "posteriors"
SUMMARIES = EXT / "posterior_summaries_derived.csv"
needs_external = pytest.mark.skipif(not SUMMARIES.is_file(), reason=f"external data not found in {EXT}")

# CSV parameter name (detector frame) -> our column
CSV_NAMES = {
    "chirp_mass": "chirp_mass",
    "mass_1": "mass_1",
    "mass_2": "mass_2",
    "mass_ratio_q=m2/m1": "mass_ratio",
    "chi_eff": "chi_eff",
    "luminosity_distance_Mpc": "luminosity_distance",
}


def _printed_match(value: float, printed: str) -> bool:
    """``value`` agrees with the CSV's 4-significant-figure ``printed`` number to half its last digit."""
    ref = float(printed)
    half_ulp = 0.5 * 10.0 ** (math.floor(math.log10(abs(ref))) - 3)
    return abs(value - ref) <= half_ulp * (1 + 1e-9)


@needs_external
def test_published_summaries_match_the_independent_csv():
    with open(SUMMARIES, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["parameter"] in CSV_NAMES and r["mass_frame"] != "source"]
    assert len(rows) == 8 * len(CSV_NAMES)
    cache: dict[str, dict] = {}
    bad = []
    for r in rows:
        release = "2-ogc" if r["file"].startswith("2-ogc") else None
        key = f"{r['event']}/{release}"
        if key not in cache:
            cache[key] = published_samples(r["event"], release)
            assert cache[key].path.name == r["file"]
        x = cache[key][CSV_NAMES[r["parameter"]]]
        assert x.size == int(r["n_samples"])
        for col, qv in (("median", 0.5), ("p05", 0.05), ("p95", 0.95)):
            v = float(np.quantile(x, qv))
            if not _printed_match(v, r[col]):
                bad.append(f"{r['file']} {r['parameter']} {col}: {v:.6g} vs {r[col]}")
    assert not bad, bad


@needs_external
@pytest.mark.parametrize("event", EVENTS)
def test_columns_are_detector_frame_bilby_names(event):
    s = published_samples(event)
    ogc = published_samples(event, "2-ogc")
    for p in (s, ogc):
        n = p["chirp_mass"].size
        assert all(np.asarray(v).shape == (n,) for v in p.values())
        assert np.all(p["mass_ratio"] <= 1) and np.all(p["mass_1"] >= p["mass_2"])
        np.testing.assert_allclose(p["mass_ratio"], p["mass_2"] / p["mass_1"], rtol=1e-12)
        assert np.all((p["psi"] >= 0) & (p["psi"] < np.pi))
        assert np.all((p["theta_jn"] >= 0) & (p["theta_jn"] <= np.pi))
    # the two releases are separate analyses of the same data: detector-frame chirp masses within 1 %
    assert abs(np.median(s["chirp_mass"]) / np.median(ogc["chirp_mass"]) - 1) < 0.01
    assert abs(np.median(s["geocent_time"]) - np.median(ogc["geocent_time"])) < 0.01
    # 2-OGC stores its own chi_eff (computed by PyCBC): ours, from masses, magnitudes and tilts, equals it
    with h5py.File(ogc.path, "r") as f:
        stored = f["samples/chi_eff"][()]
    np.testing.assert_allclose(ogc["chi_eff"], stored, atol=1e-10)


def test_unknown_event_release_or_missing_file(tmp_path, monkeypatch):
    with pytest.raises(GwinferError, match="accepted: GW150914, GW151226, GW170104, GW170814"):
        published_path("GW190521")
    with pytest.raises(GwinferError, match="accepted: pycbc-inference-paper, o2-bbh-pe, 2-ogc"):
        published_path("GW150914", "gwtc-1")
    with pytest.raises(GwinferError, match="o2-bbh-pe.*no posterior of GW150914"):
        published_path("GW150914", "o2-bbh-pe")
    monkeypatch.setenv("GWINFER_EXTERNAL", str(tmp_path))
    with pytest.raises(GwinferError, match=r"no file matching 2-ogc_GW170814_\*\.hdf") as err:
        published_samples("gw170814", "2-ogc")
    assert "\n" not in str(err.value)


def test_weighted_quantile_matches_numpy_on_repeated_samples():
    rng = np.random.default_rng(1)
    x = rng.normal(size=3000)
    counts = rng.integers(1, 6, size=x.size)
    q = [0.05, 0.25, 0.5, 0.75, 0.95]
    ref = np.quantile(np.repeat(x, counts), q)
    got = weighted_quantile(x, q, counts)
    # the two definitions differ by at most the gap between neighbouring samples (~1e-3 here)
    np.testing.assert_allclose(got, ref, atol=5e-3)
    # equal weights: exactly numpy's default method; zero weights: those samples ignored
    np.testing.assert_allclose(weighted_quantile(x, q, np.full(x.size, 0.3)), np.quantile(x, q), atol=1e-12)
    w0 = np.where(np.arange(x.size) % 3 == 0, 0.0, 2.0)
    np.testing.assert_allclose(weighted_quantile(x, q, w0), np.quantile(x[w0 > 0], q), atol=1e-12)
    with pytest.raises(GwinferError, match="non-negative"):
        weighted_quantile(x, q, -counts)


def test_systematic_resample_follows_the_weights():
    w = np.array([0.0, 1.0, 3.0, 0.0, 6.0])
    idx = systematic_resample(w, 1000, seed=3)
    assert idx.size == 1000 and set(np.unique(idx)) == {1, 2, 4}
    np.testing.assert_array_equal(np.bincount(idx, minlength=5), [0, 100, 300, 0, 600])
    np.testing.assert_array_equal(idx, systematic_resample(w, 1000, seed=3))


def _gaussian_set(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "chirp_mass": 31 + 0.9 * rng.normal(size=n),
        "mass_ratio": rng.uniform(0.6, 1.0, size=n),
        "chi_eff": 0.1 * rng.normal(size=n),
        "luminosity_distance": 450 + 100 * rng.normal(size=n),
        "theta_jn": rng.uniform(0, np.pi, size=n),
    }


@pytest.fixture(scope="module")
def published():
    """The GW150914 published posterior when present, else a synthetic stand-in of the same columns."""
    return published_samples("GW150914") if SUMMARIES.is_file() else _gaussian_set()


def test_published_against_itself_and_a_shifted_copy(published):
    rows = compare_to_published(published, published)
    assert [r["parameter"] for r in rows] == ["chirp_mass", "mass_ratio", "chi_eff", "luminosity_distance", "theta_jn"]
    for r in rows:
        assert r["inside"] is True
        assert r["width_ratio"] == pytest.approx(1.0, abs=1e-12)
        assert r["jsd"] < 1e-6
        assert r["median"] == r["published_median"]
    shifted = {k: np.asarray(v) for k, v in published.items()}
    width = np.quantile(shifted["chirp_mass"], 0.95) - np.quantile(shifted["chirp_mass"], 0.05)
    shifted["chirp_mass"] = shifted["chirp_mass"] + 1.2 * width
    (row,) = compare_to_published(shifted, published, parameters=("chirp_mass",))
    assert row["inside"] is False and row["width_ratio"] == pytest.approx(1.0, abs=1e-9)
    assert row["median"] == pytest.approx(row["published_median"] + 1.2 * width)
    assert row["jsd"] > 0.5  # nearly disjoint: close to ln 2 = 0.693
    with pytest.raises(GwinferError, match="no 'spin_1z'"):
        compare_to_published(published, published, parameters=("spin_1z",))


def test_weighted_comparison_equals_the_repeated_set(published):
    """Integer weights must give what the same samples repeated give (quantiles and, via resampling, the JSD)."""
    ours = _gaussian_set(2000, seed=5)
    counts = np.random.default_rng(2).integers(1, 4, size=2000)
    rep = {k: np.repeat(v, counts) for k, v in ours.items()}
    weighted = compare_to_published(ours, published, weights=counts, seed=0)
    plain = compare_to_published(rep, published)
    for a, b in zip(weighted, plain):
        for key in ("median", "p05", "p95"):
            assert a[key] == pytest.approx(b[key], abs=0.02 * (b["p95"] - b["p05"]))
        assert a["jsd"] == pytest.approx(b["jsd"], abs=0.01)
        assert a["n"] == 2000 and a["ess"] == pytest.approx(counts.sum() ** 2 / np.sum(counts**2))


def test_markdown_and_json(published):
    rows = compare_to_published(published, published, parameters=("chirp_mass", "luminosity_distance"))
    rows[1]["width_ratio"] = float("nan")
    md = comparison_markdown(rows, "GW150914")
    assert md.startswith("### GW150914\n")
    assert "| chirp_mass | Msun |" in md and "| luminosity_distance | Mpc |" in md and "JSD (nats)" in md
    data = comparison_json(rows, "GW150914", published)
    text = json.dumps(data, allow_nan=False)
    back = json.loads(text)
    assert back["rows"][0]["inside"] is True and back["rows"][1]["width_ratio"] is None
    if SUMMARIES.is_file():
        assert back["event"] == "GW150914" and back["release"] == "pycbc-inference-paper"
        assert back["published_file"] == published_path("GW150914").name


def test_overlay_corner_writes_a_png(published, tmp_path):
    rng = np.random.default_rng(4)
    pick = rng.integers(0, len(published["chirp_mass"]), 3000)
    ours = {k: np.asarray(v)[pick] for k, v in published.items()}
    ours["chirp_mass"] = ours["chirp_mass"] + 0.8
    w = rng.uniform(0.2, 1.0, size=3000)
    out = overlay_corner(ours, published, tmp_path / "sub" / "overlay.png", weights=w, title="GW150914")
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["overlay.png"]  # no temporary file left
