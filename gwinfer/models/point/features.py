"""Physics features of h22 computed in torch: log-amplitude and instantaneous frequency.

For h = Re h22 + i Im h22 sampled every ``dt`` M:

* log-amplitude ``ln sqrt(|h|^2 + floor^2)`` (dimensionless; ``floor`` keeps zero padding finite), or the
  amplitude |h| itself;
* instantaneous angular frequency between neighbouring samples,
  ``omega_k = angle(h[k+1] conj(h[k])) / dt`` in rad/M (T - 1 values), computed as
  ``atan2(Im, Re)`` of the product, so no phase unwrapping is needed. It is exact as long as the phase
  advances by less than pi per step, i.e. |omega| < pi / dt (1.57 rad/M at dt = 2 M, above the
  ringdown frequency ~0.4-0.9 rad/M of the (2, 2) mode for |spins| <= 0.8). Its sign follows the
  waveform convention (h22 ~ A e^{-i phi} gives omega < 0); standardisation removes it.

With ``signal_floor`` = f > 0 both features weight the signal where it is: with the waveform's own peak
amplitude A = max |h| and a = f A, the log-amplitude is ``ln sqrt(|h|^2 + a^2)`` and omega is multiplied by
``|h_k||h_k+1| / (|h_k||h_k+1| + a^2)``, so where |h| << a (the end of the ringdown, zero padding) noise or
round-off far below a moves neither feature (the frequency tends to 0 there instead of the phase noise's
random values). f = 0 keeps the plain features (the shipped models before issue 13).

Only real arithmetic and atan2 are used (no complex tensors), so the features export to TorchScript/ONNX.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gwinfer.errors import GwinferError
from gwinfer.models.standardize import Standardizer


def log_amplitude(x: Tensor, floor: float = 1e-8) -> Tensor:
    """ln of the amplitude (batch, T) of x (batch, 2, T), softened by ``floor`` (units of h)."""
    return 0.5 * torch.log(x[:, 0] ** 2 + x[:, 1] ** 2 + floor * floor)


def amplitude(x: Tensor) -> Tensor:
    """|h| (batch, T) of x (batch, 2, T)."""
    return torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2)


def instantaneous_frequency(x: Tensor, dt: float) -> Tensor:
    """omega (batch, T - 1) in rad/M: angle(h[k+1] conj(h[k])) / dt of x (batch, 2, T), dt in M."""
    re0, im0 = x[:, 0, :-1], x[:, 1, :-1]
    re1, im1 = x[:, 0, 1:], x[:, 1, 1:]
    return torch.atan2(im1 * re0 - re1 * im0, re1 * re0 + im1 * im0) / dt


class WaveformFeatures(nn.Module):
    """x (batch, 2, T) -> per-position standardised (amplitude feature (batch, T), omega (batch, T - 1)).

    The per-time-sample mean/std of each feature are buffers fitted by :meth:`fit`.
    """

    def __init__(
        self, n_samples: int, dt: float, log_amp: bool = True, floor: float = 1e-8, signal_floor: float = 0.0
    ) -> None:
        super().__init__()
        if not dt > 0:
            raise GwinferError(f"time step dt = {dt} M must be > 0")
        if not 0.0 <= signal_floor < 1.0:
            raise GwinferError(f"signal_floor = {signal_floor} must lie in [0, 1) (a fraction of the peak amplitude)")
        self.signal_floor = float(signal_floor)
        self.n_samples = n_samples
        self.dt = float(dt)
        self.log_amp = bool(log_amp)
        self.floor = float(floor)
        self.amp_std = Standardizer((n_samples,))
        self.freq_std = Standardizer((n_samples - 1,))

    def raw(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Unstandardised (amplitude feature, omega in rad/M)."""
        if self.signal_floor == 0.0:
            amp = log_amplitude(x, self.floor) if self.log_amp else amplitude(x)
            return amp, instantaneous_frequency(x, self.dt)
        mod = amplitude(x)
        a2 = (self.signal_floor * mod.amax(dim=-1, keepdim=True)) ** 2 + self.floor * self.floor
        amp = 0.5 * torch.log(mod * mod + a2) if self.log_amp else torch.sqrt(mod * mod + a2)
        pair = mod[:, :-1] * mod[:, 1:]
        return amp, instantaneous_frequency(x, self.dt) * (pair / (pair + a2))

    @torch.no_grad()
    def fit(self, x: Tensor) -> None:
        """Fit the per-position statistics on a training sample x (N, 2, T)."""
        amp, freq = self.raw(x)
        self.amp_std.fit(amp)
        self.freq_std.fit(freq)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        amp, freq = self.raw(x)
        return self.amp_std(amp), self.freq_std(freq)
