"""Fixtures shared by the evaluation tests (the session-wide ones live in tests/conftest.py)."""

from __future__ import annotations

import math

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
