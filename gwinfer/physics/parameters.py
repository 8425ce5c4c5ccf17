"""Mass and spin parameters of quasi-circular, non-precessing binaries.

Conventions
-----------
* ``q = m1 / m2 >= 1`` is the mass ratio of Khan, Huerta & Das (arXiv:1809.09911 and the
  "physics-inspired" paper, arXiv:2004.09524). bilby's ``mass_ratio`` is the inverse, ``m2 / m1 <= 1``;
  the two are kept apart by name and converted only with :func:`q_from_bilby_mass_ratio` and
  :func:`bilby_mass_ratio_from_q`.
* ``s1, s2`` (bilby: ``chi_1``, ``chi_2``) are the dimensionless spin components along the orbital
  angular momentum, in [-1, 1].
* Masses are in any one unit (solar masses throughout gwinfer); the functions are unit-agnostic.

All functions are vectorised over numpy arrays; the arithmetic-only ones (``sigma_eff``, ``S_eff``,
``spins_from_effective``, ``symmetric_mass_ratio``) also work unchanged on torch tensors, which is how
the models' physics-inspired heads reuse them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gwinfer.errors import GwinferError

ArrayLike = Any  # numpy array, python float or torch tensor


def q_from_bilby_mass_ratio(mass_ratio: ArrayLike) -> np.ndarray:
    """Paper mass ratio q = m1/m2 >= 1 from bilby's ``mass_ratio`` = m2/m1 in (0, 1]."""
    mr = np.asarray(mass_ratio, dtype=float)
    if np.any(~np.isfinite(mr)) or np.any(mr <= 0) or np.any(mr > 1):
        raise GwinferError("bilby mass_ratio = m2/m1 must lie in (0, 1]")
    return 1.0 / mr


def bilby_mass_ratio_from_q(q: ArrayLike) -> np.ndarray:
    """bilby's ``mass_ratio`` = m2/m1 <= 1 from the paper's q = m1/m2 >= 1."""
    qa = np.asarray(q, dtype=float)
    if np.any(~np.isfinite(qa)) or np.any(qa < 1):
        raise GwinferError("mass ratio q = m1/m2 must be >= 1 (use q_from_bilby_mass_ratio for m2/m1)")
    return 1.0 / qa


def component_masses(total_mass: ArrayLike, q: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Component masses (m1, m2), m1 >= m2, from the total mass M and q = m1/m2 >= 1 (same unit as M)."""
    M = np.asarray(total_mass, dtype=float)
    qa = np.asarray(q, dtype=float)
    return M * qa / (1.0 + qa), M / (1.0 + qa)


def symmetric_mass_ratio(q: ArrayLike) -> ArrayLike:
    """eta = m1 m2 / M^2 = q / (1 + q)^2, in (0, 1/4]."""
    return q / (1.0 + q) ** 2


def chirp_mass(m1: ArrayLike, m2: ArrayLike) -> np.ndarray:
    """Chirp mass (m1 m2)^(3/5) / (m1 + m2)^(1/5), in the unit of the masses."""
    a, b = np.asarray(m1, dtype=float), np.asarray(m2, dtype=float)
    return (a * b) ** 0.6 / (a + b) ** 0.2


def sigma_eff(q: ArrayLike, s1: ArrayLike, s2: ArrayLike) -> ArrayLike:
    """Effective spin (q s1 + s2) / (1 + q); equal to chi_eff = (m1 s1 + m2 s2) / M for aligned spins."""
    return (q * s1 + s2) / (1.0 + q)


def S_eff(q: ArrayLike, s1: ArrayLike, s2: ArrayLike) -> ArrayLike:  # noqa: N802 (the paper's symbol)
    """The paper's second spin combination (1 + 3/(4q)) s1 + (1 + 3q/4) s2 (1.5PN spin-orbit coefficient)."""
    return (1.0 + 0.75 / q) * s1 + (1.0 + 0.75 * q) * s2


def _c(q: ArrayLike) -> ArrayLike:
    """dS_eff/ds1 along the line of constant sigma_eff: (1 - q) [1 + 3 (1 + q + q^2) / (4 q)]; zero at q = 1."""
    return (1.0 - q) * (1.0 + 0.75 * (1.0 + q + q * q) / q)


def spins_from_effective(
    q: ArrayLike, sigma: ArrayLike, s_eff: ArrayLike, regularization: float = 1e-6
) -> tuple[ArrayLike, ArrayLike]:
    """Solve sigma_eff(q, s1, s2) = sigma and S_eff(q, s1, s2) = s_eff for the spins (s1, s2).

    The 2x2 linear system has determinant proportional to (q - 1): at q = 1 only the sum s1 + s2 is
    measurable. We write the solution as a step ``delta`` away from the equal-spin point
    ``s1 = s2 = sigma`` (which always satisfies the sigma equation) along the line of constant sigma,
    ``s1 = sigma + delta``, ``s2 = sigma - q delta``, and solve ``c(q) delta = r`` with
    ``r = s_eff - S_eff(q, sigma, sigma)`` by a ridge step ``delta = c r / (c^2 + regularization)``.

    * Away from q = 1 this is the exact inverse up to a relative bias ``regularization / c^2``
      (``c ~ -3.25 (q - 1)``: below 1e-3 for |q - 1| > 0.01 with the default 1e-6).
    * At q = 1 it returns the equal-spin, minimum-norm solution ``s1 = s2 = sigma`` and never divides by
      zero; as q -> 1 the result goes continuously to it.

    Works on numpy arrays and on torch tensors (arithmetic only). Spins are not clipped to [-1, 1].
    """
    c = _c(q)
    r = s_eff - S_eff(q, sigma, sigma)
    delta = c * r / (c * c + regularization)
    return sigma + delta, sigma - q * delta
