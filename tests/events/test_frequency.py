"""Vectorised detector geometry and segment preparation against lal and bilby (independent references)."""

from __future__ import annotations

import numpy as np
import pytest

from gwinfer.detectors.frequency import (
    antenna_patterns,
    band_frequencies,
    band_matrix,
    geocentre_delay,
    gmst,
    ra_at,
    tukey_window,
)
from gwinfer.detectors.segment import fd_segment, offsource_psd
from gwinfer.errors import GwinferError

GPS = 1126259462.4


@pytest.mark.parametrize("det", ["H1", "L1", "V1"])
def test_antenna_and_delay_match_lal(det: str) -> None:
    import lal

    rng = np.random.default_rng(0)
    ra, dec, psi = rng.uniform(0, 2 * np.pi, 50), np.arcsin(rng.uniform(-1, 1, 50)), rng.uniform(0, np.pi, 50)
    g = gmst(GPS)
    fp, fc = antenna_patterns(det, ra, dec, psi, g)
    d = lal.cached_detector_by_prefix[det]
    ref = np.array([lal.ComputeDetAMResponse(d.response, a, b, c, g) for a, b, c in zip(ra, dec, psi)])
    delay = [lal.TimeDelayFromEarthCenter(d.location, a, b, lal.LIGOTimeGPS(GPS)) for a, b in zip(ra, dec)]
    assert np.allclose(fp, ref[:, 0], atol=1e-12) and np.allclose(fc, ref[:, 1], atol=1e-12)
    assert np.allclose(geocentre_delay(det, ra, dec, g), delay, atol=1e-12)


def test_sidereal_rotation_gives_the_same_response() -> None:
    """A source at ra_net for sidereal time 0 responds as one at ra_at(ra_net, gps) at gps (Earth rotation)."""
    import lal

    d = lal.cached_detector_by_prefix["L1"]
    for ra_net in (0.3, 2.0, 5.9):
        fp, fc = antenna_patterns("L1", np.array([ra_net]), np.array([0.4]), np.array([1.1]), 0.0)
        ra = float(ra_at(np.array([ra_net]), GPS)[0])
        ref = lal.ComputeDetAMResponse(d.response, ra, 0.4, 1.1, lal.GreenwichMeanSiderealTime(lal.LIGOTimeGPS(GPS)))
        assert np.allclose([fp[0], fc[0]], ref, atol=1e-12)


def test_band_and_bands() -> None:
    f = band_frequencies(8.0, 20.0, 512.0)
    assert f[0] == 20.0 and f[-1] == 512.0 and np.allclose(np.diff(f), 0.125)
    m = band_matrix(f, 32)
    assert m.shape == (32, f.size) and np.allclose(m.sum(1), 1.0)
    with pytest.raises(GwinferError, match="without a frequency bin"):
        band_matrix(band_frequencies(1.0, 20.0, 30.0), 32)


def test_window_and_fd_segment_match_bilby() -> None:
    import bilby

    fs, t0, n = 1024.0, 1000.0, 8192
    x = np.random.default_rng(1).normal(size=3 * n)
    data = bilby.gw.detector.InterferometerStrainData(roll_off=0.2)
    data.set_from_time_domain_strain(x[n : 2 * n], sampling_frequency=fs, duration=8.0, start_time=t0 + 8.0)
    f, fd, w = fd_segment(x, fs, t0, t0 + 8.0, 8.0)
    assert np.allclose(f, data.frequency_array)
    assert np.allclose(fd, data.frequency_domain_strain, rtol=1e-10, atol=1e-14)
    assert w == pytest.approx(np.mean(data.time_domain_window() ** 2), rel=1e-12)
    assert np.allclose(tukey_window(n, 0.2, fs), data.time_domain_window())
    with pytest.raises(GwinferError, match="not inside the data"):
        fd_segment(x, fs, t0, t0 + 20.0, 8.0)


def test_offsource_psd_recovers_a_known_psd() -> None:
    """Coloured Gaussian noise of a known PSD (bilby's generator): the off-source estimate is within 10 %."""
    import bilby

    psd = bilby.gw.detector.PowerSpectralDensity.from_aligo()
    fs, dur = 2048.0, 32.0
    bilby.core.utils.random.seed(5)
    noise, _ = psd.get_noise_realisation(fs, dur)
    x = np.fft.irfft(noise, n=int(fs * dur)) * fs
    est = offsource_psd(x, fs, 0.0, (12.0, 20.0))
    f = np.arange(30.0, 900.0, 0.5)
    ratio = est(f) / psd.power_spectral_density_interpolated(f)
    assert abs(np.median(ratio) - 1) < 0.1
    with pytest.raises(GwinferError, match="no off-source stretch"):
        offsource_psd(x[: int(10 * fs)], fs, 0.0, (2.0, 8.0))


def test_check_output_accepts_an_existing_file_to_replace(tmp_path) -> None:
    """Re-running a command onto its previous result file is allowed (it is replaced atomically)."""
    from gwinfer.provenance import check_output

    f = tmp_path / "result.json"
    f.write_text("{}")
    assert check_output(f, folder=False) == f
    with pytest.raises(GwinferError, match="a folder is needed"):
        check_output(f, folder=True)
    with pytest.raises(GwinferError, match="is a file, not a folder"):
        check_output(f / "x.json", folder=False)
