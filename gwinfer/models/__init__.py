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
    "HEADS": "gwinfer.models.point.heads",
    "ChiHead": "gwinfer.models.point.heads",
    "DirectHead": "gwinfer.models.point.heads",
    "Head": "gwinfer.models.point.heads",
    "PhysicsHead": "gwinfer.models.point.heads",
    "PointEstimator": "gwinfer.models.point.base",
    "make_head": "gwinfer.models.point.heads",
    "PCABasis": "gwinfer.models.point.reduced_basis",
    "ReducedBasisConfig": "gwinfer.models.point.reduced_basis",
    "ReducedBasisModel": "gwinfer.models.point.reduced_basis",
    "POINT_ESTIMATORS": "gwinfer.models.registry",
    "POSTERIOR_ESTIMATORS": "gwinfer.models.registry",
    "PosteriorEstimator": "gwinfer.models.posterior.base",
    "build_model": "gwinfer.models.builder",
    "load_model": "gwinfer.models.builder",
    "model_payload": "gwinfer.models.builder",
    "save_model": "gwinfer.models.builder",
    "resolve_model_path": "gwinfer.models.builder",
    "is_posterior_file": "gwinfer.models.builder",
    "load_estimator": "gwinfer.models.builder",
    "Standardizer": "gwinfer.models.standardize",
    "Domain": "gwinfer.models.point.domain",
    "domain_of": "gwinfer.models.point.domain",
    "guard": "gwinfer.models.point.domain",
    "NON_FINITE": "gwinfer.models.point.domain",
    "OUT_OF_DOMAIN": "gwinfer.models.point.domain",
    "symmetrised": "gwinfer.models.posterior.symmetry",
    "build_estimator": "gwinfer.models.builder",
    "save_estimator": "gwinfer.models.builder",
    "WaveNet": "gwinfer.models.point.wavenet",
    "WaveNetConfig": "gwinfer.models.point.wavenet",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gwinfer.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
