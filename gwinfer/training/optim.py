"""Optimizers (Adam, AdamW, LAMB) and the per-step learning-rate schedule of the trainer.

LAMB is You et al. 2019, "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes",
Algorithm 2, for each parameter tensor w (a "layer") at step t::

    m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
    m_hat = m / (1 - b1^t)         v_hat = v / (1 - b2^t)
    r = m_hat / (sqrt(v_hat) + eps) + wd * w
    w <- w - lr * phi(||w||) / ||r|| * r           phi(z) = min(z, 10)

It is :class:`pytorch_optimizer.Lamb` with the constructor options :data:`LAMB_OPTIONS`:

* ``weight_decouple=False``: wd * w is added to the Adam ratio r *inside* the trust ratio (Alg. 2),
  not applied AdamW-style to the weights outside it (the library default);
* ``adam_debias=True``: the step length is lr * phi(||w||) as in Alg. 2; the library default divides it
  by (1 - b1^t) outside the trust ratio (10x too long at step 1 for b1 = 0.9);
* ``rectify=False``, ``adam=False`` (keep the trust ratio), ``grad_averaging=True`` (the (1 - b1) factor),
  ``pre_norm=False`` and ``max_grad_norm=0`` (no global gradient pre-normalisation; the trainer clips).

The library computes r without the bias corrections of m and v. Since the trust ratio makes the step
independent of the scale of r, only the relative weight of eps and wd * w matters:
r_alg2 = c * (m / (sqrt(v) + eps sqrt(1 - b2^t)) + wd (1 - b1^t) / sqrt(1 - b2^t) * w) with a scalar c.
:class:`LambAlg2` therefore runs the library step with those per-step eps and wd and reproduces
Algorithm 2 exactly (up to the library's ``||r|| + eps`` in the trust-ratio denominator, a relative
1e-7 effect). Without weight decay plain ``Lamb(**LAMB_OPTIONS)`` is Algorithm 2 with eps / sqrt(1 - b2^t)
in place of eps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from pytorch_optimizer import Lamb
from torch.optim.lr_scheduler import LambdaLR

from gwinfer.errors import GwinferError
from gwinfer.training.config import TrainConfig

#: pytorch_optimizer.Lamb options that make it LAMB of You et al. 2019, Algorithm 2 (see module doc).
LAMB_OPTIONS: dict[str, Any] = {
    "weight_decouple": False,
    "fixed_decay": False,
    "rectify": False,
    "degenerated_to_sgd": False,
    "grad_averaging": True,
    "adam": False,
    "pre_norm": False,
    "max_grad_norm": 0.0,
    "adam_debias": True,
}
#: Denominator guard of LAMB (the value of the paper's BERT runs) and of Adam/AdamW (torch default).
LAMB_EPS = 1e-6
ADAM_EPS = 1e-8


class LambAlg2(Lamb):
    """``pytorch_optimizer.Lamb(**LAMB_OPTIONS)`` plus the bias corrections of Algorithm 2.

    Before each step the group's eps and weight_decay are replaced by ``eps * sqrt(1 - b2^t)`` and
    ``wd * (1 - b1^t) / sqrt(1 - b2^t)`` (see the module docstring) and restored afterwards, so the
    state_dict always holds the configured values.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        eps: float = LAMB_EPS,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps, **LAMB_OPTIONS)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        saved = []
        for group in self.param_groups:
            t = group.get("step", 0) + 1
            beta1, beta2 = group["betas"][:2]
            bc1, bc2 = 1.0 - beta1**t, 1.0 - beta2**t
            saved.append((group["eps"], group["weight_decay"]))
            group["eps"] = group["eps"] * math.sqrt(bc2)
            group["weight_decay"] = group["weight_decay"] * bc1 / math.sqrt(bc2)
        try:
            return super().step(closure)
        finally:
            for group, (eps, wd) in zip(self.param_groups, saved):
                group["eps"], group["weight_decay"] = eps, wd


def build_optimizer(params: Iterable[Any], config: TrainConfig, world_size: int = 1) -> torch.optim.Optimizer:
    """The optimizer named by ``config.optimizer`` at base lr ``config.effective_lr(world_size)``."""
    lr = config.effective_lr(world_size)
    kw = {"lr": lr, "betas": config.betas, "weight_decay": config.weight_decay}
    if config.optimizer == "adam":
        return torch.optim.Adam(params, eps=ADAM_EPS, **kw)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, eps=ADAM_EPS, **kw)
    if config.optimizer == "lamb":
        return LambAlg2(params, eps=LAMB_EPS, **kw)
    raise GwinferError(f"optimizer = {config.optimizer!r} must be one of adam, adamw, lamb")


def warmup_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """Number of optimizer steps of the linear warm-up (0 without warm-up, else >= 1)."""
    if config.warmup_epochs <= 0:
        return 0
    return max(1, int(round(config.warmup_epochs * steps_per_epoch)))


def lr_factor(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of the base lr for the optimizer step with 0-based index ``s`` (a plain function).

    warm-up: ``min(1, (s + 1) / W)`` over the first W steps (the lr reaches the base value at step W - 1);
    "constant": 1; "step": ``step_gamma ** (s // steps_per_epoch // step_epochs)`` (changes at the
    starts of epochs step_epochs, 2 step_epochs, ...); "cosine": ``(1 + cos(pi p)) / 2`` with
    ``p = (s - W) / (total - W)``, i.e. 1 at the end of the warm-up and 0 after the last step.
    """
    if steps_per_epoch < 1:
        raise GwinferError(f"steps_per_epoch = {steps_per_epoch} must be >= 1")
    warm = warmup_steps(config, steps_per_epoch)
    total = config.epochs * steps_per_epoch
    kind, gamma, period = config.lr_schedule, config.step_gamma, config.step_epochs

    def factor(s: int) -> float:
        f = min(1.0, (s + 1) / warm) if warm else 1.0
        if kind == "step":
            f *= gamma ** ((s // steps_per_epoch) // period)
        elif kind == "cosine":
            p = min(1.0, max(0.0, (s - warm) / max(1, total - warm)))
            f *= 0.5 * (1.0 + math.cos(math.pi * p))
        return f

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> LambdaLR:
    """Per-step LambdaLR (call ``.step()`` after every optimizer step) following :func:`lr_factor`.

    The factor is a plain function, so ``state_dict()`` holds only the step count and base lrs and
    ``load_state_dict`` resumes the schedule exactly.
    """
    return LambdaLR(optimizer, lr_factor(config, steps_per_epoch))
