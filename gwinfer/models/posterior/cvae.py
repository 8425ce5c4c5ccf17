"""Conditional variational autoencoders as posterior estimators: CVAE and the paper's CVAE+.

Model (in the standardised parameter space u, context c from the embedding network, latent z of
``latent_dim``): an encoder q(z | u, c), a conditional prior p(z | c) and a decoder p(u | z, c), so
that the posterior is the marginal p(u | c) = E_{p(z|c)} p(u | z, c).

* ``cvae`` (:class:`CVAEPosterior`): all three are diagonal Gaussians whose means and scales come from
  MLPs (GELU; scale = softplus + 1e-3 floor); the KL term of the ELBO is analytic.
* ``cvae_plus`` (:class:`CVAEPlus`, Green, Simpson & Gair 2020): the same Gaussians become the bases
  of zuko flows - an inverse autoregressive flow after the encoder (the encoder is only ever sampled
  together with the density of its own samples: one pass per transformation,
  :func:`gwinfer.models.posterior.flows.inverse_autoregressive_flow`), a MAF on the prior and a MAF after the
  decoder (both evaluated as densities during training: one pass each). The KL term is estimated with
  the reparameterised encoder sample, log q(z) - log p(z).

Training: ``loss = -[log p(u | z, c) - w * KL]`` with one reparameterised z ~ q(z | u, c), i.e. the
negative ELBO with the KL weight w annealed (Bowman et al. 2016; cyclic: Fu et al. 2019). ``w`` is, in
this order: the value set by :meth:`CVAEPosterior.set_kl_weight` (e.g. by a trainer callback; ``None``
restores the schedule), 1 in eval mode (so validation losses are the true negative ELBO, an upper bound
on -log p), else the schedule of ``kl_schedule`` at the internal counter ``step`` (a buffer, saved with
the model and incremented by every training-mode ``loss`` call with gradients enabled):

* ``constant``: w = kl_weight_max;
* ``linear``: w = kl_weight_max * min(1, step / (kl_ramp_fraction * kl_cycle_steps)), once;
* ``cyclic``: t = (step mod kl_cycle_steps) / kl_cycle_steps, w = kl_weight_max * min(1, t / kl_ramp_fraction).

``log_prob`` has no closed form: it is the importance-sampling estimate with K = ``is_samples``
(an attribute initialised from the config; it may be changed on an instance) proposals z_k ~ q(z | u, c):
log (1/K) sum_k p(u | z_k, c) p(z_k | c) / q(z_k | u, c). Its exponential is an unbiased estimate of
the density (so it integrates to 1 on average), but the log is biased low by Jensen's
inequality (by about Var(w)/(2K E[w]^2)) and it is random: fix the torch seed for repeatability.
``sample`` draws z ~ p(z | c) then u ~ p(u | z, c) (exact ancestral sampling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import zuko
from torch import Tensor, nn
from torch.distributions import Distribution

from gwinfer.checks import positive_int, positive_ints
from gwinfer.errors import GwinferError
from gwinfer.models.base import mlp
from gwinfer.models.posterior.base import PosteriorEstimator
from gwinfer.models.posterior.embedding import EmbeddingConfig
from gwinfer.models.posterior.flows import FlowConfig, inverse_autoregressive_flow, zuko_kwargs

KL_SCHEDULES = ("cyclic", "linear", "constant")
MIN_SCALE = 1e-3


@dataclass(frozen=True)
class CVAEConfig:
    """Hyper-parameters of :class:`CVAEPosterior` and :class:`CVAEPlus` (``flow_*``: CVAE+ only)."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    latent_dim: int = 8
    hidden: tuple[int, ...] = (128, 128)  # MLPs of the encoder, prior and decoder Gaussians
    is_samples: int = 64  # K of the importance-sampling log_prob
    kl_schedule: str = "cyclic"  # "cyclic" | "linear" | "constant"
    kl_cycle_steps: int = 2000
    kl_ramp_fraction: float = 0.5
    kl_weight_max: float = 1.0
    flow_transforms: int = 3  # CVAE+: transformations of each of the three flows
    flow_hidden: tuple[int, ...] = (64, 64)  # CVAE+: MADE hidden sizes

    def __post_init__(self) -> None:
        for name in ("latent_dim", "is_samples", "kl_cycle_steps", "flow_transforms"):
            positive_int(getattr(self, name), f"cvae.{name}")
        positive_ints(self.hidden, "cvae.hidden")
        positive_ints(self.flow_hidden, "cvae.flow_hidden")
        if self.kl_schedule not in KL_SCHEDULES:
            raise GwinferError(f"cvae.kl_schedule = {self.kl_schedule!r}; choose one of {list(KL_SCHEDULES)}")
        if not 0.0 < self.kl_ramp_fraction <= 1.0:
            raise GwinferError(f"cvae.kl_ramp_fraction = {self.kl_ramp_fraction} must lie in (0, 1]")
        if not 0.0 <= self.kl_weight_max <= 10.0:
            raise GwinferError(f"cvae.kl_weight_max = {self.kl_weight_max} must lie in [0, 10]")


class ConditionalDiagNormal(zuko.lazy.LazyDistribution):
    """MLP(input) -> N(mean, diag(scale^2)) over ``features`` dims; usable as a zuko flow's base."""

    def __init__(self, n_in: int, features: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.features = features
        self.net = mlp([n_in, *hidden, 2 * features], nn.GELU)

    def forward(self, c: Tensor | None = None) -> Distribution:
        assert c is not None
        mean, raw = self.net(c).chunk(2, dim=-1)
        scale = nn.functional.softplus(raw + 0.5413) + MIN_SCALE  # softplus(0.5413) = 1
        return zuko.distributions.DiagNormal(mean, scale)


def _rsample_and_log_prob(dist: Distribution) -> tuple[Tensor, Tensor]:
    if hasattr(dist, "rsample_and_log_prob"):  # zuko NormalizingFlow: one pass for an IAF
        return dist.rsample_and_log_prob()
    z = dist.rsample()
    return z, dist.log_prob(z)


class CVAEPosterior(PosteriorEstimator):
    """Gaussian CVAE: encoder q(z|u,c), prior p(z|c), decoder p(u|z,c) (module docstring)."""

    kind = "cvae"
    config_class = CVAEConfig
    analytic_kl = True
    step: Tensor

    def __init__(
        self, config: CVAEConfig | None = None, theta_dim: int = 2, x_shape: int | tuple[int, ...] = (2,)
    ) -> None:
        config = config or CVAEConfig()
        super().__init__(config, theta_dim, x_shape)
        d, c, lat = self.theta_dim, self.context_dim, config.latent_dim
        self.latent_dim = lat
        self.is_samples = config.is_samples  # K of the IS log_prob; may be changed on an instance
        self.encoder, self.prior, self.decoder = self._build(d, c, lat, config)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.kl_weight_override: float | None = None

    def _build(self, d: int, c: int, lat: int, config: CVAEConfig) -> tuple[nn.Module, nn.Module, nn.Module]:
        h = tuple(config.hidden)
        encoder, prior = ConditionalDiagNormal(d + c, lat, h), ConditionalDiagNormal(c, lat, h)
        return encoder, prior, ConditionalDiagNormal(lat + c, d, h)

    # --- KL annealing ------------------------------------------------------------------------------
    def set_kl_weight(self, weight: float | None) -> None:
        """Fix the KL weight (>= 0) used by ``loss`` in every mode, or ``None`` to follow the schedule."""
        if weight is not None and not (isinstance(weight, (int, float)) and 0.0 <= float(weight) < math.inf):
            raise GwinferError(f"KL weight = {weight!r} must be a finite number >= 0 (or None)")
        self.kl_weight_override = None if weight is None else float(weight)

    def scheduled_kl_weight(self, step: int) -> float:
        """The annealing schedule's KL weight at training step ``step``."""
        c = self.config
        if c.kl_schedule == "constant":
            return c.kl_weight_max
        ramp = c.kl_ramp_fraction * c.kl_cycle_steps
        if c.kl_schedule == "linear":
            return c.kl_weight_max * min(1.0, step / ramp)
        t = (step % c.kl_cycle_steps) / c.kl_cycle_steps
        return c.kl_weight_max * min(1.0, t / c.kl_ramp_fraction)

    @property
    def kl_weight(self) -> float:
        """The KL weight the next ``loss`` call uses (override, else 1 in eval mode, else the schedule)."""
        if self.kl_weight_override is not None:
            return self.kl_weight_override
        if not self.training:
            return 1.0
        return self.scheduled_kl_weight(int(self.step))

    # --- the model ---------------------------------------------------------------------------------
    def _loss(self, u: Tensor, c: Tensor) -> Tensor:
        weight = self.kl_weight
        if self.training and torch.is_grad_enabled():
            self.step += 1
        q = self.encoder(torch.cat([u, c], dim=-1))
        z, log_q = _rsample_and_log_prob(q)
        reconstruction = self.decoder(torch.cat([z, c], dim=-1)).log_prob(u)
        prior = self.prior(c)
        if self.analytic_kl:
            kl = torch.distributions.kl_divergence(q, prior)
        else:
            kl = log_q - prior.log_prob(z)
        return -(reconstruction - weight * kl)

    def _log_prob(self, u: Tensor, c: Tensor) -> Tensor:
        k, b = int(self.is_samples), u.shape[0]
        uk, ck = u.repeat_interleave(k, dim=0), c.repeat_interleave(k, dim=0)
        z, log_q = _rsample_and_log_prob(self.encoder(torch.cat([uk, ck], dim=-1)))
        log_w = self.decoder(torch.cat([z, ck], dim=-1)).log_prob(uk) + self.prior(ck).log_prob(z) - log_q
        return torch.logsumexp(log_w.view(b, k), dim=1) - math.log(k)

    def _sample(self, c: Tensor, n: int) -> Tensor:
        b = c.shape[0]
        ck = c.repeat_interleave(n, dim=0)
        z = self.prior(ck).rsample()
        u = self.decoder(torch.cat([z, ck], dim=-1)).rsample()
        return u.view(b, n, self.theta_dim)


class CVAEPlus(CVAEPosterior):
    """CVAE+: IAF after the encoder, MAF on the prior, MAF after the decoder (module docstring)."""

    kind = "cvae_plus"
    analytic_kl = False

    def _build(self, d: int, c: int, lat: int, config: CVAEConfig) -> tuple[nn.Module, nn.Module, nn.Module]:
        h = tuple(config.hidden)
        fc = FlowConfig(transforms=config.flow_transforms, hidden=tuple(config.flow_hidden))
        encoder = inverse_autoregressive_flow(lat, d + c, fc)
        encoder.base = ConditionalDiagNormal(d + c, lat, h)
        prior = zuko.flows.MAF(lat, c, **zuko_kwargs(fc, lat))
        prior.base = ConditionalDiagNormal(c, lat, h)
        decoder = zuko.flows.MAF(d, lat + c, **zuko_kwargs(fc, d))
        decoder.base = ConditionalDiagNormal(lat + c, d, h)
        return encoder, prior, decoder
