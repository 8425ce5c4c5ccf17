"""Point estimators of (q, s1z, s2z) from h22: the paper's WaveNet and gwinfer's reduced-basis MLP.

Contract shared with the trainer and evaluation code (all models derive from :class:`PointEstimator`):

* input ``x``: float32 (batch, 2, T) = (Re h22, Im h22) on the model's time grid;
* targets ``theta``: float32 (batch, 3) = (q = m1/m2 >= 1, s1z, s2z) in physical units;
* ``fit_standardization(theta, x)`` once on a training sample, then ``loss(theta, x) -> (batch,)``,
  ``predict(x) = forward(x) -> (batch, 3)`` physical, ``spec() -> dict``, class attribute ``kind``;
* :func:`build_model`, :func:`save_model`, :func:`load_model` in :mod:`gwinfer.models.registry`.

This package never imports lalsimulation.
"""

from gwinfer.models.heads import HEADS, ChiHead, DirectHead, Head, PhysicsHead, PointEstimator, make_head
from gwinfer.models.reduced_basis import PCABasis, ReducedBasisConfig, ReducedBasisModel
from gwinfer.models.registry import MODEL_KINDS, build_model, load_model, model_payload, save_model
from gwinfer.models.standardize import Standardizer
from gwinfer.models.wavenet import WaveNet, WaveNetConfig

__all__ = [
    "HEADS",
    "MODEL_KINDS",
    "ChiHead",
    "DirectHead",
    "Head",
    "PCABasis",
    "PhysicsHead",
    "PointEstimator",
    "ReducedBasisConfig",
    "ReducedBasisModel",
    "Standardizer",
    "WaveNet",
    "WaveNetConfig",
    "build_model",
    "load_model",
    "make_head",
    "model_payload",
    "save_model",
]
