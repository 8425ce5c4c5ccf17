"""Normalising-flow posterior estimators built from zuko (MAF, NSF, IAF), conditioned on the embedded data.

Every flow maps standardised parameters u to a standard normal base through ``transforms`` masked
autoregressive transformations (MADE hyper-networks, :class:`zuko.nn.MaskedMLP`, conditioned on the
context vector c of the embedding network); the feature order alternates between transformations
(or is a random permutation with ``randperm``). In zuko a flow's transformation f runs data -> base:
``log_prob`` evaluates f (``NormalizingFlow.log_prob``) and ``sample`` evaluates f^{-1}.

* ``maf`` -> :class:`zuko.flows.MAF` (affine, Papamakarios et al. 2017). f is a masked autoregressive
  transformation: ONE MADE pass per transformation evaluates the density (fast training by maximum
  likelihood), while sampling inverts it with ``passes`` sequential passes (D by default).
* ``nsf`` -> :class:`zuko.flows.NSF` (monotonic rational-quadratic splines with ``bins`` bins on
  [-5, 5], identity outside, Durkan et al. 2019), same directions and costs as ``maf``. The theta
  standardisation keeps the parameters inside the spline domain.
* ``iaf`` -> the same zuko masked autoregressive transformations, each wrapped in
  :class:`zuko.lazy.LazyInverse` (``t.inv``) before building a :class:`zuko.flows.Flow` with the MAF's
  N(0, I) base: the autoregressive map now runs base -> data (Kingma et al. 2016), so ``sample`` (and
  ``sample_and_log_prob``, which gets the density of its own samples for free) costs ONE pass per
  transformation, whereas ``log_prob`` of an arbitrary theta - hence training by maximum likelihood -
  needs ``passes`` sequential passes. This is the trade-off of Green, Simpson & Gair (2020): an IAF
  samples fast, a MAF evaluates densities fast.

``passes`` (None = fully autoregressive; 2 = coupling-like) sets how many sequential passes the slow
direction takes, for all three. Batch normalisation between transformations (as in the MAF paper) is
not offered by zuko 1.6 (it has no batch-norm transformation, and hand-written flow layers are against
the house rule); the theta standardisation plays its role at the input, and ``residual`` switches the
MADE hyper-networks to residual blocks for deeper, better-conditioned networks. For ``theta_dim = 1``
zuko replaces each autoregressive transformation by an element-wise one conditioned on c only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import zuko
from torch import Tensor

from gwinfer.checks import positive_int, positive_ints
from gwinfer.models.posterior.base import PosteriorEstimator
from gwinfer.models.posterior.embedding import EmbeddingConfig


@dataclass(frozen=True)
class FlowConfig:
    """Hyper-parameters of :class:`MAFPosterior`, :class:`NSFPosterior` and :class:`IAFPosterior`."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    transforms: int = 5  # autoregressive transformations
    hidden: tuple[int, ...] = (64, 64)  # MADE hidden sizes
    passes: int | None = None  # sequential passes of the slow direction (None: fully autoregressive)
    residual: bool = False  # residual MADE blocks
    randperm: bool = False  # random feature orders instead of alternating ones
    bins: int = 8  # spline bins (nsf only)

    def __post_init__(self) -> None:
        positive_int(self.transforms, "flow.transforms")
        positive_ints(self.hidden, "flow.hidden")
        if self.passes is not None:
            positive_int(self.passes, "flow.passes")
        positive_int(self.bins, "flow.bins", minimum=2)


def zuko_kwargs(config: FlowConfig, features: int) -> dict[str, Any]:
    """Keyword arguments of a zuko MAF/NSF for ``features`` dimensions described by ``config``."""
    kw: dict[str, Any] = {
        "transforms": config.transforms,
        "hidden_features": tuple(config.hidden),
        "randperm": config.randperm,
    }
    if features > 1:  # zuko's element-wise (1-D) transformation takes neither option
        kw["passes"] = config.passes
        if config.residual:
            kw["residual"] = True
    return kw


class _FlowPosterior(PosteriorEstimator):
    """Shared code: ``self.flow`` is a zuko lazy flow over u conditioned on the context."""

    config_class = FlowConfig

    def __init__(
        self, config: FlowConfig | None = None, theta_dim: int = 2, x_shape: int | tuple[int, ...] = (2,)
    ) -> None:
        config = config or FlowConfig()
        super().__init__(config, theta_dim, x_shape)
        self.flow = self._build_flow(config)

    def _build_flow(self, config: FlowConfig) -> zuko.lazy.Flow:
        raise NotImplementedError

    def _log_prob(self, u: Tensor, c: Tensor) -> Tensor:
        return self.flow(c).log_prob(u)

    def _sample(self, c: Tensor, n: int) -> Tensor:
        return self.flow(c).rsample((n,)).transpose(0, 1)

    def _sample_and_log_prob(self, c: Tensor, n: int) -> tuple[Tensor, Tensor]:
        u, lp = self.flow(c).rsample_and_log_prob((n,))
        return u.transpose(0, 1), lp.transpose(0, 1)


class MAFPosterior(_FlowPosterior):
    """zuko MAF (affine MADE transformations): fast density, sampling in ``passes`` sequential passes."""

    kind = "maf"

    def _build_flow(self, config: FlowConfig) -> zuko.lazy.Flow:
        return zuko.flows.MAF(self.theta_dim, self.context_dim, **zuko_kwargs(config, self.theta_dim))


class NSFPosterior(_FlowPosterior):
    """zuko NSF (rational-quadratic spline MADE transformations): directions as :class:`MAFPosterior`."""

    kind = "nsf"

    def _build_flow(self, config: FlowConfig) -> zuko.lazy.Flow:
        return zuko.flows.NSF(self.theta_dim, self.context_dim, bins=config.bins, **zuko_kwargs(config, self.theta_dim))


def inverse_autoregressive_flow(features: int, context: int, config: FlowConfig) -> zuko.lazy.Flow:
    """A zuko Flow whose autoregressive transformations run base -> data: one pass per sample."""
    maf = zuko.flows.MAF(features, context, **zuko_kwargs(config, features))
    return zuko.flows.Flow([t.inv for t in maf.transform.transforms], maf.base)


class IAFPosterior(_FlowPosterior):
    """Inverse autoregressive flow: one-pass sampling, ``passes``-pass density (module docstring)."""

    kind = "iaf"

    def _build_flow(self, config: FlowConfig) -> zuko.lazy.Flow:
        return inverse_autoregressive_flow(self.theta_dim, self.context_dim, config)
