"""Importance-sampling machinery against analytic results, and the likelihood against the network's input."""

from __future__ import annotations

import numpy as np
import pytest

from gwinfer.evaluation.event_is import GMM, fit_gmm, temper
from gwinfer.evaluation.importance import ess_of, evidence, systematic_resample


def test_evidence_and_ess_of_a_gaussian_target() -> None:
    """Target exp(-x^2/2) (Z = sqrt(2 pi)) under proposal N(0, 2^2): ln Z within 3 sigma, ESS/N near the
    analytic E_q[w]^2 / E_q[w^2] = sqrt(2 s^2 - 1) / s^2."""
    rng = np.random.default_rng(0)
    n, s = 200000, 2.0
    x = rng.normal(0, s, n)
    log_q = -0.5 * (x / s) ** 2 - np.log(s * np.sqrt(2 * np.pi))
    log_w = -0.5 * x**2 - log_q
    ln_z, err = evidence(log_w)
    assert abs(ln_z - 0.5 * np.log(2 * np.pi)) < 3 * err
    expected = np.sqrt(2 * s**2 - 1) / s**2
    assert ess_of(log_w) / n == pytest.approx(expected, rel=0.02)
    assert ess_of(np.full(10, -np.inf)) == 0.0


def test_temper_reaches_the_requested_ess() -> None:
    log_w = np.random.default_rng(1).normal(0, 30, 5000)
    beta = temper(log_w, 200)
    assert 0 < beta < 1 and ess_of(beta * log_w) >= 200 * 0.999
    assert temper(np.zeros(100), 50) == 1.0


def test_fit_gmm_recovers_two_components_and_periodic_density_integrates_to_one() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal([1.0, 0.5], 0.1, size=(3000, 2))
    b = rng.normal([5.0, 2.5], 0.1, size=(1000, 2))
    gmm = fit_gmm(np.concatenate([a, b]), np.ones(4000), ("ra", "x"), 2, rng)
    order = np.argsort(gmm.means[:, 0])
    assert np.allclose(gmm.means[order], [[1.0, 0.5], [5.0, 2.5]], atol=0.02)
    assert np.allclose(gmm.weights[order], [0.75, 0.25], atol=0.02)
    # a component across ra = 0: the wrapped density still integrates to 1 over [0, 2 pi) x R
    g = GMM(("ra", "x"), np.ones(1), np.array([[0.1, 0.0]]), np.array([np.diag([0.3**2, 1.0])]))
    ra, xx = np.meshgrid(np.linspace(0, 2 * np.pi, 801)[:-1], np.linspace(-8, 8, 401))
    dens = np.exp(g.log_prob(np.stack([ra.ravel(), xx.ravel()], axis=1)))
    assert dens.sum() * (2 * np.pi / 800) * (16 / 400) == pytest.approx(1.0, abs=0.01)
    draws = g.sample(2000, rng)
    assert draws[:, 0].min() >= 0 and draws[:, 0].max() < 2 * np.pi


def test_resample_is_proportional_to_weights() -> None:
    idx = systematic_resample(np.array([1.0, 3.0, 1e-300, 6.0]), 1000, seed=0)
    assert np.bincount(idx, minlength=4).tolist() == [100, 300, 0, 600]
    assert systematic_resample(np.exp(np.array([0.0, -np.inf])), 5, seed=0).tolist() == [0] * 5


def test_likelihood_sees_the_signal_the_network_sees(tiny_bank) -> None:
    """bilby's (phase- and time-marginalised) likelihood of a zero-noise injection peaks at
    ln L_ratio ~ SNR^2 / 2, with SNR^2 the power of the whitened signal in the network's input."""
    import bilby

    from gwinfer.data.fd_bank import read_bank, waveform_generator
    from gwinfer.data.fd_dataset import DETECTORS, window_power
    from gwinfer.detectors.frequency import whitening_scale
    from gwinfer.evaluation.event import EventData
    from gwinfer.evaluation.event_is import build_likelihood, spec_of

    bank = read_bank(tiny_bank)
    cfg = bank.config
    gps, start = 1126259462.4, 1126259462.4 - 6.0
    params = dict(
        chirp_mass=25.0, mass_ratio=0.8, chi_1=0.2, chi_2=-0.1, luminosity_distance=1200.0, theta_jn=0.4,
        geocent_time=gps + 0.01, ra=1.3, dec=-0.5, psi=0.7, phase=0.0,
    )  # fmt: skip
    gen = waveform_generator(cfg)
    pol = gen.frequency_domain_strain(params)
    psd = bank.psds[1]
    strain, psds, snr2 = {}, {}, 0.0
    w = window_power(cfg.duration)
    for det in DETECTORS:
        ifo = bilby.gw.detector.get_empty_interferometer(det)
        ifo.set_strain_data_from_zero_noise(sampling_frequency=2 * cfg.f_max, duration=cfg.duration, start_time=start)
        band = np.isin(np.round(ifo.frequency_array * cfg.duration), np.round(bank.frequencies * cfg.duration))
        strain[det] = ifo.get_detector_response(pol, params)[band]
        psds[det] = psd
        snr2 += float(np.sum(np.abs(strain[det] / whitening_scale(psd, cfg.duration, w)) ** 2))
    event = EventData(gps, start, cfg.duration, bank.frequencies, strain, psds, w)
    info = {"bank": {**cfg.__dict__}}
    spec = spec_of(event, info, str(bank.attrs["prior_text"]))
    full = build_likelihood(spec, time_marginalization=False).log_likelihood_ratio(parameters=dict(params))
    # phase-marginalised: ln I0(<h|h>) - <h|h>/2 with <h|h> = the power of the network's whitened signal
    assert full == pytest.approx(snr2 / 2 - 0.5 * np.log(2 * np.pi * snr2), rel=2e-3)
    marg = build_likelihood(spec).log_likelihood_ratio(parameters={**params, "geocent_time": start})
    # the time average over the 0.2 s prior of a peak ~3e-4 s wide: ln(3e-4 sqrt(2 pi) / 0.2) ~ -5.6
    assert full - 9 < marg < full - 3


def test_flow_proposal_density_is_normalised_on_the_wrapped_space() -> None:
    """A flow fitted to draws across ra = 0: its wrapped density integrates to 1 over [0, 2 pi) x R and its
    draws follow the fitted distribution (means of the unwrapped columns)."""
    from gwinfer.evaluation.event_is import FlowProposal

    rng = np.random.default_rng(3)
    x = np.stack([np.mod(rng.normal(0.1, 0.3, 4000), 2 * np.pi), rng.normal(2.0, 0.5, 4000)], axis=1)
    flow = FlowProposal(x, ("ra", "x"), seed=0, steps=300)
    ra, xx = np.meshgrid(np.linspace(0, 2 * np.pi, 401)[:-1], np.linspace(-2, 6, 201))
    dens = np.exp(flow.log_prob(np.stack([ra.ravel(), xx.ravel()], axis=1)))
    assert dens.sum() * (2 * np.pi / 400) * (8 / 200) == pytest.approx(1.0, abs=0.05)
    draws = flow.sample(4000, rng)
    assert draws[:, 0].min() >= 0 and draws[:, 0].max() < 2 * np.pi
    unwrapped = (draws[:, 0] + np.pi) % (2 * np.pi) - np.pi
    assert abs(unwrapped.mean() - 0.1) < 0.05 and abs(draws[:, 1].mean() - 2.0) < 0.05
