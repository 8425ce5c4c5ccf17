"""Priors: named files load through bilby, sample reproducibly and follow their analytic marginals."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import stats

from gwinfer.errors import GwinferError
from gwinfer.external import external_dir
from gwinfer.physics.priors import ALLOWED, NAMES, PRIOR_DIR, complete_parameters, load_prior, sample

SUMMARIES = external_dir() / "posterior_summaries_derived.csv"
EVENTS_JSON = external_dir() / "strain/BBH_events_v3.json"
N = 20000


@pytest.fixture(scope="module")
def gw5d():
    return sample(load_prior("gw5d"), N, seed=11)


def _ks(x, cdf) -> float:
    return stats.kstest(x, cdf).pvalue


def test_gw5d_marginals_follow_analytic_densities(gw5d):
    m1, m2, d = gw5d["mass_1"], gw5d["mass_2"], gw5d["luminosity_distance"]
    assert m1.shape == (N,) and np.all(m2 <= m1)
    assert np.all((m2 >= 35) & (m1 <= 80))
    # p(dL) ~ dL^2 on [1000, 3000] Mpc: CDF (d^3 - a^3) / (b^3 - a^3)
    a, b = 1000.0, 3000.0
    cdf_d = lambda x: (np.clip(x, a, b) ** 3 - a**3) / (b**3 - a**3)  # noqa: E731
    assert _ks(d, cdf_d) > 0.01
    assert _ks(d, stats.uniform(a, b - a).cdf) < 1e-6  # the test can tell uniform-in-distance apart
    # uniform on the triangle 35 <= m2 <= m1 <= 80: p(m1) ~ (m1 - 35), p(m2) ~ (80 - m2)
    assert _ks(m1, lambda x: ((np.clip(x, 35, 80) - 35) / 45) ** 2) > 0.01
    assert _ks(m2, lambda x: 1 - ((80 - np.clip(x, 35, 80)) / 45) ** 2) > 0.01
    assert _ks(m1, stats.uniform(35, 45).cdf) < 1e-6
    assert _ks(gw5d["geocent_time"], stats.uniform(0.65, 0.2).cdf) > 0.01
    assert _ks(gw5d["phase"], stats.uniform(0, 2 * np.pi).cdf) > 0.01
    np.testing.assert_allclose(gw5d["mass_ratio"], m2 / m1)


def test_sampling_is_reproducible_and_leaves_bilby_rng_alone(gw5d):
    from bilby.core.utils import random as brandom

    before = brandom.Generator.rng
    again = sample(load_prior("gw5d"), N, seed=11)
    assert brandom.Generator.rng is before
    for k in gw5d:
        np.testing.assert_array_equal(gw5d[k], again[k])
    other = sample(load_prior("gw5d"), N, seed=12)
    assert not np.array_equal(other["mass_1"], gw5d["mass_1"])


def test_gw8d_spins_and_inclination():
    s = sample(load_prior("gw8d"), N, seed=3)
    assert set(s) >= {"chi_1", "chi_2", "theta_jn", "mass_1", "mass_2", "luminosity_distance", "geocent_time", "phase"}
    assert np.all(s["mass_2"] <= s["mass_1"])
    for k in ("chi_1", "chi_2"):
        assert _ks(s[k], stats.uniform(-1, 2).cdf) > 0.01
    # cos(theta_jn) uniform on [-1, 1]  <=>  CDF (1 - cos theta) / 2 on [0, pi]
    assert _ks(np.cos(s["theta_jn"]), stats.uniform(-1, 2).cdf) > 0.01
    assert _ks(s["theta_jn"], stats.uniform(0, np.pi).cdf) < 1e-6


@pytest.mark.parametrize("name", ["hl-bbh", "hl-o1"])
def test_hl_bbh_covers_the_o1_o2_events(name):
    prior = load_prior(name)
    rng = {k: (prior[k].minimum, prior[k].maximum) for k in ("chirp_mass", "mass_ratio", "luminosity_distance")}
    wanted = {"GW150914", "GW151226", "GW170104"}
    seen = set()
    with SUMMARIES.open() as f:
        for row in csv.DictReader(f):
            if row["event"] not in wanted:
                continue
            key = {"chirp_mass": "chirp_mass", "mass_ratio_q=m2/m1": "mass_ratio",
                   "luminosity_distance_Mpc": "luminosity_distance"}.get(row["parameter"])  # fmt: skip
            if key is None or (key == "chirp_mass" and row["mass_frame"] != "detector"):
                continue
            lo, hi = rng[key]
            assert lo <= float(row["p05"]) and float(row["p95"]) <= hi, (row["event"], key)
            seen.add(row["event"])
    assert seen == wanted
    # LVT151012: the LOSC tutorial template (detector-frame masses)
    ev = json.loads(EVENTS_JSON.read_text())["LVT151012"]
    c = complete_parameters({"mass_1": ev["m1"], "mass_2": ev["m2"]})
    assert rng["chirp_mass"][0] <= c["chirp_mass"] <= rng["chirp_mass"][1]
    assert rng["mass_ratio"][0] <= c["mass_ratio"] <= 1.0
    s = sample(prior, 5000, seed=5)
    assert np.all((s["mass_2"] >= 3) & (s["mass_1"] <= 100) & (s["mass_2"] <= s["mass_1"] * (1 + 1e-12)))
    assert np.all(np.abs(s["geocent_time"]) <= 0.1)
    np.testing.assert_allclose(s["mass_2"] / s["mass_1"], s["mass_ratio"], rtol=1e-12)
    t_trig = 1126259462.44
    shifted = sample(load_prior(name, time_offset=t_trig), 2000, seed=5)
    assert np.all(np.abs(shifted["geocent_time"] - t_trig) <= 0.1 + 1e-6)


def test_chirp_mass_conversion_matches_bilby():
    from bilby.gw.conversion import chirp_mass_and_mass_ratio_to_component_masses

    mc, q = np.array([9.7, 25.0, 31.0]), np.array([0.25, 0.6, 0.9])
    m1, m2 = chirp_mass_and_mass_ratio_to_component_masses(mc, q)
    c = complete_parameters({"chirp_mass": mc, "mass_ratio": q})
    np.testing.assert_allclose(c["mass_1"], m1, rtol=1e-12)
    np.testing.assert_allclose(c["mass_2"], m2, rtol=1e-12)


def test_unknown_parameter_and_bad_syntax_give_one_line_errors(tmp_path):
    bad = tmp_path / "bad.prior"
    bad.write_text(
        (PRIOR_DIR / "gw5d.prior").read_text() + "redshift = Uniform(name='redshift', minimum=0, maximum=1)\n"
    )
    with pytest.raises(GwinferError, match="redshift") as err:
        load_prior(bad)
    assert "\n" not in str(err.value) and "accepted" in str(err.value)
    broken = tmp_path / "broken.prior"
    broken.write_text((PRIOR_DIR / "gw5d.prior").read_text() + "psi = NoSuchPrior(minimum=0, maximum=1)\n")
    with pytest.raises(GwinferError, match="cannot parse") as err:
        load_prior(broken)
    assert "\n" not in str(err.value)
    with pytest.raises(GwinferError, match="named priors"):
        load_prior("gw6d")
    assert "redshift" not in ALLOWED


@pytest.mark.parametrize("name", NAMES)
def test_files_round_trip_through_bilby(name, tmp_path):
    from bilby.core.prior import PriorDict

    prior = load_prior(name)
    direct = PriorDict(filename=str(PRIOR_DIR / f"{name}.prior"))  # bilby alone
    assert set(prior) == set(direct)
    prior.to_file(str(tmp_path), name)
    back = load_prior(tmp_path / f"{name}.prior")
    assert set(back) == set(prior)
    for k in prior:
        assert back[k] == prior[k] == direct[k], k
    a, b = sample(prior, 500, seed=9), sample(back, 500, seed=9)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
