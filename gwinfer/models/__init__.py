"""Models: point estimators of (q, s1z, s2z) from h22 and posterior estimators of source parameters from strain.

The public names below are imported lazily (``gwinfer.models.load_model`` does not build the posterior
families). Layers above (training, evaluation, serving) use only these names:

* :func:`load_model`, :func:`load_estimator`: a point / posterior model file -> (model, metadata);
* :func:`resolve_model_path`: a model folder or file -> the ``model.pt`` file;
* :func:`is_posterior_file`: whether a file holds a posterior estimator.

This package never imports lalsimulation.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HEADS": "gwinfer.models.heads",
    "ChiHead": "gwinfer.models.heads",
    "DirectHead": "gwinfer.models.heads",
    "Head": "gwinfer.models.heads",
    "PhysicsHead": "gwinfer.models.heads",
    "PointEstimator": "gwinfer.models.heads",
    "make_head": "gwinfer.models.heads",
    "PCABasis": "gwinfer.models.reduced_basis",
    "ReducedBasisConfig": "gwinfer.models.reduced_basis",
    "ReducedBasisModel": "gwinfer.models.reduced_basis",
    "MODEL_KINDS": "gwinfer.models.registry",
    "build_model": "gwinfer.models.registry",
    "load_model": "gwinfer.models.registry",
    "model_payload": "gwinfer.models.registry",
    "save_model": "gwinfer.models.registry",
    "resolve_model_path": "gwinfer.models.registry",
    "is_posterior_file": "gwinfer.models.registry",
    "load_estimator": "gwinfer.models.posterior",
    "Standardizer": "gwinfer.models.standardize",
    "symmetrised": "gwinfer.models.symmetry",
    "build_estimator": "gwinfer.models.posterior",
    "save_estimator": "gwinfer.models.posterior",
    "WaveNet": "gwinfer.models.wavenet",
    "WaveNetConfig": "gwinfer.models.wavenet",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gwinfer.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
