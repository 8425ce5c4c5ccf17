"""Real-data path (gwinfer.evaluation.analyze, ``gwinfer psd`` / ``gwinfer analyze``) on the GWOSC GW150914 files.

References are independent of the code under test: gwpy's own median-Welch PSD, the analytic in-band variance of
whitened Gaussian noise (``band_fraction``), the GWOSC event time, and bilby reading the result back.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gwinfer.cli import main
from gwinfer.data.simulate import SimulationConfig
from gwinfer.detectors.whitening import band_fraction
from gwinfer.errors import GwinferError
from gwinfer.evaluation.analyze import analyze, event_data, event_psd, noise_check
from gwinfer.external import external_dir
from gwinfer.models import build_estimator, save_estimator

STRAIN = external_dir() / "strain"
H1 = STRAIN / "H-H1_LOSC_4_V2-1126259446-32.hdf5"
L1 = STRAIN / "L-L1_LOSC_4_V2-1126259446-32.hdf5"
GPS = 1126259462.44  # GW150914 (BBH_events_v3.json)
REPO = Path(__file__).resolve().parents[2]
NAMES = ["chirp_mass", "mass_ratio", "chi_1", "chi_2", "luminosity_distance", "theta_jn", "geocent_time"]

pytestmark = pytest.mark.skipif(not H1.is_file(), reason=f"GWOSC strain not found in {STRAIN}")


def hl_config(**kw) -> SimulationConfig:
    base = dict(
        prior="hl-o1",
        n=10,
        fs=1024.0,
        duration=2.0,
        detectors=("H1", "L1"),
        psds=(str(REPO / "configs/psd/GW150914-H1.txt"), str(REPO / "configs/psd/GW150914-L1.txt")),
        f_min=20.0,
        f_max=400.0,
        parameters=tuple(NAMES),
        gps_start=GPS - 1.5,
        time_offset=1.5,
    )
    return SimulationConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained svd+IAF estimator carrying the two-detector simulation config (what analyze reads)."""
    torch.manual_seed(0)
    cfg = hl_config()
    model = build_estimator(
        {
            "kind": "iaf",
            "config": {
                "embedding": {"kind": "svd", "components": 16, "hidden": [16], "context_dim": 8},
                "transforms": 2,
                "hidden": [16],
            },
        },
        len(NAMES),
        (2, cfg.n_samples),
    )
    theta = torch.tensor([[28.0, 0.8, 0.0, 0.0, 500.0, 1.0, 1.5]]) + 0.1 * torch.randn(64, len(NAMES))
    model.fit_standardization(theta, torch.randn(64, 2, cfg.n_samples))
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_estimator(path, model, metadata={"names": NAMES, "simulation": json.loads(cfg.to_json())})
    return path


def test_event_psd_matches_gwpy_median_welch():
    from gwpy.timeseries import TimeSeries

    psd = event_psd(H1, GPS, 1024.0, seglen=1.0)
    ts = TimeSeries.read(str(H1), format="hdf5.gwosc").resample(1024)
    before = ts.crop(ts.t0.value, GPS - 2.0)  # the longer off-source side for GW150914 (16.44 s > 13.56 s)
    ref = before.psd(fftlength=1, overlap=0.5, window="hann", method="median")
    f = np.arange(20.0, 400.0)
    np.testing.assert_allclose(psd(f), np.interp(f, ref.frequencies.value, ref.value), rtol=0.02)


def test_whitened_off_source_noise_has_the_in_band_variance(tiny_model):
    from gwinfer.models import load_estimator

    model, _ = load_estimator(tiny_model)
    cfg = hl_config()
    out = noise_check(model, {"H1": H1, "L1": L1}, GPS, cfg, offsets=(-8.0, -5.0, 6.0, 9.0))
    expected = band_fraction(cfg.n_samples, cfg.fs, cfg.f_min, cfg.f_max)  # 0.74 for [20, 400] Hz of 512
    assert abs(out["sample_variance"] / expected - 1) < 0.08, (out, expected)
    # a random projection's rows are not in-band, so only check that the number exists and is O(1)
    assert 0.3 < out["projected_variance"] < 1.5


def test_event_segment_holds_gw150914_at_the_trigger():
    cfg = hl_config()
    x, seg0, psds = event_data({"H1": H1, "L1": L1}, GPS, cfg)
    assert x.shape == (2, 2048) and x.dtype == np.float32
    assert seg0 == pytest.approx(GPS - 1.5, abs=1 / 1024)
    # the loudest whitened excursion (smoothed over 10 ms) sits within 30 ms of the GWOSC event time in both
    kernel = np.ones(10) / 10
    for row in x:
        power = np.convolve(row.astype(float) ** 2, kernel, mode="same")
        t_peak = seg0 + np.argmax(power) / cfg.fs
        assert abs(t_peak - GPS) < 0.03, t_peak - GPS
    assert set(psds) == {"H1", "L1"}


def test_analyze_writes_a_bilby_result(tiny_model, tmp_path):
    from bilby.core.result import read_in_result

    out = analyze(tiny_model, {"H1": H1, "L1": L1}, GPS, tmp_path / "gw150914.json", n=500, corner=False)
    res = read_in_result(str(out["result"]))
    assert len(res.posterior) == 500
    assert {"chirp_mass", "mass_ratio", "chi_eff", "mass_1", "mass_2"} <= set(res.posterior.columns)
    t = res.posterior["geocent_time"].to_numpy()
    assert np.median(np.abs(t - GPS)) < 5.0  # back in GPS seconds
    g = res.meta_data["gwinfer"]
    assert g["files"]["H1"]["sha256"].startswith("fa170ebc")  # SOURCES.md
    assert g["segment_start"] == pytest.approx(GPS - 1.5, abs=1e-3)


def test_analyze_cli_and_bad_input(tiny_model, tmp_path, capsys):
    assert (
        main(
            [
                "analyze",
                "--model",
                str(tiny_model),
                "--h1",
                str(H1),
                "--l1",
                str(L1),
                "--gps",
                str(GPS),
                "--n",
                "200",
                "--out",
                str(tmp_path / "r.json"),
                "--no-corner",
            ]
        )
        == 0
    )
    assert "chirp_mass" in capsys.readouterr().out
    # NaN (a gap) in the data
    gap = tmp_path / "gap.hdf5"
    shutil.copy(H1, gap)
    with h5py.File(gap, "r+") as f:
        f["strain/Strain"][1000:2000] = np.nan
    with pytest.raises(GwinferError, match="NaN"):
        analyze(tiny_model, {"H1": gap, "L1": L1}, GPS, tmp_path / "x.json")
    with pytest.raises(GwinferError, match="outside"):
        analyze(tiny_model, {"H1": H1, "L1": L1}, GPS + 100, tmp_path / "x.json")
    with pytest.raises(GwinferError, match="missing"):
        analyze(tiny_model, {"H1": H1}, GPS, tmp_path / "x.json")
    with pytest.raises(GwinferError, match="no use for strain"):
        analyze(tiny_model, {"H1": H1, "L1": L1, "V1": L1}, GPS, tmp_path / "x.json")
    with pytest.raises(GwinferError, match="off-source"):
        event_psd(H1, GPS, 1024.0, seglen=4.0)  # 16 s / 4 s -> 7 segments
    with pytest.raises(GwinferError, match="below the model"):
        event_data({"H1": H1, "L1": L1}, GPS, hl_config(fs=8192.0, f_max=400.0))
    # the CLI turns errors into one line
    assert main(["analyze", "--model", str(tiny_model), "--gps", str(GPS), "--out", str(tmp_path / "y")]) != 0
    assert "give at least one strain file" in capsys.readouterr().err


def test_psd_cli_and_bad_psd_file(tmp_path):
    out = tmp_path / "h1.txt"
    assert main(["psd", "--strain", str(H1), "--gps", str(GPS), "--out", str(out)]) == 0
    header = json.loads(out.read_text().splitlines()[0].lstrip("# "))
    assert header["parents"][0]["sha256"].startswith("fa170ebc")
    np.testing.assert_allclose(
        np.loadtxt(out)[:, 1], np.loadtxt(REPO / "configs/psd/GW150914-H1.txt")[:, 1], rtol=1e-6
    )  # the committed file is reproducible
    bad = tmp_path / "bad_psd.txt"
    bad.write_text("10 1e-46\n20 0\n30 1e-46\n")
    with pytest.raises(GwinferError, match="PSD"):
        SimulationConfig(psd=str(bad))  # accepted lazily ...
        from gwinfer.data.simulate import SignalModel

        SignalModel(SimulationConfig(psd=str(bad)))  # ... and rejected when loaded
    with pytest.raises(GwinferError, match="one per detector"):
        hl_config(psds=(str(bad),))
