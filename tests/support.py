"""Plain helpers the tests import (``from support import ...``; tests/ is on pytest's pythonpath).
Fixtures live in the conftest files."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

MICRO = dict(
    name="micro", backend="IMRPhenomT", t_start=-10000.0, t_end=130.0, dt=2.0,
    q_min=1.0, q_max=8.0, dq=3.5, spin_min=-0.8, spin_max=0.8, ds=0.8, shard_size=8,
)  # fmt: skip


def usable_triton():
    """The real Triton install the tests run against, or a pytest skip naming why there is none."""
    from gwinfer.serving.triton.launcher import TritonUnavailable, check_install, find_triton

    try:
        install = find_triton()
        check_install(install)
    except TritonUnavailable as err:
        pytest.skip(f"no usable Triton: {err}")
    return install


def started_triton(repo, install=None, **kwargs):
    """A real ``TritonServer(repo, install, **kwargs)``, started, or a pytest skip naming why it cannot run
    here (``install``: default :func:`usable_triton`)."""
    from gwinfer.serving.triton.launcher import TritonServer, TritonUnavailable

    try:
        return TritonServer(repo, install or usable_triton(), **kwargs).start()
    except TritonUnavailable as err:
        pytest.skip(f"tritonserver cannot run here: {err}")


def tiny_point_model(n_samples: int = 64, seed: int = 0):
    """A fitted, tiny reduced-basis point estimator on random inputs (for export and serving tests)."""
    import torch

    from gwinfer.models import build_model

    g = torch.Generator().manual_seed(seed)
    m = build_model(
        {"kind": "reduced_basis", "config": {"n_components": 4, "hidden": 16, "depth": 1, "dt": 2.0}},
        n_samples=n_samples,
    )
    x = torch.randn(16, 2, n_samples, generator=g)
    theta = torch.stack(
        [1 + 3 * torch.rand(16, generator=g), torch.rand(16, generator=g) - 0.5, torch.rand(16, generator=g) - 0.5], 1
    )
    m.fit_standardization(theta, x)
    return m.eval()
