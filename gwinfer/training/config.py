"""The settings of one training run: a frozen, validated dataclass (``train:`` section of a YAML config).

Every bad value raises :class:`~gwinfer.errors.GwinferError` with one line naming the setting and the
accepted range. Build it from YAML with ``gwinfer.config.from_dict(TrainConfig, mapping, "train")``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gwinfer.checks import boolean, choice, integer, number
from gwinfer.errors import GwinferError

OPTIMIZERS = ("adam", "adamw", "lamb")
LR_SCHEDULES = ("constant", "step", "cosine")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")

#: Settings that may differ between a checkpoint and the run resuming it: they change how long or
#: where the run goes, never the numbers it computes.
RESUMABLE_CHANGES = ("epochs", "max_minutes", "device", "num_workers", "tensorboard", "log_every_steps")


@dataclass(frozen=True)
class TrainConfig:
    """How to train a model (units in brackets).

    epochs: number of passes over the training set, 1 .. 1_000_000.
    batch_size: GLOBAL batch size [samples]; each of the ``world_size`` ranks takes batch_size // world_size.
    optimizer: "adam" (L2 weight decay), "adamw" (decoupled weight decay) or "lamb" (You et al. 2019, Alg. 2).
    lr: base learning rate, (0, 10].
    weight_decay: weight-decay coefficient, [0, 1].
    betas: (beta1, beta2) moment decay rates, each in [0, 1).
    lr_schedule: "constant", "step" (multiply by step_gamma every step_epochs epochs) or "cosine"
        (from lr after the warm-up down to 0 at the end of the last epoch).
    step_epochs: period of the "step" schedule [epochs], >= 1.
    step_gamma: factor of the "step" schedule, (0, 1]; 0.5 halves the learning rate.
    warmup_epochs: linear warm-up length [epochs, may be fractional], 0 .. epochs; 0 = none.
    scale_lr_with_world_size: multiply lr by the number of processes (linear scaling rule).
    grad_clip: maximum global gradient L2 norm, >= 0; 0 = no clipping.
    early_stopping_patience: stop after this many epochs without validation improvement; 0 = never.
    min_delta: smallest decrease of the validation loss that counts as an improvement, >= 0.
    seed: seed of shuffling and of every random number generator, 0 .. 2**32 - 1.
    device: "auto" (CUDA if available, else CPU), "cpu", "cuda" (one GPU per local rank) or "cuda:N".
    num_workers: DataLoader worker processes per rank, 0 .. 256.
    max_minutes: time budget [minutes]; stop at the end of the epoch that crosses it; 0 = none.
    tensorboard: write TensorBoard scalars to ``out_dir/tb``.
    log_every_steps: optimizer steps between progress-bar / TensorBoard updates, >= 1.
    """

    epochs: int = 100
    batch_size: int = 512
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: str = "cosine"
    step_epochs: int = 10
    step_gamma: float = 0.5
    warmup_epochs: float = 0.0
    scale_lr_with_world_size: bool = False
    grad_clip: float = 0.0
    early_stopping_patience: int = 20
    min_delta: float = 0.0
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    max_minutes: float = 0.0
    tensorboard: bool = True
    log_every_steps: int = 50

    def __post_init__(self) -> None:
        integer("epochs", self.epochs, 1, 1_000_000)
        integer("batch_size", self.batch_size, 1, 1 << 30)
        choice("optimizer", self.optimizer, OPTIMIZERS)
        number("lr", self.lr, 0.0, 10.0, open_low=True)
        number("weight_decay", self.weight_decay, 0.0, 1.0)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise GwinferError(f"betas = {self.betas!r} must be a pair (beta1, beta2), each in [0, 1)")
        for i, b in enumerate(self.betas):
            number(f"betas[{i}]", b, 0.0, 1.0, open_high=True)
        object.__setattr__(self, "betas", (float(self.betas[0]), float(self.betas[1])))
        choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        integer("step_epochs", self.step_epochs, 1, 1_000_000)
        number("step_gamma", self.step_gamma, 0.0, 1.0, open_low=True)
        number("warmup_epochs", self.warmup_epochs, 0.0, float(self.epochs))
        boolean("scale_lr_with_world_size", self.scale_lr_with_world_size)
        number("grad_clip", self.grad_clip, 0.0, 1e12)
        integer("early_stopping_patience", self.early_stopping_patience, 0, 1_000_000)
        number("min_delta", self.min_delta, 0.0, 1e12)
        integer("seed", self.seed, 0, 2**32 - 1)
        if not isinstance(self.device, str) or not _DEVICE_RE.match(self.device):
            raise GwinferError(f"device = {self.device!r} must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
        integer("num_workers", self.num_workers, 0, 256)
        number("max_minutes", self.max_minutes, 0.0, 1e9)
        boolean("tensorboard", self.tensorboard)
        integer("log_every_steps", self.log_every_steps, 1, 1 << 30)

    def per_rank_batch(self, world_size: int) -> int:
        """Batch size of one rank [samples]; the global batch must split evenly over ``world_size``."""
        if world_size < 1 or self.batch_size % world_size != 0 or self.batch_size < world_size:
            raise GwinferError(
                f"batch_size = {self.batch_size} must be a positive multiple of the number of processes ({world_size})"
            )
        return self.batch_size // world_size

    def effective_lr(self, world_size: int = 1) -> float:
        """Base learning rate after the linear scaling rule (``lr * world_size`` when enabled)."""
        return self.lr * (world_size if self.scale_lr_with_world_size else 1)
