"""Affine standardisation whose statistics live in buffers, so a checkpoint carries its own units.

A :class:`Standardizer` of ``shape`` S holds ``mean`` and ``std`` tensors of shape S. ``fit(data)``
reduces ``data`` of shape ``(*leading, *S)`` over its leading dimensions, e.g.

* ``Standardizer(3).fit(theta)``                  per-column stats of targets (batch, 3);
* ``Standardizer((T,)).fit(features)``            per-time-sample stats of features (batch, T);
* ``Standardizer(()).fit(x, center=False)``       one scalar RMS scale of a whole tensor.

Statistics are computed in float64 and stored in the buffers' dtype (float32). The standard deviation
is the population one (``ddof = 0``, as ``numpy.std``); a zero (or sub-``eps``) spread is replaced by 1
so constant columns map to 0 rather than blowing up.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gwinfer.errors import GwinferError


class Standardizer(nn.Module):
    """``forward(x) = (x - mean) / std``; ``inverse(z) = z * std + mean``; stats fitted once, stored as buffers."""

    mean: Tensor
    std: Tensor
    fitted: Tensor

    def __init__(self, shape: int | tuple[int, ...] = (), eps: float = 1e-12) -> None:
        super().__init__()
        self.shape: tuple[int, ...] = (shape,) if isinstance(shape, int) else tuple(shape)
        self.eps = float(eps)
        self.register_buffer("mean", torch.zeros(self.shape))
        self.register_buffer("std", torch.ones(self.shape))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, data: Tensor, center: bool = True) -> "Standardizer":
        """Set ``mean``/``std`` from ``data`` of shape ``(*leading, *shape)``; ``center=False`` keeps mean 0.

        With ``center=False`` the scale is the root-mean-square of ``data`` (not its spread about the mean).
        Returns ``self``.
        """
        if not isinstance(data, Tensor):
            raise GwinferError(f"standardizer data must be a torch tensor, got {type(data).__name__}")
        k = len(self.shape)
        if data.ndim < k + 1 or tuple(data.shape[data.ndim - k :]) != self.shape:
            trail = "".join(f", {n}" for n in self.shape)
            raise GwinferError(f"standardizer data has shape {tuple(data.shape)}; expected (batch{trail})")
        d = data.detach().to(torch.float64)
        dims = tuple(range(d.ndim - k))
        if d.numel() == 0 or not torch.isfinite(d).all():
            raise GwinferError("standardizer data is empty or holds NaN/inf values")
        if center:
            mean = d.mean(dim=dims)
            std = d.std(dim=dims, correction=0)
        else:
            mean = torch.zeros(self.shape, dtype=torch.float64)
            std = d.pow(2).mean(dim=dims).sqrt()
        std = torch.where(std > self.eps, std, torch.ones_like(std))
        self.mean.copy_(mean.to(self.mean.dtype))
        self.std.copy_(std.to(self.std.dtype))
        self.fitted.fill_(True)
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Standardised ``(x - mean) / std`` (broadcast over leading dimensions)."""
        return (x - self.mean) / self.std

    def inverse(self, z: Tensor) -> Tensor:
        """Back to the original units: ``z * std + mean``."""
        return z * self.std + self.mean

    def extra_repr(self) -> str:
        return f"shape={self.shape}"
