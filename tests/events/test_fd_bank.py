"""The bank, the on-the-fly training set and the FD embedding against bilby (independent reference)."""

from __future__ import annotations

import numpy as np
import pytest

from gwinfer.errors import GwinferError

TRIGGER = 1126259462.4


def _bilby_response(bank, row: int, ext: dict, j: int, det: str, phase: float) -> np.ndarray:
    import bilby

    from gwinfer.data.fd_bank import waveform_generator
    from gwinfer.detectors.frequency import gmst

    gen = waveform_generator(bank.config)
    params = {k: float(bank.intrinsic[k][row]) for k in ("chirp_mass", "mass_ratio", "chi_1", "chi_2")}
    params.update(
        luminosity_distance=ext["luminosity_distance"][j],
        theta_jn=ext["theta_jn"][j],
        psi=ext["psi"][j],
        dec=ext["dec"][j],
        ra=(ext["ra"][j] + gmst(TRIGGER + ext["geocent_time"][j])) % (2 * np.pi),
        geocent_time=TRIGGER + ext["geocent_time"][j],
        phase=phase,
    )
    ifo = bilby.gw.detector.get_empty_interferometer(det)
    cfg = bank.config
    ifo.set_strain_data_from_zero_noise(
        sampling_frequency=2 * cfg.f_max, duration=cfg.duration, start_time=TRIGGER - (cfg.duration - cfg.post_trigger)
    )
    r = ifo.get_detector_response(gen.frequency_domain_strain(params), params)
    return r[np.isin(np.round(ifo.frequency_array * cfg.duration), np.round(bank.frequencies * cfg.duration))]


def test_training_signals_equal_bilby_detector_responses(tiny_bank) -> None:
    """Noise-free x of the training set = bilby's detector response at the same parameters (ra rotated to the
    trigger's sidereal time), whitened: binary phase = half the random constant phase of the set."""
    from gwinfer.data.fd_bank import read_bank
    from gwinfer.data.fd_dataset import DETECTORS, FDEventDataset
    from gwinfer.detectors.frequency import whitening_scale

    bank = read_bank(tiny_bank)
    ds = FDEventDataset(bank, np.arange(len(bank)), seed=3)
    items = np.array([5, 6, 7])
    _, x = ds.batch(items, noise=False)
    rng = ds._rng(items)
    ext = ds.draw_extrinsic(rng, 3)
    psds = np.exp(ds.draw_log_psds(rng, 3))
    nb = bank.frequencies.size
    for j in range(3):
        for d, det in enumerate(DETECTORS):
            ref = _bilby_response(bank, 5 + j, ext, j, det, 0.5 * ext["phase"][j]) / whitening_scale(
                psds[j, d], bank.config.duration, ds.w
            )
            mine = x[j, d, :nb].double().numpy() + 1j * x[j, d, nb : 2 * nb].double().numpy()
            assert np.abs(mine - ref).max() < 2e-4 * np.abs(ref).max()


def test_training_set_noise_and_epochs(tiny_bank) -> None:
    from gwinfer.data.fd_bank import read_bank
    from gwinfer.data.fd_dataset import FDEventDataset

    bank = read_bank(tiny_bank)
    ds = FDEventDataset(bank, np.arange(100, 400), seed=1)
    nb = bank.frequencies.size
    t1, x1 = ds.batch(np.arange(64))
    _, s1 = ds.batch(np.arange(64), noise=False)
    noise = (x1 - s1)[:, :, : 2 * nb]
    assert noise.mean().abs() < 0.01 and abs(float(noise.var()) - 1.0) < 0.01
    t2, x2 = ds.batch(np.arange(64))
    assert (t1 == t2).all() and (x1 == x2).all()  # same epoch and items: the same batch (exact resume)
    ds.set_epoch(1)
    t3, _ = ds.batch(np.arange(64))
    assert (t3[:, :4] == t1[:, :4]).all() and not (t3[:, 4:] == t1[:, 4:]).all()  # fresh extrinsics only
    assert len(ds.__getitems__([0, 1, 2])) == 3


def test_fd_embedding_keeps_the_signal_and_whitened_noise(tiny_bank) -> None:
    import torch

    from gwinfer.data.fd_bank import read_bank
    from gwinfer.data.fd_dataset import FDEventDataset
    from gwinfer.models.posterior.fd_embedding import FDEmbedding

    bank = read_bank(tiny_bank)
    ds = FDEventDataset(bank, np.arange(len(bank)), seed=2)
    _, sig = ds.batch(np.arange(300), noise=False)
    emb = FDEmbedding(2, ds.x_shape[1], 32, components=128, hidden=(16,), context_dim=4)
    emb.fit(sig[:250], sig[:250])
    kept = emb.kept_power(sig[250:])
    assert float(kept.median()) > 0.99
    noise = torch.zeros(2000, 2, ds.x_shape[1])
    noise[..., : 2 * bank.frequencies.size] = torch.randn(2000, 2, 2 * bank.frequencies.size)
    coef = emb.features(noise)[..., : 2 * 128]
    assert abs(float(coef.var()) - 1.0) < 0.03  # an orthonormal basis keeps N(0, 1) noise N(0, 1)


def test_read_bank_errors(tmp_path) -> None:
    from gwinfer.data.fd_bank import read_bank

    with pytest.raises(GwinferError, match="does not exist"):
        read_bank(tmp_path / "missing.h5")
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    with pytest.raises(GwinferError, match="not a readable HDF5"):
        read_bank(bad)


def test_info_describes_the_bank(tiny_bank):
    from gwinfer.cli.main import describe

    info = describe(tiny_bank)
    assert info["kind"] == "fd-bank" and info["rows"] == 400 and info["config"]["n"] == 400
