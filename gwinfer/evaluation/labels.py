"""LaTeX axis labels with units for posterior parameters (corner plots, result priors).

bilby's prior labels (``bilby.core.prior.Prior._default_latex_labels``: ``$\\mathcal{M}$``, ``$d_L$``,
``$t_c$``, ...) are used where bilby has one; :data:`EXTRA_LABELS` covers the derived columns it lacks
(``chi_eff``, ``redshift``, source-frame masses, ...). :data:`UNITS` gives the unit of each.

A GPS time (``geocent_time`` ~ 1.1e9 s) is plotted as seconds after a whole-second offset
(:func:`time_offset`) that the label states (``$t_c - 1126259462$ [s]``), so titles and ticks read 0.43,
not 1.13e+09.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Labels of the columns bilby's priors have none for (mostly those of gwinfer.evaluation.derived).
EXTRA_LABELS = {
    "chi_eff": r"$\chi_{\rm eff}$",
    "redshift": r"$z$",
    "comoving_distance": r"$d_C$",
    "mass_1_source": r"$m_1^{\rm src}$",
    "mass_2_source": r"$m_2^{\rm src}$",
    "chirp_mass_source": r"$\mathcal{M}^{\rm src}$",
    "total_mass_source": r"$M^{\rm src}$",
    "log_q": r"$\ln q(\theta|d)$",
    "log_likelihood": r"$\ln\mathcal{L}$",
    "log_prior": r"$\ln\pi$",
}

_MSUN = r"$M_\odot$"
#: Units of the parameters gwinfer writes (masses in Msun, distances in Mpc, times in s, angles in rad).
UNITS = {
    **dict.fromkeys(
        ["mass_1", "mass_2", "chirp_mass", "total_mass"]
        + [f"{m}_source" for m in ("mass_1", "mass_2", "chirp_mass", "total_mass")],
        _MSUN,
    ),
    "luminosity_distance": "Mpc",
    "comoving_distance": "Mpc",
    "geocent_time": "s",
    **dict.fromkeys(["phase", "psi", "ra", "dec", "theta_jn", "iota", "tilt_1", "tilt_2", "phi_12", "phi_jl"], "rad"),
}

#: Times at least this large (s) are GPS times and are plotted after a whole-second offset.
GPS_THRESHOLD = 1.0e6


def latex_label(key: str, prior: Any = None) -> str:
    """The LaTeX label of ``key`` without unit: the ``prior``'s own label if it has one that is not just the
    key, else bilby's default for the name, else :data:`EXTRA_LABELS`, else the key with spaces."""
    from bilby.core.prior import Prior

    own = getattr(prior, "latex_label", None)
    if own and own != key:
        return str(own).split(" [")[0]  # a label with its unit appended keeps only the label
    default = Prior._default_latex_labels.get(key)
    return default or EXTRA_LABELS.get(key, key.replace("_", " "))


def unit_of(key: str, prior: Any = None) -> str | None:
    """The unit of ``key``: the ``prior``'s ``unit`` if set, else :data:`UNITS` (None: dimensionless)."""
    own = getattr(prior, "unit", None)
    return str(own) if own else UNITS.get(key)


def time_offset(key: str, values: Any) -> float:
    """Whole seconds to subtract from ``values`` of ``key`` before plotting: the floor of the median of a
    GPS time (``*time`` with |median| >= :data:`GPS_THRESHOLD` s), else 0."""
    v = np.asarray(values, dtype=float)
    if not key.endswith("time") or v.size == 0:
        return 0.0
    med = float(np.nanmedian(v))
    return float(np.floor(med)) if np.isfinite(med) and abs(med) >= GPS_THRESHOLD else 0.0


def axis_label(key: str, prior: Any = None, offset: float = 0.0) -> str:
    """``label [unit]`` for a plot axis; with a non-zero ``offset`` (s) the label reads
    ``$t_c - 1126259462$ [s]``."""
    label = latex_label(key, prior)
    if offset:
        label = f"{label[:-1]} - {offset:.0f}$" if label.endswith("$") else f"{label} - {offset:.0f}"
    unit = unit_of(key, prior)
    return f"{label} [{unit}]" if unit else label
