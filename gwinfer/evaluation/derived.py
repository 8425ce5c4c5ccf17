"""Columns derived from posterior samples by ``bilby.gw.conversion``: masses, effective spin, source frame.

* :func:`derived_parameters` - component/chirp/total masses and bilby's mass ratio m2/m1 <= 1 (Msun), the
  effective aligned spin ``chi_eff``, and where ``luminosity_distance`` (Mpc) is present the ``redshift``,
  ``comoving_distance`` (Mpc) and source-frame masses ``<mass>_source`` (Msun) in bilby's default cosmology
  (Planck15, ``bilby.gw.cosmology.get_cosmology()``);
* :func:`redshift` - bilby's ``luminosity_distance_to_redshift`` for many samples at the cost of a few dozen;
* :func:`cosmology_record` - the cosmology's name and parameters, for a result's ``meta_data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: Mass columns bilby turns into source-frame columns (``generate_source_frame_parameters``).
SOURCE_FRAME_MASSES = ("mass_1", "mass_2", "chirp_mass", "total_mass")
#: Spacing in ln d_L of the nodes at which :func:`redshift` calls bilby (interpolation error < 1e-7).
LN_DISTANCE_STEP = 0.02


def cosmology_record(cosmology: Any = None) -> dict[str, Any]:
    """``{"name", "H0" [km/s/Mpc], "Om0", "Ode0"}`` of ``cosmology`` (None: bilby's default, Planck15)."""
    from bilby.gw.cosmology import get_cosmology

    cosmo = get_cosmology(cosmology)
    return {
        "name": str(cosmo.name),
        "H0": float(cosmo.H0.value),
        "Om0": float(cosmo.Om0),
        "Ode0": float(cosmo.Ode0),
        "source": "bilby.gw.cosmology.get_cosmology",
    }


def redshift(distance: Any, cosmology: Any = None) -> np.ndarray:
    """Redshift of luminosity distances ``distance`` (Mpc, > 0) in ``cosmology`` (None: bilby's Planck15).

    bilby's ``luminosity_distance_to_redshift`` inverts d_L(z) one root at a time (about 2 ms each, 90 s for
    50 000 samples); it is called here on nodes spaced by :data:`LN_DISTANCE_STEP` in ln d_L over the
    samples' range and interpolated (cubic spline of ln z in ln d_L; relative error < 1e-7, tested).
    """
    from bilby.gw import conversion
    from scipy.interpolate import CubicSpline

    d = np.asarray(distance, dtype=float)
    flat = d.ravel()
    ok = np.isfinite(flat) & (flat > 0)
    z = np.full(flat.shape, np.nan)
    if not ok.any():
        return z.reshape(d.shape)
    values, inverse = np.unique(flat[ok], return_inverse=True)
    lo, hi = np.log(values[0]), np.log(values[-1])
    n_nodes = max(8, int(np.ceil((hi - lo) / LN_DISTANCE_STEP)) + 1)
    if n_nodes >= values.size:  # few distinct distances: bilby directly
        z_values = np.asarray(conversion.luminosity_distance_to_redshift(values, cosmology), dtype=float)
        z[ok] = z_values.reshape(-1)[inverse.reshape(-1)]
        return z.reshape(d.shape)
    ln_nodes = np.linspace(lo, hi, n_nodes)
    z_nodes = np.asarray(conversion.luminosity_distance_to_redshift(np.exp(ln_nodes), cosmology), dtype=float)
    z[ok] = np.exp(CubicSpline(ln_nodes, np.log(z_nodes))(np.log(flat[ok])))
    return z.reshape(d.shape)


def derived_parameters(samples: Mapping[str, Any], cosmology: Any = None) -> dict[str, np.ndarray]:
    """``samples`` (float64 arrays) plus the columns ``bilby.gw.conversion`` derives from them.

    * from ``mass_1``, ``mass_2`` (Msun): ``mass_ratio`` = m2/m1 <= 1, ``chirp_mass`` and ``total_mass``
      (Msun), unless already given (``component_masses_to_mass_ratio`` / ``_chirp_mass`` / ``_total_mass``);
    * otherwise from ``chirp_mass`` (Msun) and ``mass_ratio``: ``mass_1``, ``mass_2`` and ``total_mass``
      (Msun) (``chirp_mass_and_mass_ratio_to_component_masses``);
    * with aligned spins ``chi_1``, ``chi_2`` and the masses: ``chi_eff`` = (chi_1 + q chi_2) / (1 + q),
      q = m2/m1, unless already given (``generate_spin_parameters``);
    * with ``luminosity_distance`` (Mpc): ``redshift`` (:func:`redshift`), ``comoving_distance`` (Mpc,
      ``redshift_to_comoving_distance``) and ``<m>_source`` = m / (1 + z) (Msun) of every detector-frame
      mass above, as ``generate_source_frame_parameters`` does, in ``cosmology`` (None: bilby's Planck15).

    Only these columns are added (bilby's ``generate_all_bbh_parameters`` would add some thirty more).
    """
    from bilby.gw import conversion

    out = {k: np.asarray(v, dtype=float) for k, v in samples.items()}
    if "mass_1" in out and "mass_2" in out:
        out.setdefault("mass_ratio", conversion.component_masses_to_mass_ratio(out["mass_1"], out["mass_2"]))
        out.setdefault("chirp_mass", conversion.component_masses_to_chirp_mass(out["mass_1"], out["mass_2"]))
    elif "chirp_mass" in out and "mass_ratio" in out:
        out["mass_1"], out["mass_2"] = conversion.chirp_mass_and_mass_ratio_to_component_masses(
            out["chirp_mass"], out["mass_ratio"]
        )
    if "mass_1" in out and "mass_2" in out:
        out.setdefault("total_mass", conversion.component_masses_to_total_mass(out["mass_1"], out["mass_2"]))
    if "chi_1" in out and "chi_2" in out and "mass_1" in out and "chi_eff" not in out:
        spins = {
            "chi_1": out["chi_1"],
            "chi_2": out["chi_2"],
            "mass_ratio": conversion.component_masses_to_mass_ratio(out["mass_1"], out["mass_2"]),
        }
        out["chi_eff"] = np.asarray(conversion.generate_spin_parameters(spins)["chi_eff"], dtype=float)
    if "luminosity_distance" in out:
        z = out.setdefault("redshift", redshift(out["luminosity_distance"], cosmology))
        out.setdefault("comoving_distance", np.asarray(conversion.redshift_to_comoving_distance(z, cosmology)))
        for key in SOURCE_FRAME_MASSES:
            if key in out:
                out.setdefault(f"{key}_source", out[key] / (1 + z))
    return out
