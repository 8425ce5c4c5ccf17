"""The parameter box a point estimator was trained on, and predictions kept inside it.

A point estimator answers anything it is given, including nonsense for inputs unlike its training data
(noise, another convention, another code). :func:`guard` keeps every answer a valid binary of the
model's domain and says which ones were not: non-finite outputs and outputs outside the box are
flagged, out-of-box ones are clamped onto it, non-finite ones are replaced by the box centre (and must
be reported as failures by the caller: they carry no information).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError

#: Flags of :func:`guard` (bit values of its ``flags`` array).
OK, OUT_OF_DOMAIN, NON_FINITE = 0, 1, 2
#: Relative slack before an out-of-box value counts as out of domain (the networks' heads are smooth,
#: so values a hair outside the box at its edges are ordinary).
SLACK = 0.02


@dataclass(frozen=True)
class Domain:
    """q = m1/m2 in [q_min, q_max], |s1z|, |s2z| <= spin_max (dimensionless)."""

    q_min: float = 1.0
    q_max: float = 8.0
    spin_max: float = 0.8

    def __post_init__(self) -> None:
        if not (1.0 <= self.q_min < self.q_max and 0.0 < self.spin_max <= 1.0):
            raise GwinferError(f"model domain q in [{self.q_min}, {self.q_max}], |s| <= {self.spin_max} is not valid")

    def to_dict(self) -> dict[str, float]:
        return {"q_min": self.q_min, "q_max": self.q_max, "spin_max": self.spin_max}

    def describe(self) -> str:
        return f"q in [{self.q_min:g}, {self.q_max:g}], |s1z|, |s2z| <= {self.spin_max:g}"


def domain_of(metadata: dict[str, Any]) -> Domain:
    """The domain recorded in a point model's metadata (``domain``); the paper's box for models that
    predate the record (every shipped model was trained on q in [1, 8], |s| <= 0.8)."""
    rec = metadata.get("domain")
    if isinstance(rec, dict):
        return Domain(float(rec["q_min"]), float(rec["q_max"]), float(rec["spin_max"]))
    return Domain()


def guard(pred: np.ndarray, domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """(predictions (N, 3) [q, s1z, s2z] inside ``domain``, flags (N,) int: OK | OUT_OF_DOMAIN | NON_FINITE).

    Out-of-box rows (beyond a relative :data:`SLACK` of the box's extent) are flagged OUT_OF_DOMAIN; every
    row is clamped onto the box; non-finite rows are set to the box centre and flagged NON_FINITE.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 3)
    flags = np.zeros(len(pred), dtype=np.int64)
    bad = ~np.all(np.isfinite(pred), axis=1)
    flags[bad] |= NON_FINITE
    q, s = pred[:, 0], pred[:, 1:]
    tol_q = SLACK * (domain.q_max - domain.q_min)
    tol_s = SLACK * 2 * domain.spin_max
    outside = (q < domain.q_min - tol_q) | (q > domain.q_max + tol_q) | np.any(np.abs(s) > domain.spin_max + tol_s, 1)
    flags[outside & ~bad] |= OUT_OF_DOMAIN
    out = np.column_stack([np.clip(q, domain.q_min, domain.q_max), np.clip(s, -domain.spin_max, domain.spin_max)])
    out[bad] = [0.5 * (domain.q_min + domain.q_max), 0.0, 0.0]
    return out, flags
