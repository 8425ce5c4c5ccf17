"""The embedding network of a posterior estimator: x -> a context vector of ``context_dim`` numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import nn

from gwinfer.checks import positive_int, positive_ints
from gwinfer.errors import GwinferError
from gwinfer.models.base import mlp
from gwinfer.models.posterior.fd_embedding import FDEmbedding
from gwinfer.models.posterior.resnet1d import ResNet1D, ResNet1DConfig
from gwinfer.models.posterior.svd_embedding import SVDEmbedding

EMBEDDINGS = ("auto", "mlp", "resnet", "svd", "fd")


@dataclass(frozen=True)
class EmbeddingConfig:
    """The network compressing x into a context vector of ``context_dim`` numbers.

    ``kind``: ``"resnet"`` (x of shape (n_detectors, n_samples)), ``"svd"`` (same x; projection on the
    leading ``components`` singular vectors of the training data, then an MLP:
    :class:`~gwinfer.models.posterior.svd_embedding.SVDEmbedding`), ``"mlp"`` (x flattened) or ``"auto"`` (resnet for
    2-D x shapes, mlp for flat ones), ``"fd"`` (x of shape (n_detectors, 2 n_bins + bands): whitened
    frequency-domain strain and ``bands`` noise features, projected on ``components`` complex singular
    vectors: :class:`~gwinfer.models.posterior.fd_embedding.FDEmbedding`). ``hidden`` sizes the MLP of
    ``mlp``, ``svd`` and ``fd`` (GELU between layers).
    """

    kind: str = "auto"
    context_dim: int = 32
    hidden: tuple[int, ...] = (128, 128)
    resnet: ResNet1DConfig = field(default_factory=ResNet1DConfig)
    components: int = 128  # svd and fd
    bands: int = 32  # fd only: noise features per detector

    def __post_init__(self) -> None:
        if self.kind not in EMBEDDINGS:
            raise GwinferError(f"embedding.kind = {self.kind!r}; choose one of {list(EMBEDDINGS)}")
        positive_int(self.context_dim, "embedding.context_dim")
        positive_ints(self.hidden, "embedding.hidden")
        positive_int(self.components, "embedding.components")
        positive_int(self.bands, "embedding.bands")


def build_embedding(config: EmbeddingConfig, x_shape: tuple[int, ...]) -> nn.Module:
    """The embedding network (batch, *x_shape) -> (batch, context_dim) described by ``config``."""
    kind = config.kind
    if kind == "auto":
        kind = "resnet" if len(x_shape) == 2 else "mlp"
    if kind in ("resnet", "svd", "fd") and len(x_shape) != 2:
        raise GwinferError(f"embedding.kind = {kind!r} needs x of shape (n_detectors, n_samples), got {x_shape}")
    if kind == "resnet":
        return ResNet1D(x_shape[0], x_shape[1], config.context_dim, config.resnet)
    if kind == "svd":
        return SVDEmbedding(x_shape[0], x_shape[1], config.components, config.hidden, config.context_dim)
    if kind == "fd":
        return FDEmbedding(x_shape[0], x_shape[1], config.bands, config.components, config.hidden, config.context_dim)
    n_in = math.prod(x_shape)
    return nn.Sequential(nn.Flatten(1), mlp([n_in, *config.hidden, config.context_dim], nn.GELU))
