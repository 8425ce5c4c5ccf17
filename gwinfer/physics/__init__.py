"""Physics of the aligned-spin binary black hole parameter space: pure numpy functions, no torch."""

from gwinfer.physics.parameters import (
    S_eff,
    bilby_mass_ratio_from_q,
    chirp_mass,
    component_masses,
    q_from_bilby_mass_ratio,
    sigma_eff,
    spins_from_effective,
    symmetric_mass_ratio,
)
from gwinfer.physics.timegrid import TimeGrid

__all__ = [
    "S_eff",
    "TimeGrid",
    "bilby_mass_ratio_from_q",
    "chirp_mass",
    "component_masses",
    "q_from_bilby_mass_ratio",
    "sigma_eff",
    "spins_from_effective",
    "symmetric_mass_ratio",
]
