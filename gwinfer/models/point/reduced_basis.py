"""gwinfer's reduced-basis point estimator: physics features -> PCA coefficients -> MLP -> two leaves + head.

On x (batch, 2, T):

1. features (:mod:`gwinfer.models.point.features`): log-amplitude (T values) and instantaneous frequency
   (T - 1 values, rad/M), each standardised per time sample with stored statistics;
2. each feature is projected on its own PCA basis of ``n_components`` vectors, fitted by
   ``torch.linalg.svd`` (float64) of the standardised training features in ``fit_standardization``;
   the 2K coefficients are standardised (stored statistics); with ``coef_floor`` = f > 0 no coefficient
   is divided by less than f times the largest spread of its feature's block. The trailing principal
   directions of a smooth chirp have spreads down to 1e-8 of the leading one, below the float32
   round-off of the projection itself (~1e-7 of the feature's norm): without a floor, standardising
   them turns round-off into O(1) inputs and float32 and float64 predictions of the same waveform
   differ by whole units (found exporting to ONNX, docs/serving.md);
3. MLP trunk: ``depth`` layers of width ``hidden`` with SiLU (+ dropout), then two leaves
   (hidden -> hidden/2 -> 1 and -> 2) read by the head (:mod:`gwinfer.models.point.heads`).

A smooth chirp is captured by a few tens of components, so the model is cheap on CPU and its cost does
not grow with the network depth over time. The fit sample should hold well over ``n_components``
waveforms (a few thousand is plenty); the SVD of an (N, T) float64 matrix costs O(N T min(N, T)).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from gwinfer.checks import positive_int
from gwinfer.errors import GwinferError
from gwinfer.models.base import mlp
from gwinfer.models.point.base import Augmentation, PointEstimator
from gwinfer.models.point.features import WaveformFeatures
from gwinfer.models.point.heads import HEADS
from gwinfer.models.standardize import Standardizer


class PCABasis(nn.Module):
    """Orthonormal basis of the top-K principal directions of data of dimension D (buffers).

    ``project(v) = (v - mean) @ components.T`` (coefficients, (batch, K)) and
    ``reconstruct(c) = c @ components + mean`` (batch, D).
    """

    mean: Tensor
    components: Tensor
    singular_values: Tensor

    def __init__(self, dim: int, n_components: int) -> None:
        super().__init__()
        if not 1 <= n_components <= dim:
            raise GwinferError(f"n_components = {n_components} must lie in [1, {dim}] (the feature length)")
        self.dim = dim
        self.n_components = n_components
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("components", torch.eye(n_components, dim))
        self.register_buffer("singular_values", torch.zeros(n_components))

    @torch.no_grad()
    def fit(self, data: Tensor, exact_limit: int = 512, seed: int = 0) -> "PCABasis":
        """Fit on ``data`` (N, D) with N >= n_components; returns ``self``.

        If min(N, D) <= ``exact_limit`` the centred data go straight to ``torch.linalg.svd`` (float64).
        Larger fits (a full SVD of 3000 x 5066 takes minutes on 2 CPU cores) first find the dominant
        subspace by a seeded randomized range finder (K + 16 directions, 4 power iterations with QR
        re-orthonormalisation, Halko et al. 2011) and then take the exact ``torch.linalg.svd`` of the
        data projected on it; for the fast-decaying spectra of waveform features the top-K vectors agree
        with the full SVD to working precision.
        """
        if data.ndim != 2 or data.shape[1] != self.dim:
            raise GwinferError(f"PCA data has shape {tuple(data.shape)}; expected (N, {self.dim})")
        if data.shape[0] < self.n_components:
            raise GwinferError(
                f"PCA fit needs at least n_components = {self.n_components} examples, got {data.shape[0]}"
            )
        d = data.detach().to(torch.float64)
        mean = d.mean(dim=0)
        d = d - mean
        k = self.n_components
        if min(d.shape) <= exact_limit:
            _, s, vh = torch.linalg.svd(d, full_matrices=False)
        else:
            gen = torch.Generator().manual_seed(seed)
            width = min(k + 16, min(d.shape))
            q, _ = torch.linalg.qr(d @ torch.randn(d.shape[1], width, dtype=d.dtype, generator=gen))
            for _ in range(4):
                q, _ = torch.linalg.qr(d.T @ q)
                q, _ = torch.linalg.qr(d @ q)
            _, s, vh = torch.linalg.svd(q.T @ d, full_matrices=False)
        # fix the sign of each vector (largest-magnitude entry positive) so fits are reproducible
        vk = vh[:k]
        sign = torch.sign(vk.gather(1, vk.abs().argmax(dim=1, keepdim=True)))
        self.mean.copy_(mean.to(self.mean.dtype))
        self.components.copy_((vk * sign).to(self.components.dtype))
        self.singular_values.copy_(s[:k].to(self.singular_values.dtype))
        return self

    def project(self, v: Tensor) -> Tensor:
        """Coefficients (batch, K) of v (batch, D)."""
        return (v - self.mean) @ self.components.T

    def reconstruct(self, c: Tensor) -> Tensor:
        """Vectors (batch, D) of coefficients c (batch, K)."""
        return c @ self.components + self.mean

    def extra_repr(self) -> str:
        return f"dim={self.dim}, n_components={self.n_components}"


@dataclass(frozen=True)
class ReducedBasisConfig:
    """Hyper-parameters of :class:`ReducedBasisModel`."""

    n_components: int = 48  # PCA vectors per feature (log-amplitude, frequency)
    hidden: int = 512  # width of the MLP trunk
    depth: int = 4  # layers of the trunk
    dropout: float = 0.0
    head: str = "physics"  # "physics" | "direct" | "chi"
    spin_weight: float = 0.1  # physics head only
    dt: float = 2.0  # time step of the input grid, M (sets the frequency feature's unit)
    log_amplitude: bool = True  # ln|h| (True) or |h| (False)
    coef_floor: float = 0.0  # floor on coefficient spreads, relative to the largest of the block (0 = none)
    signal_floor: float = 0.0  # features weight the signal above this fraction of the peak |h| (0 = off)
    augment: Augmentation = field(default_factory=Augmentation)  # train-time input perturbations

    def __post_init__(self) -> None:
        for name in ("n_components", "hidden", "depth"):
            positive_int(getattr(self, name), f"reduced_basis.{name}")
        if not 0.0 <= self.dropout < 1.0:
            raise GwinferError(f"reduced_basis.dropout = {self.dropout} must lie in [0, 1)")
        if self.head not in HEADS:
            raise GwinferError(f"reduced_basis.head = {self.head!r}; choose one of {list(HEADS)}")
        if not self.dt > 0:
            raise GwinferError(f"reduced_basis.dt = {self.dt} M must be > 0")
        if not 0.0 <= self.coef_floor < 1.0:
            raise GwinferError(f"reduced_basis.coef_floor = {self.coef_floor} must lie in [0, 1)")


class ReducedBasisModel(PointEstimator):
    """Features -> PCA coefficients -> MLP -> leaves + head; input (batch, 2, n_samples) float32."""

    kind = "reduced_basis"
    config_class = ReducedBasisConfig

    def __init__(self, config: ReducedBasisConfig | None = None, n_samples: int = 5066) -> None:
        config = config or ReducedBasisConfig()
        super().__init__(config, n_samples, config.head, config.spin_weight)
        c = config
        k = c.n_components
        if k > n_samples - 1:
            raise GwinferError(f"reduced_basis.n_components = {k} exceeds the {n_samples - 1} frequency samples")
        self.features = WaveformFeatures(n_samples, c.dt, log_amp=c.log_amplitude, signal_floor=c.signal_floor)
        self.amp_basis = PCABasis(n_samples, k)
        self.freq_basis = PCABasis(n_samples - 1, k)
        self.coef_std = Standardizer(2 * k)
        trunk: list[nn.Module] = []
        width = 2 * k
        for _ in range(c.depth):
            trunk += [nn.Linear(width, c.hidden), nn.SiLU()]
            if c.dropout > 0:
                trunk.append(nn.Dropout(c.dropout))
            width = c.hidden
        self.trunk = nn.Sequential(*trunk)
        half = max(c.hidden // 2, 8)
        self.leaf_a = mlp([c.hidden, half, self.head.n_a], nn.SiLU)
        self.leaf_b = mlp([c.hidden, half, self.head.n_b], nn.SiLU)

    def coefficients(self, x: Tensor) -> Tensor:
        """Unstandardised PCA coefficients (batch, 2K): K of log-amplitude then K of frequency."""
        amp, freq = self.features(x)
        return torch.cat([self.amp_basis.project(amp), self.freq_basis.project(freq)], dim=-1)

    @torch.no_grad()
    def _fit_inputs(self, x: Tensor) -> None:
        n, k = x.shape[0], self.config.n_components
        if n < k:
            raise GwinferError(f"fit_standardization needs at least n_components = {k} examples, got {n}")
        self.features.fit(x)
        amp, freq = self.features(x)
        self.amp_basis.fit(amp)
        self.freq_basis.fit(freq)
        self.coef_std.fit(self.coefficients(x))
        if self.config.coef_floor > 0:
            for block in self.coef_std.std.split(k):  # views: amplitude then frequency coefficients
                block.clamp_(min=self.config.coef_floor * float(block.max()))

    def leaves(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(self.coef_std(self.coefficients(x)))
        return self.leaf_a(h), self.leaf_b(h)
