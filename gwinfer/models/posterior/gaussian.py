"""The Gaussian posterior estimator: a full-covariance normal whose mean and Cholesky factor an MLP emits."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from gwinfer.checks import positive_ints
from gwinfer.errors import GwinferError
from gwinfer.models.base import mlp
from gwinfer.models.posterior.base import PosteriorEstimator
from gwinfer.models.posterior.embedding import EmbeddingConfig


@dataclass(frozen=True)
class GaussianConfig:
    """:class:`GaussianPosterior`: an MLP (GELU) on the context emits the mean and a Cholesky factor."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    hidden: tuple[int, ...] = (64, 64)
    min_scale: float = 1e-4  # floor of the Cholesky diagonal (standardised units)

    def __post_init__(self) -> None:
        positive_ints(self.hidden, "gaussian.hidden")
        if not self.min_scale >= 0.0:
            raise GwinferError(f"gaussian.min_scale = {self.min_scale} must be >= 0")


class GaussianPosterior(PosteriorEstimator):
    """Multivariate normal with full covariance Sigma = L L^T, L lower-triangular with softplus diagonal."""

    kind = "gaussian"
    config_class = GaussianConfig

    def __init__(
        self, config: GaussianConfig | None = None, theta_dim: int = 2, x_shape: int | tuple[int, ...] = (2,)
    ) -> None:
        config = config or GaussianConfig()
        super().__init__(config, theta_dim, x_shape)
        d = self.theta_dim
        self.n_tril = d * (d - 1) // 2
        self.net = mlp([self.context_dim, *config.hidden, 2 * d + self.n_tril], nn.GELU)
        rows, cols = torch.tril_indices(d, d, offset=-1)
        self.register_buffer("tril_rows", rows, persistent=False)
        self.register_buffer("tril_cols", cols, persistent=False)

    def distribution(self, c: Tensor) -> torch.distributions.MultivariateNormal:
        """N(mean, L L^T) in the standardised space for context c (batch, C)."""
        d = self.theta_dim
        out = self.net(c)
        mean, raw_diag, off = out[:, :d], out[:, d : 2 * d], out[:, 2 * d :]
        diag = nn.functional.softplus(raw_diag + 0.5413) + self.config.min_scale  # softplus(0.5413) = 1
        tril = torch.diag_embed(diag)
        if self.n_tril:
            tril[:, self.tril_rows, self.tril_cols] = off
        return torch.distributions.MultivariateNormal(mean, scale_tril=tril, validate_args=False)

    def _log_prob(self, u: Tensor, c: Tensor) -> Tensor:
        return self.distribution(c).log_prob(u)

    def _sample(self, c: Tensor, n: int) -> Tensor:
        return self.distribution(c).rsample((n,)).transpose(0, 1)

    def _sample_and_log_prob(self, c: Tensor, n: int) -> tuple[Tensor, Tensor]:
        dist = self.distribution(c)
        u = dist.rsample((n,))
        return u.transpose(0, 1), dist.log_prob(u).transpose(0, 1)
