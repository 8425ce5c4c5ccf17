"""Reduced-basis embedding of whitened strain: project each detector onto the leading singular vectors of
the training data, then an MLP (the first layer of DINGO's embedding, Dax et al. 2021, PRL 127, 241103).

For whitened data x = h + n with n ~ N(0, I), the sample covariance of x is C_h + I: its eigenvectors are
those of the signal covariance C_h, so the right singular vectors of a (noisy) training matrix span the
signal manifold without needing noise-free signals. Projecting onto K orthonormal rows V (K, n_samples)
keeps the signal (if K covers it) and maps the noise to K independent N(0, 1) numbers: a lossless and
cheap first layer (K * n_samples multiply-adds per detector, against a ResNet's stack of convolutions).

:class:`SVDEmbedding` ``(batch, n_detectors, n_samples) -> (batch, context_dim)``:

1. ``project``: ``nn.Linear(n_samples, K, bias=False)`` shared by the detectors, initialised by
   :meth:`SVDEmbedding.fit` with V and trained with the rest afterwards;
2. ``coefficients``: per (detector, component) standardisation fitted at the same time;
3. ``net``: GELU MLP ``[n_detectors * K, *hidden, context_dim]``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gwinfer.errors import GwinferError
from gwinfer.models.base import mlp
from gwinfer.models.standardize import Standardizer


class SVDEmbedding(nn.Module):
    """Projection on the leading ``components`` singular vectors, standardisation, MLP (module docstring)."""

    def __init__(
        self, n_detectors: int, n_samples: int, components: int, hidden: tuple[int, ...], context_dim: int
    ) -> None:
        super().__init__()
        if components > n_samples:
            raise GwinferError(f"embedding.components = {components} must be <= n_samples = {n_samples}")
        self.n_detectors, self.n_samples, self.components = n_detectors, n_samples, components
        self.project = nn.Linear(n_samples, components, bias=False)
        self.coefficients = Standardizer((n_detectors, components))
        self.net = mlp([n_detectors * components, *hidden, context_dim], nn.GELU)

    @torch.no_grad()
    def fit(self, x: Tensor, signals: Tensor | None = None) -> "SVDEmbedding":
        """Set the projection to the top right singular vectors of ``signals`` (default ``x``), shape
        (N, n_detectors, n_samples), all detectors pooled, and fit the coefficient standardisation on the
        projections of ``x``. Needs N * n_detectors >= components."""
        basis = x if signals is None else signals
        rows = basis.detach().reshape(-1, self.n_samples).to(torch.float64)
        if rows.shape[0] < self.components:
            raise GwinferError(
                f"the SVD embedding needs at least {self.components} training rows (components), got {rows.shape[0]}"
            )
        _, _, vh = torch.linalg.svd(rows, full_matrices=False)
        self.project.weight.copy_(vh[: self.components].to(self.project.weight.dtype))
        self.coefficients.fit(self.project(x.to(self.project.weight.dtype)))
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.coefficients(self.project(x)).flatten(1))
