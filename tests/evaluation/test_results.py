"""Posterior results are bilby CBCResults people can use: derived and source-frame columns agree with bilby's
own conversions and astropy's Planck15, evidences are kept, the data's strain/PSD provenance is recorded in
bilby's place for it, and corner plots carry LaTeX labels with units (a GPS time after a stated offset)."""

from __future__ import annotations

import hashlib
import json

import bilby
import numpy as np
import pytest
from astropy.cosmology import Planck15
from bilby.gw import conversion
from bilby.gw.result import CBCResult

from gwinfer import __version__
from gwinfer.errors import GwinferError
from gwinfer.evaluation import figures
from gwinfer.evaluation.derived import derived_parameters, redshift
from gwinfer.evaluation.labels import axis_label, time_offset
from gwinfer.evaluation.posterior import make_result, save_corner, save_result
from gwinfer.evaluation.records import likelihood_record, simulation_record, strain_record

GPS = 1126259462.0


def _event_samples(n: int = 4000, seed: int = 31) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "chirp_mass": rng.normal(30.0, 1.0, n),
        "mass_ratio": rng.uniform(0.6, 0.95, n),
        "chi_1": rng.uniform(-0.5, 0.5, n),
        "chi_2": rng.uniform(-0.5, 0.5, n),
        "luminosity_distance": rng.uniform(200.0, 900.0, n),
        "geocent_time": GPS + 0.42 + rng.normal(0.0, 0.004, n),
    }


def test_redshift_matches_bilby_and_inverts_astropy_planck15():
    d = np.random.default_rng(32).uniform(50.0, 6000.0, 3000)
    z = redshift(d)
    np.testing.assert_allclose(Planck15.luminosity_distance(z).value, d, rtol=1e-7)
    np.testing.assert_allclose(z[:40], conversion.luminosity_distance_to_redshift(d[:40]), rtol=1e-7)
    few = redshift(d[:5])  # bilby directly
    np.testing.assert_allclose(few, conversion.luminosity_distance_to_redshift(d[:5]), rtol=1e-12)
    same = redshift(np.full(500, 440.0))  # one distinct distance (a fixed parameter)
    np.testing.assert_allclose(same, conversion.luminosity_distance_to_redshift(np.array([440.0]))[0], rtol=1e-12)
    bad = redshift(np.array([100.0, -1.0, np.nan]))
    assert np.isfinite(bad[0]) and np.isnan(bad[1:]).all()


def test_source_frame_columns_equal_bilby_generate_source_frame_parameters():
    s = _event_samples()
    out = derived_parameters(s)
    sub = {k: v[:30] for k, v in out.items() if k in ("mass_1", "mass_2", "chirp_mass", "total_mass")}
    ref = conversion.generate_source_frame_parameters(sub | {"luminosity_distance": s["luminosity_distance"][:30]})
    for key in ("redshift", "comoving_distance", "mass_1_source", "mass_2_source", "chirp_mass_source"):
        np.testing.assert_allclose(out[key][:30], ref[key], rtol=1e-7, err_msg=key)
    np.testing.assert_allclose(out["comoving_distance"], Planck15.comoving_distance(out["redshift"]).value, rtol=1e-9)
    np.testing.assert_allclose(out["total_mass_source"], out["total_mass"] / (1 + out["redshift"]), rtol=1e-15)
    np.testing.assert_allclose(
        out["chi_eff"], (out["mass_1"] * s["chi_1"] + out["mass_2"] * s["chi_2"]) / out["total_mass"], atol=1e-14
    )


def test_make_result_is_a_cbc_result_with_evidences_and_provenance(tmp_path):
    s = _event_samples()
    like = likelihood_record(None, {"H1": {"strain": {"path": "x.npy", "sha256": "ab"}, "psd": None}}, GPS)
    result = make_result(
        s,
        label="ev",
        meta_data={"gwinfer": {"model": "m"}, "likelihood": like},
        log_evidence=-10.0,
        log_evidence_err=0.25,
        log_bayes_factor=4.0,
    )
    assert isinstance(result, CBCResult)
    assert (result.log_evidence, result.log_evidence_err, result.log_noise_evidence) == (-10.0, 0.25, -14.0)
    gw = result.meta_data["gwinfer"]
    assert gw["model"] == "m" and gw["version"] == __version__ and gw["cosmology"]["name"] == "Planck15"
    assert "redshift" in gw["derived"] and "chirp_mass" not in gw["derived"]
    for ext in ("json", "hdf5"):
        path = save_result(result, tmp_path / f"ev.{ext}", corner=False)["result"]
        back = CBCResult.from_json(str(path)) if ext == "json" else bilby.result.read_in_result(str(path))
        assert isinstance(back, CBCResult)
        assert (back.log_evidence, back.log_bayes_factor, back.log_noise_evidence) == (-10.0, 4.0, -14.0)
        assert back.meta_data["likelihood"]["interferometers"]["H1"]["strain"]["sha256"] == "ab"
        assert back.meta_data["likelihood"]["start_time"] == GPS
        np.testing.assert_allclose(back.posterior["mass_1_source"], result.posterior["mass_1_source"])

    unknown = make_result(s, derived=False)
    assert np.isnan(unknown.log_evidence) and np.isnan(unknown.log_bayes_factor)
    assert unknown.meta_data["likelihood"] == {} and "cosmology" not in unknown.meta_data["gwinfer"]
    assert make_result(s, log_evidence=-3.0, log_noise_evidence=-5.0).log_bayes_factor == 2.0
    with pytest.raises(GwinferError, match="log_bayes_factor"):
        make_result(s, log_evidence=-3.0, log_noise_evidence=-5.0, log_bayes_factor=1.0)
    with pytest.raises(GwinferError, match="finite"):
        make_result(s, log_evidence=float("inf"))
    with pytest.raises(GwinferError, match="must be a number"):
        make_result(s, log_evidence="big")


def test_records_hash_the_strain_and_psd_files(tmp_path):
    seg = tmp_path / "seg.npy"
    np.save(seg, np.zeros((2, 8), dtype=np.float32))
    psds = {}
    for det in ("H1", "L1"):
        psds[det] = tmp_path / f"seg-{det}-psd.txt"
        psds[det].write_text(f"# {det}\n20 1e-46\n30 1e-46\n")
    side = {"kind": "whitened-segment", "detectors": ["H1", "L1"], "psds": {d: str(p) for d, p in psds.items()}}
    seg.with_suffix(".json").write_text(json.dumps(side))
    rec = strain_record(seg)
    assert set(rec) == {"H1", "L1"}
    assert rec["L1"]["strain"]["sha256"] == hashlib.sha256(seg.read_bytes()).hexdigest()
    assert rec["L1"]["psd"]["sha256"] == hashlib.sha256(psds["L1"].read_bytes()).hexdigest()
    seg.with_suffix(".json").unlink()
    assert strain_record(seg)["unknown"]["psd"] is None  # a bare array: the whitening PSD is unknown

    from gwinfer.data.simulate import SimulationConfig

    config = SimulationConfig(detectors=("H1", "L1"), psds=(str(psds["H1"]), "aLIGOZeroDetHighPower"), fs=256.0)
    sim = simulation_record(seg, config, injection=3, noise_seed=7)
    assert sim["H1"]["psd"]["sha256"] == hashlib.sha256(psds["H1"].read_bytes()).hexdigest()
    assert sim["L1"]["psd"]["source"] == "lalsimulation:SimNoisePSDaLIGOZeroDetHighPower"
    assert sim["H1"]["strain"]["injection"] == 3 and sim["H1"]["strain"]["noise_seed"] == 7
    like = likelihood_record(config, sim)
    assert like["sampling_frequency"] == 256.0 and like["maximum_frequency"] == 128.0
    assert like["waveform_arguments"]["waveform_approximant"] == "IMRPhenomPv2"


def test_labels_carry_bilby_names_units_and_gps_offsets():
    assert axis_label("chirp_mass") == r"$\mathcal{M}$ [$M_\odot$]"
    assert axis_label("luminosity_distance") == "$d_L$ [Mpc]"
    assert axis_label("chi_eff") == r"$\chi_{\rm eff}$"
    assert axis_label("mass_1_source") == r"$m_1^{\rm src}$ [$M_\odot$]"
    assert axis_label("geocent_time", offset=GPS) == "$t_c - 1126259462$ [s]"
    prior = bilby.core.prior.Uniform(0, 1, name="geocent_time", latex_label="$t_c$ [GPS s]", unit="s")
    assert axis_label("geocent_time", prior, GPS) == "$t_c - 1126259462$ [s]"
    assert time_offset("geocent_time", [GPS + 0.4, GPS + 0.5]) == GPS
    assert time_offset("geocent_time", [0.4, 0.5]) == 0.0  # seconds after a segment start: no offset
    assert time_offset("chirp_mass", [2e6]) == 0.0


def test_corner_plot_labels_units_and_readable_gps_time(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "save_png", lambda fig, path, dpi=100: drawn.append(fig) or path)
    s = _event_samples()
    result = make_result(s, injection_parameters={"chirp_mass": 30.5, "geocent_time": GPS + 0.423})
    keys = ["chirp_mass", "chi_eff", "luminosity_distance", "geocent_time"]
    save_corner(result, tmp_path / "c.png", keys)
    axes = drawn[0].get_axes()
    xlabels = [axes[12 + i].get_xlabel() for i in range(4)]  # the bottom row
    assert xlabels == [r"$\mathcal{M}$ [$M_\odot$]", r"$\chi_{\rm eff}$", "$d_L$ [Mpc]", "$t_c - 1126259462$ [s]"]
    t_axis = axes[15]
    lo, hi = t_axis.get_xlim()
    assert 0.3 < lo < hi < 0.5  # plotted after the offset: ticks read 0.42, not 1.13e+09
    titles = [axes[5 * i].get_title() for i in range(4)]
    assert all("e+" not in t for t in titles) and titles[3].startswith("${0.42")
    med, (lo5, hi95) = np.median(s["chirp_mass"]), np.quantile(s["chirp_mass"], [0.05, 0.95])
    assert titles[0] == f"${{{med:.1f}}}_{{-{med - lo5:.1f}}}^{{+{hi95 - med:.1f}}}$"  # 2 digits of the error
    truth_lines = [ln.get_xdata()[0] for ln in t_axis.get_lines() if len(set(ln.get_xdata())) == 1]
    assert any(abs(x - 0.423) < 1e-6 for x in truth_lines)  # the injection, offset like the samples
