"""Toy training run for the data-parallel test and benchmark; launch it plainly or under torchrun.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/training/_ddp_toy.py --out DIR [...]

Every rank builds the same seeded data and model, trains with :class:`gwinfer.training.Trainer`, and
writes its final parameters to ``DIR/params_rank{r}.pt``; rank 0 also writes ``DIR/result.json``
(world size, history, samples/s).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from gwinfer.training import TrainConfig, Trainer, cleanup


class MLPRegressor(nn.Module):
    """x (n_in) -> theta (n_out) by a tanh MLP; per-sample squared error."""

    def __init__(self, n_in: int = 8, n_out: int = 2, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, width), nn.Tanh(), nn.Linear(width, n_out))

    def loss(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return ((self.net(x) - theta) ** 2).sum(dim=-1)


class ConvRegressor(nn.Module):
    """A small 1-D conv net: signal (1, length) -> theta (n_out); per-sample squared error."""

    def __init__(self, n_out: int = 2, channels: int = 16) -> None:
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv1d(1, c, 7, padding=3),
            nn.ReLU(),
            nn.Conv1d(c, 2 * c, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv1d(2 * c, 2 * c, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(2 * c, n_out),
        )

    def loss(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return ((self.net(x) - theta) ** 2).sum(dim=-1)


def make_data(kind: str, n: int, seed: int, dtype: torch.dtype) -> tuple[TensorDataset, TensorDataset]:
    """Seeded synthetic (theta, x) pairs; the same on every rank."""
    g = torch.Generator().manual_seed(seed)
    n_val = max(n // 4, 8)
    theta = torch.rand(n + n_val, 2, generator=g, dtype=torch.float64)
    if kind == "mlp":
        a = torch.randn(2, 8, generator=g, dtype=torch.float64)
        x = torch.sin(theta @ a) + 0.05 * torch.randn(n + n_val, 8, generator=g, dtype=torch.float64)
    else:
        t = torch.linspace(0, 1, 256, dtype=torch.float64)
        x = torch.sin(2 * torch.pi * (4 + 8 * theta[:, :1]) * t) * (0.5 + theta[:, 1:])
        x = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).unsqueeze(1)
    theta, x = theta.to(dtype), x.to(dtype)
    return TensorDataset(theta[:n], x[:n]), TensorDataset(theta[n:], x[n:])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--model", choices=("mlp", "conv"), default="mlp")
    p.add_argument("--n-train", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    dtype = getattr(torch, args.dtype)
    train, val = make_data(args.model, args.n_train, args.seed, dtype)
    torch.manual_seed(args.seed)
    model = (MLPRegressor() if args.model == "mlp" else ConvRegressor()).to(dtype)
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        lr_schedule="cosine",
        warmup_epochs=0.5,
        seed=args.seed,
        device="cpu",
        tensorboard=False,
        early_stopping_patience=0,
    )
    trainer = Trainer(model, train, val, cfg, args.out, metadata={"toy": args.model})
    result = trainer.fit(resume=False)
    rank = trainer.info.rank
    out = Path(args.out)
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / f"params_rank{rank}.pt")
    if trainer.info.is_main:
        summary = {
            "world_size": trainer.info.world_size,
            "history": result["history"],
            "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        }
        (out / "result.json").write_text(json.dumps(summary, indent=1))
    cleanup()


if __name__ == "__main__":
    main()
