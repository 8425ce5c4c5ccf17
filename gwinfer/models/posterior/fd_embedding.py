"""Embedding of whitened frequency-domain strain plus the noise curves it was whitened with (event models).

x (batch, n_detectors, 2 F + B): per detector the real parts, the imaginary parts of F whitened frequency
bins, and B band-averaged ln ASD values (:mod:`gwinfer.data.fd_dataset`). As in DINGO (Dax et al. 2021,
PRL 127, 241103) the strain is first projected on the leading ``components`` complex singular vectors V
(F, K) of noise-free whitened training signals (both detectors pooled), ``c_k = <v_k, d>`` (``c = d V`` for
the row vector d and V = Vh^H of ``A = U S Vh``). The whitened noise
stays N(0, 1) in each coefficient and the signal loses < 1e-4 of its power (measured in the tests). V is a
fixed float16 buffer (a 3 MB model file instead of 12 MB of trainable float32 weights). The K complex
coefficients and the B noise features of each detector are standardised and go through a GELU MLP to the
context vector.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gwinfer.errors import GwinferError
from gwinfer.models.base import mlp
from gwinfer.models.standardize import Standardizer


class FDEmbedding(nn.Module):
    """Complex SVD projection of each detector's whitened strain, its noise features, an MLP (module docstring)."""

    def __init__(
        self, n_detectors: int, width: int, bands: int, components: int, hidden: tuple[int, ...], context_dim: int
    ) -> None:
        super().__init__()
        n_bins, odd = divmod(width - bands, 2)
        if odd or n_bins < 1:
            raise GwinferError(
                f"x width {width} must be 2 * n_bins + bands (bands = {bands}): [Re d, Im d, noise features]"
            )
        if components > n_bins:
            raise GwinferError(f"embedding.components = {components} must be <= the {n_bins} frequency bins")
        self.n_detectors, self.n_bins, self.bands, self.components = n_detectors, n_bins, bands, components
        self.register_buffer("basis_re", torch.zeros(n_bins, components, dtype=torch.float16))
        self.register_buffer("basis_im", torch.zeros(n_bins, components, dtype=torch.float16))
        self.coefficients = Standardizer((n_detectors, 2 * components + bands))
        self.net = mlp([n_detectors * (2 * components + bands), *hidden, context_dim], nn.GELU)

    def _complex(self, x: Tensor) -> Tensor:
        f = self.n_bins
        return torch.complex(x[..., :f].double(), x[..., f : 2 * f].double())

    @torch.no_grad()
    def fit(self, x: Tensor, signals: Tensor | None = None) -> "FDEmbedding":
        """V from the noise-free ``signals`` (default ``x``), shape (N, n_detectors, width), by a randomised
        SVD (``torch.svd_lowrank``, 4 power iterations); then the coefficient standardisation on ``x``."""
        rows = self._complex(x if signals is None else signals).reshape(-1, self.n_bins)
        if rows.shape[0] < self.components:
            raise GwinferError(f"the FD embedding needs >= {self.components} signal rows, got {rows.shape[0]}")
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(0)  # svd_lowrank draws a random test matrix
        _, _, v = torch.svd_lowrank(rows, q=self.components + 32, niter=4)
        torch.random.set_rng_state(gen_state)
        v = v[:, : self.components]
        self.basis_re.copy_(v.real.to(torch.float16))
        self.basis_im.copy_(v.imag.to(torch.float16))
        self.coefficients.fit(self.features(x))
        return self

    def kept_power(self, signals: Tensor) -> Tensor:
        """Fraction of each noise-free signal's power (N, n_detectors) that the projection keeps."""
        d = self._complex(signals)
        v = torch.complex(self.basis_re.double(), self.basis_im.double())
        c = d @ v
        return (c.abs() ** 2).sum(-1) / (d.abs() ** 2).sum(-1).clamp_min(1e-300)

    def features(self, x: Tensor) -> Tensor:
        """(batch, n_detectors, 2 K + B): Re c, Im c of ``c = d V`` and the noise features."""
        f = self.n_bins
        dr, di, noise = x[..., :f], x[..., f : 2 * f], x[..., 2 * f :]
        vr, vi = self.basis_re.to(x.dtype), self.basis_im.to(x.dtype)
        return torch.cat([dr @ vr - di @ vi, dr @ vi + di @ vr, noise], dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.coefficients(self.features(x)).flatten(1))
