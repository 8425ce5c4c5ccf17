"""Output heads of gwinfer's point estimators.

Every network ends in two "leaves" (as in Khan, Huerta & Das 2020): leaf A emits one number, leaf B two.
A :class:`Head` turns those three numbers into physical parameters ``theta = (q, s1z, s2z)`` and owns

* the *head coordinates* ``u`` that the leaves regress (``to_head`` / ``from_head``),
* their standardisation (a :class:`Standardizer` fitted on training targets), and
* the per-sample loss.

Heads (``q = m1/m2 >= 1``; spins dimensionless, along L):

``physics`` (the paper)   u = (q, sigma_eff, S_eff) with sigma_eff = (q s1 + s2)/(1 + q) and
    S_eff = (1 + 3/(4q)) s1 + (1 + 3q/4) s2. Spins are recovered by
    :func:`gwinfer.physics.parameters.spins_from_effective` with the predicted q. Loss: MSE of the three
    standardised coordinates plus ``spin_weight`` times the MSE of the recovered spins (in units of the
    training spins' standard deviation). In that spin term the predicted q is detached and the 2x2 solve
    uses a ridge of :data:`TRAIN_RIDGE` (bounding the gradient at q -> 1 by 1/(2 sqrt(ridge)) ~ 16), so it
    trains the spin leaf only; prediction uses the library's near-exact ridge of 1e-6.
``direct`` (baseline)     u = (q, s1, s2); MSE of the standardised coordinates.
``chi`` (alternative)     u = (ln q, chi_eff, chi_perp) with chi_eff = (q s1 + s2)/(1 + q) and
    chi_perp = (s1 - q s2)/(1 + q), the combination orthogonal to chi_eff in the (s1, s2) plane. The map
    (s1, s2) -> (chi_eff, chi_perp) is a scaled rotation (rows orthogonal, of equal norm
    sqrt(1 + q^2)/(1 + q)), so its condition number is 1 for every q, and its inverse
    s1 = (1 + q)(q chi_eff + chi_perp)/(1 + q^2), s2 = (1 + q)(chi_eff - q chi_perp)/(1 + q^2) never
    divides by zero. ln q makes the mass-ratio error relative. Loss: MSE of standardised coordinates.

All heads clamp the predicted q to >= 1 (the convention); spins are not clipped.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gwinfer.errors import GwinferError
from gwinfer.models.standardize import Standardizer
from gwinfer.physics.parameters import S_eff, sigma_eff, spins_from_effective

HEADS = ("physics", "direct", "chi")
TRAIN_RIDGE = 1e-3  # ridge of the 2x2 spin solve inside the physics head's training loss
PREDICT_RIDGE = 1e-6  # ridge used at prediction (relative bias < 1e-3 for |q - 1| > 0.01)


class Head(nn.Module):
    """Base head: leaf A -> u[:, :1], leaf B -> u[:, 1:3] (standardised head coordinates)."""

    name = ""
    n_a = 1
    n_b = 2

    def __init__(self) -> None:
        super().__init__()
        self.target = Standardizer(3)

    # --- coordinates -------------------------------------------------------------------------------
    def to_head(self, theta: Tensor) -> Tensor:
        """Head coordinates u (batch, 3) of physical ``theta = (q, s1, s2)`` (batch, 3)."""
        raise NotImplementedError

    def from_head(self, u: Tensor) -> Tensor:
        """Physical ``theta = (q, s1, s2)`` (batch, 3) of head coordinates u (batch, 3); q clamped >= 1."""
        raise NotImplementedError

    # --- training ----------------------------------------------------------------------------------
    @torch.no_grad()
    def fit(self, theta: Tensor) -> None:
        """Fit the target standardisation on a training sample of ``theta`` (batch, 3)."""
        self.target.fit(self.to_head(theta.to(torch.float64)))

    def targets(self, theta: Tensor) -> Tensor:
        """Standardised head coordinates of ``theta``: what the leaves are trained to output."""
        return self.target(self.to_head(theta))

    def loss(self, a: Tensor, b: Tensor, theta: Tensor) -> Tensor:
        """Per-sample loss (batch,): mean squared error of the standardised head coordinates."""
        z = torch.cat([a, b], dim=-1)
        return (z - self.targets(theta)).pow(2).mean(dim=-1)

    def predict(self, a: Tensor, b: Tensor) -> Tensor:
        """Physical (q, s1, s2) (batch, 3) from the leaf outputs a (batch, 1) and b (batch, 2)."""
        return self.from_head(self.target.inverse(torch.cat([a, b], dim=-1)))


class DirectHead(Head):
    """u = (q, s1, s2): the baseline that regresses the physical parameters themselves."""

    name = "direct"

    def to_head(self, theta: Tensor) -> Tensor:
        return theta

    def from_head(self, u: Tensor) -> Tensor:
        return torch.cat([u[:, :1].clamp_min(1.0), u[:, 1:]], dim=-1)


class PhysicsHead(Head):
    """u = (q, sigma_eff, S_eff), the paper's physics-inspired head (see the module docstring)."""

    name = "physics"

    def __init__(self, spin_weight: float = 0.1) -> None:
        super().__init__()
        if not spin_weight >= 0.0:
            raise GwinferError(f"spin_weight = {spin_weight} must be >= 0")
        self.spin_weight = float(spin_weight)
        self.spin_scale = Standardizer(2)

    @torch.no_grad()
    def fit(self, theta: Tensor) -> None:
        super().fit(theta)
        self.spin_scale.fit(theta[:, 1:].to(torch.float64))

    def to_head(self, theta: Tensor) -> Tensor:
        q, s1, s2 = theta[:, 0], theta[:, 1], theta[:, 2]
        return torch.stack([q, sigma_eff(q, s1, s2), S_eff(q, s1, s2)], dim=-1)

    def _spins(self, q: Tensor, sig: Tensor, seff: Tensor, ridge: float) -> Tensor:
        s1, s2 = spins_from_effective(q, sig, seff, regularization=ridge)
        return torch.stack([s1, s2], dim=-1)

    def from_head(self, u: Tensor) -> Tensor:
        q = u[:, 0].clamp_min(1.0)
        return torch.cat([q[:, None], self._spins(q, u[:, 1], u[:, 2], PREDICT_RIDGE)], dim=-1)

    def loss(self, a: Tensor, b: Tensor, theta: Tensor) -> Tensor:
        base = super().loss(a, b, theta)
        if self.spin_weight == 0.0:
            return base
        u = self.target.inverse(torch.cat([a, b], dim=-1))
        q = u[:, 0].detach().clamp_min(1.0)
        spins = self._spins(q, u[:, 1], u[:, 2], TRAIN_RIDGE)
        err = (spins - theta[:, 1:]) / self.spin_scale.std
        return base + self.spin_weight * err.pow(2).mean(dim=-1)


class ChiHead(Head):
    """u = (ln q, chi_eff, chi_perp): a perfectly conditioned alternative (see the module docstring)."""

    name = "chi"

    def to_head(self, theta: Tensor) -> Tensor:
        q, s1, s2 = theta[:, 0], theta[:, 1], theta[:, 2]
        return torch.stack([torch.log(q), (q * s1 + s2) / (1.0 + q), (s1 - q * s2) / (1.0 + q)], dim=-1)

    def from_head(self, u: Tensor) -> Tensor:
        q = torch.exp(u[:, 0]).clamp_min(1.0)
        ce, cp = u[:, 1], u[:, 2]
        f = (1.0 + q) / (1.0 + q * q)
        return torch.stack([q, f * (q * ce + cp), f * (ce - q * cp)], dim=-1)


def make_head(name: str, spin_weight: float = 0.1) -> Head:
    """The head called ``name`` ("physics" | "direct" | "chi"); ``spin_weight`` is used by "physics" only."""
    if name == "physics":
        return PhysicsHead(spin_weight)
    if name == "direct":
        return DirectHead()
    if name == "chi":
        return ChiHead()
    raise GwinferError(f"unknown head {name!r}; choose one of {list(HEADS)}")
