"""The kinds of model gwinfer builds, each named once as ``kind -> "module:Class"`` (imported lazily).

* :data:`POINT_ESTIMATORS`: point estimators of (q, s1z, s2z) from h22 (:mod:`gwinfer.models.point`);
* :data:`POSTERIOR_ESTIMATORS`: posterior estimators q(theta | x) (:mod:`gwinfer.models.posterior`).

A new kind is one line here plus its module.
"""

from __future__ import annotations

from gwinfer.registry import Registry

POINT_ESTIMATORS = Registry(
    "model kind",
    {
        "wavenet": "gwinfer.models.point.wavenet:WaveNet",
        "reduced_basis": "gwinfer.models.point.reduced_basis:ReducedBasisModel",
    },
)

POSTERIOR_ESTIMATORS = Registry(
    "posterior kind",
    {
        "gaussian": "gwinfer.models.posterior.gaussian:GaussianPosterior",
        "maf": "gwinfer.models.posterior.flows:MAFPosterior",
        "nsf": "gwinfer.models.posterior.flows:NSFPosterior",
        "iaf": "gwinfer.models.posterior.flows:IAFPosterior",
        "cvae": "gwinfer.models.posterior.cvae:CVAEPosterior",
        "cvae_plus": "gwinfer.models.posterior.cvae:CVAEPlus",
    },
)
