"""Exact symmetries of the likelihood imposed on a posterior estimator: the phase shift by pi.

For a signal made of the (l, |m|) = (2, 2) modes alone (non-precessing IMRPhenomPv2/XAS/D, SEOBNRv4, ...),
h(phase + pi) = h(phase) exactly (the modes carry exp(-2i phase); checked to 1e-13 on the gw5d signals):
the posterior of ``phase`` on [0, 2 pi) is made of two identical halves. A flow has to learn both
copies and the periodic boundary, and does it imperfectly (a p-p test shows it first). With the symmetry
imposed, the estimator only needs the folded variable phase mod pi:

* sampling: draw theta ~ q, replace phase by (phase mod pi) + pi * B, B ~ Bernoulli(1/2);
* density of that procedure: q_sym(theta) = 1/2 sum_k q(theta with phase = (phase mod pi) + k pi),
  k = -1 .. 2 (the network's phase draws lie in [-pi, 3 pi): its prior support [0, 2 pi) plus leakage),
  so q_sym is normalised on [0, 2 pi) and exact for importance sampling.

:func:`symmetrised` wraps an estimator when its training simulation has the symmetry (phase inferred,
22-mode-only approximant, no in-plane spins in gwinfer's priors), else returns it unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

#: lalsimulation approximants whose signal (as gwinfer generates it: no in-plane spins) holds only the
#: (2, +-2) modes, so that phase -> phase + pi leaves it unchanged.
QUADRUPOLE_ONLY = (
    "IMRPhenomPv2",
    "IMRPhenomD",
    "IMRPhenomXAS",
    "IMRPhenomT",
    "SEOBNRv4",
    "SEOBNRv4_ROM",
    "SEOBNRv4_opt",
    "TaylorF2",
)


class PhaseSymmetric(nn.Module):
    """``inner`` with phase -> phase + ``period`` imposed (module docstring); same estimator API."""

    def __init__(self, inner: Any, index: int, period: float = math.pi) -> None:
        super().__init__()
        self.inner, self.index, self.period = inner, int(index), float(period)
        self.theta_dim, self.x_shape, self.kind = inner.theta_dim, inner.x_shape, f"{inner.kind}+phase-symmetric"

    def _fold(self, theta: Tensor) -> Tensor:
        out = theta.clone()
        flip = torch.randint(0, 2, out.shape[:-1], device=out.device).to(out.dtype)
        out[..., self.index] = torch.remainder(out[..., self.index], self.period) + self.period * flip
        return out

    @torch.no_grad()
    def sample(self, x: Tensor, n: int) -> Tensor:
        return self._fold(self.inner.sample(x, n))

    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        base = torch.remainder(theta[:, self.index], self.period)
        terms = []
        for k in (-1, 0, 1, 2):
            shifted = theta.clone()
            shifted[:, self.index] = base + k * self.period
            terms.append(self.inner.log_prob(shifted, x))
        return torch.logsumexp(torch.stack(terms), dim=0) - math.log(2.0)

    @torch.no_grad()
    def sample_and_log_prob(self, x: Tensor, n: int) -> tuple[Tensor, Tensor]:
        theta = self.sample(x, n)
        single = theta.ndim == 2
        t = theta[None] if single else theta
        b = t.shape[0]
        xs = (x[None] if single else x).repeat_interleave(n, dim=0)
        lp = self.log_prob(t.reshape(b * n, -1), xs).reshape(b, n)
        return theta, (lp[0] if single else lp)

    def forward(self, theta: Tensor, x: Tensor) -> Tensor:
        return self.log_prob(theta, x)


def has_phase_symmetry(metadata: dict[str, Any]) -> bool:
    """True when the model infers ``phase`` of a 22-mode-only signal (its simulation's approximant)."""
    sim = metadata.get("simulation") or {}
    return "phase" in (metadata.get("names") or []) and sim.get("approximant") in QUADRUPOLE_ONLY


def symmetrised(model: Any, metadata: dict[str, Any]) -> Any:
    """``model`` wrapped in :class:`PhaseSymmetric` when :func:`has_phase_symmetry`, else ``model``."""
    if not has_phase_symmetry(metadata):
        return model
    return PhaseSymmetric(model, list(metadata["names"]).index("phase")).eval()
