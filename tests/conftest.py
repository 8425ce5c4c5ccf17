"""Fixtures of every test: seeded randomness and a micro catalogue made once per session (plain helpers that
tests import live in tests/support.py)."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest
from support import MICRO

warnings.filterwarnings("ignore", "Wswiglal-redir-stdio")


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
