"""A small 1-D residual network that compresses multi-detector strain into a context vector.

Used as the embedding network of the posterior estimators (:mod:`gwinfer.models.posterior`) for inputs
x of shape (batch, n_detectors, n_samples) (whitened strain, one channel per detector):

1. stem: Conv1d(n_detectors -> channels[0], kernel_size, "same" padding) + norm + activation;
2. ``len(channels)`` residual blocks; block i maps channels[i-1] -> channels[i] and downsamples the time
   axis by ``stride``: conv(kernel_size, stride) -> norm -> act -> conv(kernel_size) -> norm, added to a
   shortcut (identity, or a strided 1x1 conv when the width or length changes), then act;
3. adaptive average pooling to ``pool_size`` steps, flatten, and a linear layer to ``context_dim``.

``norm`` is ``"group"`` (GroupNorm with one group: per-example layer norm, identical in train and eval
mode and independent of the batch), ``"batch"`` (BatchNorm1d) or ``"none"``. The output length of the
blocks is :attr:`ResNet1D.length`; the receptive field grows geometrically with the number of blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from gwinfer.checks import positive_int
from gwinfer.errors import GwinferError

NORMS = ("group", "batch", "none")


@dataclass(frozen=True)
class ResNet1DConfig:
    """Hyper-parameters of :class:`ResNet1D` (``len(channels)`` = number of residual blocks)."""

    channels: tuple[int, ...] = (16, 32, 64, 64)  # width of the stem (first) and of each block's output
    kernel_size: int = 7  # odd
    stride: int = 2  # time downsampling of every block
    pool_size: int = 8  # steps kept by the final adaptive average pooling
    norm: str = "group"  # "group" | "batch" | "none"
    dropout: float = 0.0  # before the final linear layer

    def __post_init__(self) -> None:
        if not self.channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.channels):
            raise GwinferError(f"resnet.channels = {list(self.channels)} must be a non-empty list of integers >= 1")
        for name in ("kernel_size", "stride", "pool_size"):
            positive_int(getattr(self, name), f"resnet.{name}")
        if self.kernel_size % 2 == 0:
            raise GwinferError(f"resnet.kernel_size = {self.kernel_size} must be odd (symmetric padding)")
        if self.norm not in NORMS:
            raise GwinferError(f"resnet.norm = {self.norm!r}; choose one of {list(NORMS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise GwinferError(f"resnet.dropout = {self.dropout} must lie in [0, 1)")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(1, channels)
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    return nn.Identity()


class ResidualBlock1D(nn.Module):
    """conv(stride) -> norm -> act -> conv -> norm, plus a shortcut, then act."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, norm: str) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=pad),
            _norm(norm, c_out),
            nn.GELU(),
            nn.Conv1d(c_out, c_out, kernel_size, padding=pad),
            _norm(norm, c_out),
        )
        self.shortcut: nn.Module = (
            nn.Identity() if (c_in == c_out and stride == 1) else nn.Conv1d(c_in, c_out, 1, stride=stride)
        )
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResNet1D(nn.Module):
    """(batch, in_channels, n_samples) -> (batch, context_dim); see the module docstring."""

    def __init__(
        self, in_channels: int, n_samples: int, context_dim: int, config: ResNet1DConfig | None = None
    ) -> None:
        super().__init__()
        c = config or ResNet1DConfig()
        if in_channels < 1 or n_samples < 1 or context_dim < 1:
            raise GwinferError(
                "ResNet1D needs in_channels, n_samples, context_dim >= 1 "
                f"(got {in_channels}, {n_samples}, {context_dim})"
            )
        self.config = c
        self.in_channels, self.n_samples, self.context_dim = in_channels, n_samples, context_dim
        pad = c.kernel_size // 2
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, c.channels[0], c.kernel_size, padding=pad), _norm(c.norm, c.channels[0]), nn.GELU()
        )
        widths = (c.channels[0], *c.channels)
        self.blocks = nn.Sequential(
            *(
                ResidualBlock1D(widths[i], widths[i + 1], c.kernel_size, c.stride, c.norm)
                for i in range(len(c.channels))
            )
        )
        length = n_samples
        for _ in c.channels:
            length = (length + 2 * pad - c.kernel_size) // c.stride + 1
        self.length = length
        self.pool = nn.AdaptiveAvgPool1d(c.pool_size)
        self.head = nn.Sequential(
            nn.Flatten(1),
            nn.Dropout(c.dropout) if c.dropout > 0 else nn.Identity(),
            nn.Linear(c.channels[-1] * c.pool_size, context_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.blocks(self.stem(x))))
