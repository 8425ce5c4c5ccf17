"""The domain guard of point predictions: inside the box untouched, outside clamped and flagged,
non-finite replaced and flagged; the domain read from a model's metadata."""

from __future__ import annotations

import numpy as np
import pytest

from gwinfer.errors import GwinferError
from gwinfer.models import NON_FINITE, OUT_OF_DOMAIN, Domain, domain_of, guard


def test_guard_clamps_flags_and_never_returns_nan():
    d = Domain(1.0, 8.0, 0.8)
    pred = np.array([
        [3.0, 0.1, -0.2],      # inside
        [8.05, 0.0, 0.0],      # a hair outside (within 2 % of the extent): clamped, not flagged
        [1e12, 210.0, -3.0],   # nonsense
        [np.nan, 0.0, 0.0],    # no answer
        [0.5, 0.9, 0.0],       # q < 1 and |s| > 0.8
    ])  # fmt: skip
    out, flags = guard(pred, d)
    assert np.all(np.isfinite(out))
    assert np.all((out[:, 0] >= 1) & (out[:, 0] <= 8)) and np.all(np.abs(out[:, 1:]) <= 0.8)
    assert out[0].tolist() == [3.0, 0.1, -0.2] and out[1].tolist() == [8.0, 0.0, 0.0]
    assert out[2].tolist() == [8.0, 0.8, -0.8] and out[3].tolist() == [4.5, 0.0, 0.0]
    assert flags.tolist() == [0, 0, OUT_OF_DOMAIN, NON_FINITE, OUT_OF_DOMAIN]


def test_domain_from_metadata_and_validation():
    assert domain_of({}) == Domain(1.0, 8.0, 0.8)
    assert domain_of({"domain": {"q_min": 1.0, "q_max": 4.0, "spin_max": 0.5}}) == Domain(1.0, 4.0, 0.5)
    with pytest.raises(GwinferError):
        Domain(2.0, 1.0, 0.5)
