"""Detectors: PSDs, whitening normalisation, antenna patterns, simulated signals vs bilby, real GWOSC strain."""

from __future__ import annotations

import numpy as np
import pytest

from gwinfer.detectors import (
    PLUS,
    PSD,
    antenna_pattern,
    band_fraction,
    colored_noise,
    cut,
    project,
    read_strain,
    td_waveform,
    time_delay,
    welch_psd,
    whiten,
    whiten_fd,
    whitened_noise,
    whitened_strain,
)  # fmt: skip
from gwinfer.detectors.whitening import psd_array
from gwinfer.errors import GwinferError
from gwinfer.external import external_dir

EXT = external_dir()
PSD_FILE = EXT / "psd/aLIGO_ZERO_DET_high_P_psd.txt"
ASD_FILE = EXT / "psd/aLIGO_ZERO_DET_high_P_asd.txt"
H1_GW150914 = EXT / "strain/H-H1_LOSC_4_V2-1126259446-32.hdf5"
T_GW150914 = 1126259462.44
FS = 1024.0


@pytest.fixture(scope="module")
def psd() -> PSD:
    return PSD.from_file(PSD_FILE)


# ---- PSD ---------------------------------------------------------------------------------------------
def test_psd_file_asd_and_lalsimulation_agree(psd):
    grid = psd.on_grid(FS, 4.0, 20.0)
    band = np.isfinite(grid)
    assert band.sum() == int(512 * 4) - 80 + 1 and np.all(np.isinf(grid[:80]))
    asd = PSD.from_file(ASD_FILE, kind="asd").on_grid(FS, 4.0, 20.0)
    np.testing.assert_allclose(asd[band], grid[band], rtol=1e-4)
    gwinc = PSD.from_lalsimulation("aLIGOZeroDetHighPowerGWINC").on_grid(FS, 4.0, 20.0)
    ratio = gwinc[band] / grid[band]
    assert abs(np.median(ratio) - 1) < 1e-3 and np.all(np.abs(ratio - 1) < 0.06)
    fit = PSD.from_lalsimulation("aLIGOZeroDetHighPower")(np.array([100.0]))[0]
    assert 1e-47 < fit < 1e-46  # the analytic fit: ~ (3.6e-24 / sqrt(Hz))^2 at 100 Hz


def test_psd_errors_are_one_line(tmp_path, psd):
    rows = np.loadtxt(PSD_FILE)[:50]
    cases = {"neg": rows * [1, -1], "unsorted": rows[::-1], "nan": np.where(np.arange(50)[:, None] == 3, np.nan, rows)}
    for name, arr in cases.items():
        p = tmp_path / f"{name}.txt"
        np.savetxt(p, arr)
        with pytest.raises(GwinferError) as err:
            PSD.from_file(p)
        assert "\n" not in str(err.value)
    with pytest.raises(GwinferError, match="outside its range"):
        psd.on_grid(FS, 4.0, 5.0)  # the file starts at 9 Hz
    with pytest.raises(GwinferError, match="outside its range"):
        psd.on_grid(32768.0, 1.0, 20.0)  # Nyquist 16384 Hz > 8192 Hz
    with pytest.raises(GwinferError, match="no PSD function"):
        PSD.from_lalsimulation("NoSuchDetector")


# ---- whitening ---------------------------------------------------------------------------------------
def test_whitening_of_flat_noise_is_exact():
    rng = np.random.default_rng(0)
    sigma = 3e-21
    x = sigma * rng.standard_normal(4096)
    flat = np.full(4096 // 2 + 1, 2 * sigma**2 / FS)  # one-sided PSD of white noise: 2 sigma^2 / fs
    np.testing.assert_allclose(whiten(x, flat, FS, f_min=0.0), x / sigma, rtol=1e-10, atol=1e-10)


def test_colored_noise_has_the_psd_and_whitens_to_unit_white_noise(psd):
    from scipy.signal import welch

    rng = np.random.default_rng(1)
    dur, f_min = 64.0, 20.0
    x = colored_noise(psd, FS, dur, rng, f_min=f_min)
    n = x.size
    s = psd_array(psd, n, FS, f_min)
    df = 1 / dur
    var_expected = np.sum(s[np.isfinite(s)]) * df  # integral of the one-sided PSD over the band
    assert abs(x.var() / var_expected - 1) < 0.05
    f, p = welch(x, fs=FS, nperseg=4096)
    band = (f > 30) & (f < 500)
    assert abs(np.median(p[band] / psd(f[band])) - 1) < 0.05
    w = whiten(x, psd, FS, f_min)
    frac = band_fraction(n, FS, f_min)
    assert abs(frac - (1 - 20 / 512)) < 1e-3
    assert abs(w.var() / frac - 1) < 0.02  # N(0, 1) per sample within the band
    f, p = welch(w, fs=FS, nperseg=1024)
    band = (f > 25) & (f < 505)
    level = p[band] * FS / 2  # one-sided PSD of N(0, 1) white noise is 2 / fs
    chunks = [c.mean() for c in np.array_split(level, 8)]  # flat from 25 to 505 Hz
    assert np.max(np.abs(np.array(chunks) - 1)) < 0.06 and abs(level.mean() - 1) < 0.03
    # autocorrelation: that of white noise with the bins below 20 Hz removed, irfft(band mask) (analytic)
    mask = np.isfinite(s).astype(float)
    acf = np.fft.irfft(mask, n=n)
    lags = np.arange(1, 11)
    r = np.array([np.mean(w * np.roll(w, -k)) for k in lags]) / w.var()
    assert np.max(np.abs(r - acf[lags] / acf[0])) < 0.015
    assert np.all(acf[lags] / acf[0] < -0.025)  # ~ -2 f_min / fs: distinguishable from full-band white noise
    z = whitened_noise((3, 10000), np.random.default_rng(2))
    assert z.shape == (3, 10000) and abs(z.var() - 1) < 0.03


# ---- projection vs bilby -----------------------------------------------------------------------------
def test_antenna_patterns_and_delays_match_bilby():
    import bilby

    ifos = bilby.gw.detector.InterferometerList(["H1", "L1"])
    rng = np.random.default_rng(3)
    worst = 0.0
    for _ in range(20):
        ra, dec, psi = rng.uniform(0, 2 * np.pi), np.arcsin(rng.uniform(-1, 1)), rng.uniform(0, np.pi)
        gps = 1126259462.44 + rng.uniform(0, 1e7)
        for ifo in ifos:
            fp, fc = antenna_pattern(ifo.name, ra, dec, psi, gps)
            worst = max(worst, abs(fp - ifo.antenna_response(ra, dec, gps, psi, "plus")),
                        abs(fc - ifo.antenna_response(ra, dec, gps, psi, "cross")),
                        abs(time_delay(ifo.name, ra, dec, gps) - ifo.time_delay_from_geocenter(ra, dec, gps)))  # fmt: skip
    assert worst < 1e-6
    with pytest.raises(GwinferError, match="unknown detector"):
        antenna_pattern("K2", 0, 0, 0, 0)


def test_project_applies_pattern_and_subsample_delay():
    t = np.arange(1024) / FS
    sig = 4e-3  # a Gaussian pulse, band-limited to << 512 Hz
    hp = np.exp(-0.5 * ((t - 0.5) / sig) ** 2)
    hc = 0.3 * hp
    args = (1.1, -0.4, 0.7, 1126259462.0)
    out = project(hp, hc, "L1", *args[:3], args[3], FS)
    fp, fc = antenna_pattern("L1", *args)
    dt = time_delay("L1", args[0], args[1], args[3])
    assert 1e-4 < abs(dt) < 0.0214 and abs(dt * FS - round(dt * FS)) > 0.01  # a genuine sub-sample shift
    expect = (fp + 0.3 * fc) * np.exp(-0.5 * ((t - 0.5 - dt) / sig) ** 2)
    np.testing.assert_allclose(out, expect, atol=1e-9)


# ---- signals vs bilby --------------------------------------------------------------------------------
INJ = dict(mass_1=36.0, mass_2=29.0, chi_1=0.3, chi_2=-0.2, luminosity_distance=1500.0, theta_jn=0.7,
           phase=1.3, ra=1.2, dec=-0.8, psi=0.4)  # fmt: skip


def test_whitened_strain_matches_bilby_detector_response(psd):
    import bilby

    dur, gps_start, t_c = 4.0, 1126259460.0, 3.0
    wfg = bilby.gw.WaveformGenerator(
        duration=dur, sampling_frequency=FS, start_time=gps_start,
        frequency_domain_source_model=bilby.gw.source.lal_binary_black_hole,
        parameter_conversion=bilby.gw.conversion.convert_to_lal_binary_black_hole_parameters,
        waveform_arguments=dict(waveform_approximant="IMRPhenomPv2", reference_frequency=20.0, minimum_frequency=20.0),
    )  # fmt: skip
    params = dict(INJ, geocent_time=gps_start + t_c)
    pols = wfg.frequency_domain_strain(params)
    mine = whitened_strain(dict(INJ, geocent_time=t_c), ["H1", "L1"], psd, FS, dur, gps_start=gps_start)
    grid = psd.on_grid(FS, dur, 20.0)
    for ifo in bilby.gw.detector.InterferometerList(["H1", "L1"]):
        ifo.minimum_frequency, ifo.maximum_frequency = 20.0, FS / 2
        ifo.power_spectral_density = bilby.gw.detector.PowerSpectralDensity(psd_file=str(PSD_FILE))
        ifo.set_strain_data_from_zero_noise(sampling_frequency=FS, duration=dur, start_time=gps_start)
        resp = ifo.get_detector_response(pols, params)
        snr2_bilby = float(np.real(ifo.optimal_snr_squared(resp)))
        w = mine[ifo.name]
        assert w.size == int(FS * dur)
        assert abs(np.sum(w**2) / snr2_bilby - 1) < 0.005, (ifo.name, np.sum(w**2), snr2_bilby)
        wb = whiten_fd(np.where(ifo.frequency_array >= 20.0, resp, 0), grid, FS)
        match = np.dot(w, wb) / np.sqrt(np.dot(w, w) * np.dot(wb, wb))
        assert match > 0.9995, (ifo.name, match)  # a 1 ms timing error gives 0.79
        assert 5 < np.sqrt(snr2_bilby) < 100


def test_td_waveform_places_coalescence_and_one_second_segments_are_consistent(psd):
    p = dict(INJ, geocent_time=0.75)
    hp, hc = td_waveform(p, FS, 1.0)
    assert hp.shape == hc.shape == (1024,)
    assert abs(np.argmax(hp**2 + hc**2) / FS - 0.75) < 0.01  # IMRPhenom's t = 0 is at the amplitude peak
    # the 1 s whitened '+' signal equals the last second of a 4 s one with the same coalescence time
    w1 = whitened_strain(p, [PLUS, "H1"], psd, FS, 1.0)
    w4 = whitened_strain(dict(INJ, geocent_time=3.75), [PLUS, "H1"], psd, FS, 4.0)
    for det in (PLUS, "H1"):
        a, b = w1[det], w4[det][3072:]
        assert np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)) > 0.999
        assert abs(np.dot(a, a) / np.dot(b, b) - 1) < 0.02
    with pytest.raises(GwinferError, match="segment"):
        td_waveform(dict(INJ, geocent_time=1.5), FS, 1.0)
    with pytest.raises(GwinferError, match="ra"):
        whitened_strain({k: v for k, v in p.items() if k != "ra"}, ["H1"], psd, FS, 1.0)


# ---- real strain -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def h1():
    return read_strain(H1_GW150914)


def test_gw150914_off_source_whitens_to_unit_variance(h1):
    assert float(h1.sample_rate.value) == 4096.0 and float(h1.t0.value) == 1126259446.0
    off = cut(h1, 1126259453.0, before=6.0, after=6.0, fs=FS, resample=True)  # 447-459: before the event
    assert len(off) == 12 * 1024 and float(off.sample_rate.value) == FS
    est = welch_psd(off.value, FS, seglen=1.0, average="median")  # 23 segments (see welch_psd)
    other = cut(h1, 1126259472.5, before=5.0, after=5.0, fs=FS, resample=True)  # 467.5-477.5: after the event
    w = whiten(other.value, est, FS, f_min=20.0, alpha=0.1)[1024:-1024]
    assert abs(w.var() - 1) < 0.1, w.var()
    # the same at the native 4096 Hz, without resampling
    off4 = cut(h1, 1126259453.0, 6.0, 6.0, fs=4096.0)
    w4 = whiten(
        cut(h1, 1126259472.5, 5.0, 5.0).value, welch_psd(off4.value, 4096.0, seglen=1.0), 4096.0, 20.0, alpha=0.1
    )
    assert abs(w4[4096:-4096].var() - 1) < 0.1, w4.var()


def test_cut_errors(h1):
    with pytest.raises(GwinferError, match="outside the data"):
        cut(h1, T_GW150914, before=20.0, after=1.0)
    with pytest.raises(GwinferError, match="resample=True"):
        cut(h1, T_GW150914, 1.0, 1.0, fs=FS)
    gappy = h1.copy()
    gappy.value[int(16.0 * 4096)] = np.nan
    with pytest.raises(GwinferError, match="NaN") as err:
        cut(gappy, T_GW150914, 1.0, 1.0)
    assert "\n" not in str(err.value)
    piece = cut(h1, T_GW150914, 0.5, 0.25)
    assert len(piece) == 3072 and abs(float(piece.t0.value) - (T_GW150914 - 0.5)) < 1 / 4096


def test_detectors_and_priors_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, gwinfer.detectors, gwinfer.physics.priors as p; p.load_prior('gw5d'); "
            "sys.exit(1 if 'torch' in sys.modules else 0)")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
