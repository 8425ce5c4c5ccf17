"""Where gwinfer hands work to bilby (p-p statistics and plot, derived parameters, corner plots), the numbers
agree with independent closed forms and scipy, and gwinfer's file names and one-line errors are kept."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import combine_pvalues, kstest

from gwinfer.errors import GwinferError
from gwinfer.evaluation.posterior import derived_parameters, make_result, sample_posterior, save_corner, save_result
from gwinfer.evaluation.pp import injection_results, pp_plot, pp_test


def test_bilby_pp_pvalues_equal_scipy_on_gwinfer_levels(tmp_path, conjugate_gaussian):
    """bilby's make_pp_plot p-values are scipy's KS test of gwinfer's credible levels, Fisher-combined."""
    rng = np.random.default_rng(21)
    theta = rng.normal(size=(120, 4))
    x = (theta + 0.5 * rng.normal(size=theta.shape)).astype(np.float32)
    out = pp_test(
        conjugate_gaussian(0.5, shift=0.1),
        (theta, x),
        n_injections=100,
        n_samples=300,
        seed=2,
        names=["a", "b", "c", "d"],
        out_dir=tmp_path,
    )
    cl = out["credible_levels"]
    ks = {k: kstest(cl[:, i], "uniform").pvalue for i, k in enumerate(out["names"])}
    assert out["ks_pvalues"] == ks
    assert out["combined_pvalue"] == combine_pvalues(list(ks.values()), method="fisher").pvalue
    assert out["plot"] == tmp_path / "pp.png" and out["plot"].stat().st_size > 10_000
    assert out["json"] == tmp_path / "pp.json" and sorted(p.name for p in tmp_path.iterdir()) == ["pp.json", "pp.png"]


def test_pp_plot_bad_input_one_line():
    rng = np.random.default_rng(22)
    samples, truths = rng.normal(size=(3, 50, 2)), rng.normal(size=(3, 2))
    results = injection_results(samples, truths, ["a", "b"])
    assert len(results) == 3 and results[1].injection_parameters == {"a": truths[1, 0], "b": truths[1, 1]}
    np.testing.assert_array_equal(results[2].posterior["b"].to_numpy(), samples[2, :, 1])
    with pytest.raises(GwinferError, match="confidence"):
        pp_plot(results, ["a", "b"], confidence=1.5)
    with pytest.raises(GwinferError, match="at least one"):
        pp_plot([], ["a", "b"])
    with pytest.raises(GwinferError, match=r"\(B, n, D\)"):
        injection_results(rng.normal(size=(3, 50, 2)), rng.normal(size=(3, 3)), ["a", "b"])


def test_derived_parameters_match_the_closed_forms():
    rng = np.random.default_rng(23)
    m1 = rng.uniform(10.0, 80.0, 1000)
    m2 = m1 * rng.uniform(0.1, 1.0, 1000)
    c1, c2 = rng.uniform(-0.99, 0.99, 1000), rng.uniform(-0.99, 0.99, 1000)
    mc = (m1 * m2) ** 0.6 / (m1 + m2) ** 0.2
    chi_eff = (m1 * c1 + m2 * c2) / (m1 + m2)
    out = derived_parameters({"mass_1": m1, "mass_2": m2, "chi_1": c1, "chi_2": c2})
    assert list(out) == ["mass_1", "mass_2", "chi_1", "chi_2", "mass_ratio", "chirp_mass", "total_mass", "chi_eff"]
    np.testing.assert_allclose(out["chirp_mass"], mc, rtol=1e-14)
    np.testing.assert_allclose(out["total_mass"], m1 + m2, rtol=1e-15)
    np.testing.assert_allclose(out["mass_ratio"], m2 / m1, rtol=1e-15)
    np.testing.assert_allclose(out["chi_eff"], chi_eff, rtol=0, atol=1e-15)
    back = derived_parameters({"chirp_mass": mc, "mass_ratio": m2 / m1, "chi_1": c1, "chi_2": c2})
    assert list(back) == ["chirp_mass", "mass_ratio", "chi_1", "chi_2", "mass_1", "mass_2", "total_mass", "chi_eff"]
    np.testing.assert_allclose(back["mass_1"], m1, rtol=1e-13)
    np.testing.assert_allclose(back["mass_2"], m2, rtol=1e-13)
    given = derived_parameters({"mass_1": m1, "mass_2": m2, "chirp_mass": np.ones(1000)})
    assert np.all(given["chirp_mass"] == 1.0)  # a given column is kept
    assert set(derived_parameters({"luminosity_distance": m1})) == {
        "luminosity_distance",
        "redshift",
        "comoving_distance",
    }
    assert set(derived_parameters({"chi_1": c1})) == {"chi_1"}


def test_corner_plots_keep_gwinfer_file_names(tmp_path):
    rng = np.random.default_rng(24)
    samples = {"mass_1": rng.normal(36.0, 2.0, 3000), "mass_2": rng.normal(29.0, 2.0, 3000)}
    result = make_result(samples, label="x", injection_parameters={"mass_1": 36.0})
    paths = save_result(result, tmp_path / "event", corner=True)
    assert paths == {"result": tmp_path / "event.json", "corner": tmp_path / "event_corner.png"}
    assert paths["corner"].stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["event.json", "event_corner.png"]
    one = save_corner(result, tmp_path / "one.png", parameters=["chirp_mass"])  # bilby's 1-D branch
    assert one.stat().st_size > 5_000
    with pytest.raises(GwinferError, match="no samples of"):
        save_corner(result, tmp_path / "bad.png", parameters=["spin"])


def test_sample_posterior_bad_batch_size():
    with pytest.raises(GwinferError, match="batch_size"):
        sample_posterior(None, np.zeros(2, dtype=np.float32), 10, batch_size=0)
