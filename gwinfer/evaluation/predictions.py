"""Per-waveform results of a point estimator on a catalogue split: the :class:`Evaluation` record.

Shared by :mod:`gwinfer.evaluation.evaluate` (which fills it) and :mod:`gwinfer.evaluation.plots` (which
draws it), so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gwinfer.evaluation.quantiles import prediction_errors
from gwinfer.physics.timegrid import TimeGrid

#: Columns of :attr:`Evaluation.truth` and :attr:`Evaluation.pred`: q = m1/m2 >= 1, s1z, s2z (dimensionless).
COLUMNS = ("q", "s1", "s2")


@dataclass
class Evaluation:
    """Per-waveform results of one split.

    ``truth``, ``pred``: (N, 3) [q, s1z, s2z]; ``overlaps``: (N,) overlap of each true h22 with the one
    regenerated at the prediction (None when not computed); ``grid``: the catalogue's time grid (M) the
    overlaps were computed on; ``backend`` and ``backend_options``: the waveform model that regenerated
    the predictions; ``n_clipped``: predictions clipped into the backend's validity box first;
    ``n_non_finite`` / ``n_out_of_domain``: predictions the domain guard (:func:`gwinfer.models.guard`)
    replaced (scored as overlap 0) / clamped into the model's domain.
    """

    truth: np.ndarray
    pred: np.ndarray
    overlaps: np.ndarray | None
    grid: TimeGrid
    backend: str
    backend_options: dict[str, float]
    n_clipped: int = 0
    n_non_finite: int = 0
    n_out_of_domain: int = 0
    raw: np.ndarray | None = None  # (N, 3) network outputs before the domain guard
    flags: np.ndarray | None = None  # (N,) guard flags (gwinfer.models.OUT_OF_DOMAIN | NON_FINITE)

    def columns(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(prediction, truth) as ``{"q", "s1", "s2"}`` -> (N,) arrays."""
        return (
            {k: self.pred[:, i] for i, k in enumerate(COLUMNS)},
            {k: self.truth[:, i] for i, k in enumerate(COLUMNS)},
        )

    def errors(self) -> dict[str, np.ndarray]:
        """Prediction minus truth of q, s1, s2, sigma_eff, S_eff, each (N,) and dimensionless."""
        return prediction_errors(*self.columns())
