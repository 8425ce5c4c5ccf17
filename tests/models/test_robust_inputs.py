"""The input-robustness options of the point estimators (issue 13): signal-weighted features and
train-time augmentation. Checked against analytic values and seeded draws."""

from __future__ import annotations

import math

import pytest
import torch

from gwinfer.errors import GwinferError
from gwinfer.models.point.base import Augmentation
from gwinfer.models.point.features import WaveformFeatures, instantaneous_frequency


def _chirp(n: int = 400, dt: float = 2.0) -> torch.Tensor:
    """A (1, 2, n) toy h22 = A(t) exp(-i phi(t)): amplitude rising to 0.4 at sample n - 50, then a fast
    exponential ringdown (10 M), frequency 0.02 -> 0.3 rad/M."""
    t = torch.arange(n, dtype=torch.float64) * dt
    tp = t[n - 50]
    amp = torch.where(t <= tp, 0.05 + 0.35 * (t / tp) ** 4, 0.4 * torch.exp(-(t - tp) / 10.0))
    omega = 0.02 + 0.28 * (t / t[-1]) ** 3
    phi = torch.cumsum(omega, 0) * dt
    return torch.stack([amp * torch.cos(phi), -amp * torch.sin(phi)])[None].float()


def test_signal_floor_values_where_the_signal_is_and_is_not():
    x = _chirp()
    x[:, :, -20:] = 0.0  # zero padding at the end
    plain = WaveformFeatures(400, 2.0)
    floored = WaveformFeatures(400, 2.0, signal_floor=0.01)
    amp, freq = floored.raw(x)
    a = 0.01 * 0.4
    # in the padding: log-amplitude ln(a) and no frequency at all
    assert torch.allclose(amp[0, -10:], torch.full((10,), math.log(a)), atol=1e-4)
    assert torch.all(freq[0, -10:] == 0)
    # where |h| >= 0.05 >> a the features are the plain ones: ln shifts by ln(1 + a^2/|h|^2)/2 <= 3.2e-3,
    # the frequency weight is 1 - a^2/|h|^2 >= 0.99
    amp0, freq0 = plain.raw(x)
    assert torch.allclose(amp[0, :300], amp0[0, :300], atol=3.3e-3)
    ref = instantaneous_frequency(x, 2.0)[0, :300]
    assert torch.allclose(freq[0, :300], ref, rtol=0.01, atol=1e-6)


def test_signal_floor_keeps_noise_in_the_ringdown_tail_out_of_the_features():
    x = _chirp()
    gen = torch.Generator().manual_seed(0)
    noisy = x + 1e-5 * 0.4 * torch.randn(x.shape, generator=gen)
    plain = WaveformFeatures(400, 2.0)
    floored = WaveformFeatures(400, 2.0, signal_floor=0.01)
    d_plain = (plain.raw(noisy)[1] - plain.raw(x)[1]).abs().max()
    d_floor = (floored.raw(noisy)[1] - floored.raw(x)[1]).abs().max()
    # the tail (|h| down to 1e-7 of the peak) puts the plain frequency at the mercy of 1e-5 noise
    assert d_plain > 0.1 and d_floor < 1e-3, (float(d_plain), float(d_floor))


def test_signal_floor_range():
    with pytest.raises(GwinferError, match="signal_floor"):
        WaveformFeatures(10, 2.0, signal_floor=1.5)


def test_augmentation_is_seeded_scaled_to_the_peak_and_phase_only_rotates():
    x = _chirp()
    torch.manual_seed(3)
    a = Augmentation(noise=1e-3)(x)
    torch.manual_seed(3)
    b = Augmentation(noise=1e-3)(x)
    assert torch.equal(a, b)
    assert 0 < float((a - x).std()) <= 1e-3 * 0.4 * 1.2
    rotated = Augmentation(phase=1.0)(x.repeat(64, 1, 1))
    mod = lambda v: torch.sqrt(v[:, 0] ** 2 + v[:, 1] ** 2)  # noqa: E731
    assert torch.allclose(mod(rotated), mod(x).expand(64, -1), atol=1e-6)
    angle = torch.atan2(
        rotated[:, 1, 0] * x[0, 0, 0] - rotated[:, 0, 0] * x[0, 1, 0],
        rotated[:, 0, 0] * x[0, 0, 0] + rotated[:, 1, 0] * x[0, 1, 0],
    )
    assert float(angle.abs().max()) <= 1.0 + 1e-5 and float(angle.std()) > 0.3
    assert not Augmentation().active
    with pytest.raises(GwinferError, match="augment.noise"):
        Augmentation(noise=-1.0)


def test_augmentation_acts_in_training_only():
    from gwinfer.models import build_model

    model = build_model(
        {
            "kind": "reduced_basis",
            "config": {"n_components": 4, "hidden": 16, "depth": 1, "signal_floor": 0.01, "augment": {"noise": 0.01}},
        },
        400,
    )
    gen = torch.Generator().manual_seed(1)
    x = _chirp().repeat(16, 1, 1) * (1 + 0.1 * torch.rand(16, 1, 1, generator=gen))
    theta = torch.stack(
        [
            1 + 3 * torch.rand(16, generator=gen),
            torch.rand(16, generator=gen) - 0.5,
            torch.rand(16, generator=gen) - 0.5,
        ],
        1,
    )
    model.fit_standardization(theta, x)
    model.eval()
    assert torch.equal(model.loss(theta, x), model.loss(theta, x))
    model.train()
    assert not torch.equal(model.loss(theta, x), model.loss(theta, x))
