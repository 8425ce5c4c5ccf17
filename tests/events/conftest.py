"""A tiny frequency-domain bank (lalsimulation curves only, no strain files) shared by the event-model tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_bank(tmp_path_factory) -> Path:
    from gwinfer.data.fd_bank import FDBankConfig, make_bank

    config = FDBankConfig(
        prior=str(REPO / "configs/priors/hl-fd.prior"),
        n=400,
        seed=3,
        duration=8.0,
        post_trigger=2.0,
        f_min=20.0,
        f_max=256.0,
        psd_curves=("aLIGOEarlyHighSensitivityP1200087", "aLIGOZeroDetHighPower"),
    )
    return make_bank(config, tmp_path_factory.mktemp("bank") / "bank.h5", workers=1, progress=False)
