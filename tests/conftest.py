"""Shared fixtures: seeded randomness and a micro catalogue made once per session."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest

warnings.filterwarnings("ignore", "Wswiglal-redir-stdio")

ROOT = Path(__file__).resolve().parent.parent

MICRO = dict(
    name="micro", backend="IMRPhenomT", t_start=-10000.0, t_end=130.0, dt=2.0,
    q_min=1.0, q_max=8.0, dq=3.5, spin_min=-0.8, spin_max=0.8, ds=0.8, shard_size=8,
)  # fmt: skip


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(1234)
    np.random.seed(1234)
    try:
        import torch

        torch.manual_seed(1234)
    except ImportError:
        pass


@pytest.fixture(scope="session")
def micro_config():
    from gwinfer.config import from_dict
    from gwinfer.data.grid import CatalogueConfig

    return from_dict(CatalogueConfig, MICRO)


@pytest.fixture(scope="session")
def micro_catalogue(tmp_path_factory, micro_config) -> Path:
    """27 training + 4 validation + 4 test IMRPhenomT waveforms over [-10000, 130] M at dt = 2 M."""
    from gwinfer.data.generate import generate_catalogue

    out = tmp_path_factory.mktemp("micro") / "catalogue"
    generate_catalogue(micro_config, out, workers=1, progress=False)
    return out
