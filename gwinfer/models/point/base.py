"""The base class of gwinfer's point estimators of (q, s1z, s2z) from h22, and its boundary checks.

Contract shared with the trainer and evaluation code (every point model derives from :class:`PointEstimator`):

* input ``x``: float32 (batch, 2, T) = (Re h22, Im h22) on the model's time grid (geometric units);
* targets ``theta``: float32 (batch, 3) = (q = m1/m2 >= 1, s1z, s2z) in physical units;
* ``fit_standardization(theta, x)`` once on a training sample, then ``loss(theta, x) -> (batch,)``,
  ``predict(x) = forward(x) -> (batch, 3)`` physical, ``spec() -> dict``, class attribute ``kind``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gwinfer.checks import number, positive_int
from gwinfer.config import to_dict
from gwinfer.errors import GwinferError
from gwinfer.models.base import checking
from gwinfer.models.point.heads import make_head


@dataclass(frozen=True)
class Augmentation:
    """Train-time perturbations of the input that do not change the physics (issue 13), applied by
    :meth:`PointEstimator.loss` in training mode only (validation and prediction see the data as given).

    noise: complex white noise of standard deviation u^2 * noise * A per real component, A the example's
        peak |h|, u ~ U(0, 1) per example (more weight near clean); 0 = off.
    phase: a constant phase rotation uniform in [-phase, phase] rad per example (what is left of the
        phase convention after a noisy canonicalisation); 0 = off.
    Draws use torch's global generator, which the trainer seeds and checkpoints (exact resume).
    """

    noise: float = 0.0
    phase: float = 0.0

    def __post_init__(self) -> None:
        number("augment.noise", self.noise, 0.0, 0.5)
        number("augment.phase", self.phase, 0.0, 3.1416)

    @property
    def active(self) -> bool:
        return self.noise > 0 or self.phase > 0

    def __call__(self, x: Tensor) -> Tensor:
        """A perturbed copy of x (batch, 2, T)."""
        batch = x.shape[0]
        if self.phase > 0:
            phi = (torch.rand(batch, 1, device=x.device) * 2.0 - 1.0) * self.phase
            c, s = torch.cos(phi), torch.sin(phi)
            x = torch.stack([x[:, 0] * c - x[:, 1] * s, x[:, 0] * s + x[:, 1] * c], dim=1)
        if self.noise > 0:
            peak = torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2).amax(dim=-1).view(batch, 1, 1)
            level = torch.rand(batch, 1, 1, device=x.device) ** 2 * self.noise
            x = x + torch.randn_like(x) * (level * peak)
        return x


def check_waveforms(x: Any, n_samples: int) -> None:
    """Raise a one-line GwinferError unless ``x`` is a float32 tensor of shape (batch, 2, n_samples)."""
    if not isinstance(x, Tensor):
        raise GwinferError(f"input must be a torch tensor of shape (batch, 2, {n_samples}), got {type(x).__name__}")
    if x.ndim != 3 or x.shape[1] != 2 or x.shape[2] != n_samples or x.shape[0] < 1:
        raise GwinferError(f"input has shape {tuple(x.shape)}; expected (batch, 2, {n_samples})")
    if x.dtype != torch.float32:
        raise GwinferError(f"input has dtype {x.dtype}; expected torch.float32 (Re h22, Im h22)")


def check_theta(theta: Any, batch: int) -> None:
    """Raise a one-line GwinferError unless ``theta`` is a float32 tensor of shape (batch, 3)."""
    if not isinstance(theta, Tensor):
        raise GwinferError(f"theta must be a torch tensor of shape ({batch}, 3), got {type(theta).__name__}")
    if theta.ndim != 2 or theta.shape[0] != batch or theta.shape[1] != 3:
        raise GwinferError(f"theta has shape {tuple(theta.shape)}; expected ({batch}, 3) = (q, s1z, s2z)")
    if theta.dtype != torch.float32:
        raise GwinferError(f"theta has dtype {theta.dtype}; expected torch.float32")


class PointEstimator(nn.Module):
    """Base of gwinfer's point estimators: subclasses implement ``leaves(x) -> (a, b)`` and
    ``_fit_inputs(x)``; this class supplies ``loss``, ``predict``, ``forward``, ``spec`` and fitting.

    ``predict`` does not change train/eval mode: call ``model.eval()`` first for deterministic output.
    """

    kind = ""
    config_class: type = object

    def __init__(self, config: Any, n_samples: int, head: str, spin_weight: float) -> None:
        super().__init__()
        positive_int(n_samples, "n_samples", minimum=2)
        self.config = config
        self.n_samples = n_samples
        self.head = make_head(head, spin_weight)

    def leaves(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Leaf outputs a (batch, 1), b (batch, 2) of validated input x (batch, 2, T)."""
        raise NotImplementedError

    def _fit_inputs(self, x: Tensor) -> None:
        """Fit input statistics/bases on a training sample x (batch, 2, T)."""
        raise NotImplementedError

    @torch.no_grad()
    def fit_standardization(self, theta: Tensor, x: Tensor) -> None:
        """Fit target standardisation on ``theta`` (N, 3) and input statistics on ``x`` (N, 2, T); call once.

        With an active :class:`Augmentation` the input statistics see ``x`` and a perturbed copy of it.
        """
        check_waveforms(x, self.n_samples)
        check_theta(theta, x.shape[0])
        if x.shape[0] < 2:
            raise GwinferError("fit_standardization needs at least 2 training examples")
        if not (theta[:, 0] >= 1.0).all():
            raise GwinferError("theta[:, 0] is the mass ratio q = m1/m2 and must be >= 1")
        self.head.fit(theta)
        augment = getattr(self.config, "augment", None)
        if augment is not None and augment.active:
            # the input statistics (and bases) are those of the inputs as training presents them: the clean
            # sample and one perturbed copy, so no input direction is scaled up past its noise
            x = torch.cat([x, augment(x)])
        self._fit_inputs(x)

    @property
    def is_fitted(self) -> bool:
        """True once ``fit_standardization`` has run (or a fitted state was loaded)."""
        return bool(self.head.target.fitted)

    def _check_ready(self) -> None:
        if not self.is_fitted:
            raise GwinferError(f"{self.kind} model is not standardised: call fit_standardization(theta, x) first")

    def loss(self, theta: Tensor, x: Tensor) -> Tensor:
        """Per-sample training loss (batch,) of targets ``theta`` (batch, 3) given waveforms ``x``."""
        check_waveforms(x, self.n_samples)
        check_theta(theta, x.shape[0])
        self._check_ready()
        augment = getattr(self.config, "augment", None)
        if self.training and augment is not None and augment.active:
            x = augment(x)
        a, b = self.leaves(x)
        return self.head.loss(a, b, theta)

    def predict(self, x: Tensor) -> Tensor:
        """Point estimate (batch, 3) = (q, s1z, s2z) in physical units of waveforms x (batch, 2, T)."""
        if checking():
            check_waveforms(x, self.n_samples)
            self._check_ready()
        a, b = self.leaves(x)
        return self.head.predict(a, b)

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`predict` (the exported graph)."""
        return self.predict(x)

    def spec(self) -> dict[str, Any]:
        """JSON-friendly description that rebuilds this model: {"kind", "config", "n_samples"}."""
        return {"kind": self.kind, "config": to_dict(self.config), "n_samples": self.n_samples}
