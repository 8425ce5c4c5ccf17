"""Fixtures shared by the evaluation tests (the session-wide ones live in tests/conftest.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch


class ConjugateGaussian:
    """Exact posterior of theta ~ N(0, I), x = theta + sigma * eps: N(x / (1 + s2), s2 / (1 + s2)) (+ shift)."""

    def __init__(self, sigma: float, shift: float = 0.0) -> None:
        self.s2, self.shift = sigma**2, shift
        self.gen = torch.Generator().manual_seed(0)

    def sample(self, x: torch.Tensor, n: int) -> torch.Tensor:
        mean = x / (1 + self.s2)
        std = math.sqrt(self.s2 / (1 + self.s2))
        eps = torch.randn((x.shape[0], n, x.shape[1]), generator=self.gen, dtype=torch.float64)
        return (mean[:, None, :] + std * (eps + self.shift)).float()


@pytest.fixture
def conjugate_gaussian() -> type[ConjugateGaussian]:
    """The exact toy posterior estimator class: ``conjugate_gaussian(sigma, shift=0.0)`` (``sample(x, n)``)."""
    return ConjugateGaussian


@pytest.fixture(scope="session")
def trained(tmp_path_factory, micro_catalogue: Path) -> Path:
    """A tiny reduced-basis model trained for 3 epochs on the micro catalogue (window [-4000, 100] M, dt 4 M)."""
    from gwinfer.training.point import train_point

    out = tmp_path_factory.mktemp("run")
    cfg = out / "exp.yaml"
    cfg.write_text(
        json.dumps(
            {
                "data": {"catalogue": str(micro_catalogue), "t_start": -4000.0, "t_end": 100.0, "dt": 4.0},
                "model": {"kind": "reduced_basis", "config": {"n_components": 4, "hidden": 32, "depth": 2, "dt": 4.0}},
                "train": {"epochs": 3, "batch_size": 9, "lr": 1e-3, "tensorboard": False, "early_stopping_patience": 0},
            }
        )
    )
    return train_point(cfg, out / "run")
