"""The paper's non-causal WaveNet "root" with two fully connected "leaves" (Khan, Huerta & Das 2020).

Pipeline on x (batch, 2, T) = (Re h22, Im h22), T samples of step dt (in M):

1. representation: ``reim`` -> x / s (2 channels; s = stored RMS of the training inputs),
   ``ampphase`` -> (|h| / s_A, cos phi, sin phi) (3 channels; s_A = stored RMS amplitude), or
   ``ampfreq`` -> (ln|h|, instantaneous frequency d phi/dt in rad/M), each standardised per time sample
   with stored statistics (2 channels; :class:`gwinfer.models.point.features.WaveformFeatures`, the frequency's
   T - 1 values padded by repeating the last). ``ampfreq`` hands the root smooth, phase-free curves
   whose deviations from the training mean carry the parameters, instead of a carrier oscillating up to
   0.1 rad/sample; it needs the grid step ``dt``;
2. input projection: Conv1d with kernel = stride = ``downsample`` (a learned patch embedding; the input is
   zero-padded on the right to a multiple of ``downsample``), giving L = ceil(T / downsample) steps of
   ``downsample * dt`` M each; ``downsample = 1`` is the usual 1x1 WaveNet input conv;
3. root: ``n_stacks`` stacks of gated residual layers with dilations 1, 2, 4, ..., ``max_dilation``; each
   layer computes tanh(W_f * x) * sigmoid(W_g * x) with a dilated conv of odd ``kernel_size`` and
   symmetric padding ``dilation * (kernel_size - 1) / 2`` (non-causal, output length preserved), then a
   1x1 conv to the residual path (added to its input) and one to the skip path;
4. output: ReLU(sum of skips) -> 1x1 conv -> ReLU -> 1x1 conv to ``out_channels``;
5. leaves: the last ``last_n`` steps (of the L-step grid) are flattened and fed to two MLPs
   (``leaf_hidden`` sizes, ReLU, dropout): leaf A -> 1 number, leaf B -> 2 numbers, read by the head
   (:mod:`gwinfer.models.point.heads`).

The receptive field of the root (in input samples) is :attr:`WaveNet.receptive_field`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gwinfer.checks import positive_int
from gwinfer.errors import GwinferError
from gwinfer.models.base import mlp
from gwinfer.models.point.base import Augmentation, PointEstimator
from gwinfer.models.point.features import WaveformFeatures
from gwinfer.models.point.heads import HEADS
from gwinfer.models.standardize import Standardizer

REPRESENTATIONS = ("reim", "ampphase", "ampfreq")


@dataclass(frozen=True)
class WaveNetConfig:
    """Hyper-parameters of :class:`WaveNet` (lengths in samples of the grid they act on)."""

    channels: int = 32  # residual channels
    skip_channels: int = 32
    out_channels: int = 16  # channels of the root output fed (flattened) to the leaves
    kernel_size: int = 3  # odd
    max_dilation: int = 512  # power of two; dilations 1, 2, ..., max_dilation per stack
    n_stacks: int = 1
    last_n: int = 64  # steps of the (downsampled) root output fed to the leaves
    leaf_hidden: tuple[int, ...] = (256, 64)
    dropout: float = 0.0  # in the leaves
    representation: str = "reim"  # "reim" | "ampphase" | "ampfreq"
    dt: float = 2.0  # time step of the input grid, M (``ampfreq`` only: the frequency's unit)
    downsample: int = 1  # stride of the input projection
    head: str = "physics"  # "physics" | "direct" | "chi"
    spin_weight: float = 0.1  # physics head only
    signal_floor: float = 0.0  # ``ampfreq``: features weight the signal above this fraction of the peak |h|
    augment: Augmentation = field(default_factory=Augmentation)  # train-time input perturbations

    def __post_init__(self) -> None:
        for name in ("channels", "skip_channels", "out_channels", "n_stacks", "last_n", "downsample", "max_dilation"):
            positive_int(getattr(self, name), f"wavenet.{name}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise GwinferError(f"wavenet.kernel_size = {self.kernel_size} must be odd (symmetric padding)")
        if self.max_dilation & (self.max_dilation - 1):
            raise GwinferError(f"wavenet.max_dilation = {self.max_dilation} must be a power of two")
        if any(h < 1 for h in self.leaf_hidden):
            raise GwinferError(f"wavenet.leaf_hidden = {list(self.leaf_hidden)} must hold positive sizes")
        if not 0.0 <= self.dropout < 1.0:
            raise GwinferError(f"wavenet.dropout = {self.dropout} must lie in [0, 1)")
        if self.representation not in REPRESENTATIONS:
            raise GwinferError(
                f"wavenet.representation = {self.representation!r}; choose one of {list(REPRESENTATIONS)}"
            )
        if not self.dt > 0:
            raise GwinferError(f"wavenet.dt = {self.dt} M must be > 0")
        if self.head not in HEADS:
            raise GwinferError(f"wavenet.head = {self.head!r}; choose one of {list(HEADS)}")

    @property
    def dilations(self) -> list[int]:
        """Dilation of every gated layer, in order."""
        one = [2**i for i in range(int(math.log2(self.max_dilation)) + 1)]
        return one * self.n_stacks


class GatedResidualLayer(nn.Module):
    """One non-causal dilated gated layer; returns (residual output, skip output)."""

    def __init__(self, channels: int, skip_channels: int, kernel_size: int, dilation: int, last: bool) -> None:
        super().__init__()
        self.channels = channels
        self.last = last
        pad = dilation * (kernel_size - 1) // 2
        self.dilated = nn.Conv1d(channels, 2 * channels, kernel_size, dilation=dilation, padding=pad)
        # one 1x1 conv for residual + skip (the last layer has no residual path: it would be unused)
        self.out = nn.Conv1d(channels, skip_channels + (0 if last else channels), 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f, g = self.dilated(x).chunk(2, dim=1)
        y = self.out(torch.tanh(f) * torch.sigmoid(g))
        if self.last:
            return x, y
        return x + y[:, : self.channels], y[:, self.channels :]


class WaveNet(PointEstimator):
    """Non-causal WaveNet root + two leaves + a head; input (batch, 2, n_samples) float32."""

    kind = "wavenet"
    config_class = WaveNetConfig

    def __init__(self, config: WaveNetConfig | None = None, n_samples: int = 5066) -> None:
        config = config or WaveNetConfig()
        super().__init__(config, n_samples, config.head, config.spin_weight)
        c = config
        self.pad_right = (-n_samples) % c.downsample
        self.length = (n_samples + self.pad_right) // c.downsample
        if c.last_n > self.length:
            raise GwinferError(
                f"wavenet.last_n = {c.last_n} exceeds the {self.length} steps left after downsample = {c.downsample}"
            )
        in_channels = 3 if c.representation == "ampphase" else 2
        self.input_scale = Standardizer(())
        if c.representation == "ampfreq":
            self.features = WaveformFeatures(n_samples, c.dt, signal_floor=c.signal_floor)
        self.input_proj = nn.Conv1d(in_channels, c.channels, c.downsample, stride=c.downsample)
        dil = c.dilations
        self.layers = nn.ModuleList(
            GatedResidualLayer(c.channels, c.skip_channels, c.kernel_size, d, last=(i == len(dil) - 1))
            for i, d in enumerate(dil)
        )
        self.post = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(c.skip_channels, c.skip_channels, 1),
            nn.ReLU(),
            nn.Conv1d(c.skip_channels, c.out_channels, 1),
        )
        n_flat = c.out_channels * c.last_n
        self.leaf_a = mlp([n_flat, *c.leaf_hidden, self.head.n_a], nn.ReLU, c.dropout)
        self.leaf_b = mlp([n_flat, *c.leaf_hidden, self.head.n_b], nn.ReLU, c.dropout)

    @property
    def receptive_field(self) -> int:
        """Input samples that can influence one root output step (centred on it: non-causal)."""
        c = self.config
        steps = 1 + sum(d * (c.kernel_size - 1) for d in c.dilations)
        return steps * c.downsample

    def represent(self, x: Tensor) -> Tensor:
        """The network's input channels (batch, 2 or 3, T) of x (batch, 2, T) (3 for ``ampphase``)."""
        if self.config.representation == "reim":
            return self.input_scale(x)
        if self.config.representation == "ampfreq":
            amp, freq = self.features(x)
            return torch.stack([amp, torch.cat([freq, freq[:, -1:]], dim=1)], dim=1)
        re, im = x[:, 0], x[:, 1]
        amp = torch.sqrt(re * re + im * im + 1e-30)
        return torch.stack([self.input_scale(amp), re / amp, im / amp], dim=1)

    @torch.no_grad()
    def _fit_inputs(self, x: Tensor) -> None:
        if self.config.representation == "reim":
            self.input_scale.fit(x, center=False)
        elif self.config.representation == "ampfreq":
            self.features.fit(x)
        else:
            self.input_scale.fit(torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2), center=False)

    def root(self, x: Tensor) -> Tensor:
        """Root output (batch, out_channels, L) of x (batch, 2, T), L = ceil(T / downsample)."""
        h = self.represent(x)
        if self.pad_right:
            h = F.pad(h, (0, self.pad_right))
        h = self.input_proj(h)
        skip: Tensor | None = None
        for layer in self.layers:
            h, s = layer(h)
            skip = s if skip is None else skip + s
        assert skip is not None
        return self.post(skip)

    def leaves(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = torch.flatten(self.root(x)[:, :, self.length - self.config.last_n :], 1)
        return self.leaf_a(z), self.leaf_b(z)
