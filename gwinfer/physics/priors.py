"""Parameter priors in bilby's prior-file syntax: loading, checking and reproducible sampling.

Named priors live in ``configs/priors/<name>.prior``:

* ``gw5d`` - Green, Simpson & Gair (2020) 5-D: ``mass_1``, ``mass_2`` (detector frame, 35 <= m2 <= m1 <= 80
  Msun, uniform on the triangle), ``luminosity_distance`` (p ~ dL^2 on [1000, 3000] Mpc), ``geocent_time``
  (uniform in [0.65, 0.85] s from the segment start), ``phase`` (uniform in [0, 2 pi]).
* ``gw8d`` - gw5d plus ``chi_1``, ``chi_2`` uniform in [-1, 1] and ``theta_jn`` with cos uniform in [-1, 1].
* ``hl-bbh`` - H1/L1 aligned-spin prior covering GW150914, LVT151012, GW151226, GW170104 (ranges documented
  in the file); ``geocent_time`` there is an offset from the trigger, shifted with ``time_offset``.
* ``hl-o1`` - hl-bbh with ``luminosity_distance`` in [100, 1500] Mpc (O1 sensitivity; still covers the events).

Every file may only name parameters in :data:`ALLOWED` (the ones :mod:`gwinfer.detectors.signal` understands).
The priors get :func:`complete_parameters` as their bilby conversion function, so constraints on
``mass_ratio`` (= m2/m1, bilby's convention; the paper's q = 1/mass_ratio) or on ``mass_1``/``mass_2`` work.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError

PRIOR_DIR = Path(__file__).resolve().parents[2] / "configs" / "priors"
NAMES = ("gw5d", "gw8d", "hl-bbh", "hl-o1")
#: bilby parameter names a gwinfer prior file may contain.
ALLOWED = frozenset({
    "mass_1", "mass_2", "chirp_mass", "mass_ratio", "chi_1", "chi_2", "luminosity_distance",
    "geocent_time", "phase", "theta_jn", "ra", "dec", "psi",
})  # fmt: skip


def complete_parameters(sample: dict[str, Any]) -> dict[str, Any]:
    """Add derived masses to a sample (dict of floats or arrays; a copy is returned).

    From ``mass_1``, ``mass_2`` (Msun): ``mass_ratio`` = m2/m1 and ``chirp_mass``. From ``chirp_mass`` and
    ``mass_ratio`` = q: ``mass_1 = Mc (1 + q)^(1/5) q^(-3/5)``, ``mass_2 = q mass_1``. With aligned spins
    ``chi_1``, ``chi_2`` also ``chi_eff = (m1 chi_1 + m2 chi_2) / (m1 + m2)``.
    """
    out = dict(sample)
    if "mass_1" in out and "mass_2" in out:
        m1, m2 = np.asarray(out["mass_1"], dtype=float), np.asarray(out["mass_2"], dtype=float)
        out.setdefault("mass_ratio", m2 / m1)
        out.setdefault("chirp_mass", (m1 * m2) ** 0.6 / (m1 + m2) ** 0.2)
    elif "chirp_mass" in out and "mass_ratio" in out:
        mc, q = np.asarray(out["chirp_mass"], dtype=float), np.asarray(out["mass_ratio"], dtype=float)
        m1 = mc * (1.0 + q) ** 0.2 / q**0.6
        out["mass_1"], out["mass_2"] = m1, q * m1
    if "chi_1" in out and "chi_2" in out and "mass_1" in out:
        m1, m2 = np.asarray(out["mass_1"], dtype=float), np.asarray(out["mass_2"], dtype=float)
        out.setdefault(
            "chi_eff", (m1 * np.asarray(out["chi_1"], float) + m2 * np.asarray(out["chi_2"], float)) / (m1 + m2)
        )
    return out


def prior_path(path_or_name: str | Path) -> Path:
    """The file of a named prior (:data:`NAMES`) or the given path."""
    s = str(path_or_name)
    p = PRIOR_DIR / f"{s}.prior" if s in NAMES else Path(s)
    if not p.is_file():
        raise GwinferError(f"prior {s!r} is neither a file nor one of the named priors {', '.join(NAMES)}")
    return p


def _file_keys(path: Path) -> list[str]:
    keys = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "=" not in line:
            raise GwinferError(f"{path}: line {line.strip()!r} is not 'name = Prior(...)'")
        keys.append(line.split("=", 1)[0].strip())
    return keys


def load_prior(path_or_name: str | Path, time_offset: float = 0.0) -> Any:
    """A ``bilby.core.prior.PriorDict`` from a named prior or a bilby prior file.

    ``time_offset`` (s) is added to the ``geocent_time`` prior's bounds (e.g. the trigger's GPS time or its
    position in the segment for ``hl-bbh``). Unknown parameter names and unparsable lines give one-line
    :class:`GwinferError` messages.
    """
    from bilby.core.prior import DeltaFunction, PriorDict, Uniform

    path = prior_path(path_or_name)
    keys = _file_keys(path)
    unknown = sorted(set(keys) - ALLOWED)
    if unknown:
        raise GwinferError(f"{path.name}: unknown parameter(s) {unknown}; accepted: {sorted(ALLOWED)}")
    try:
        prior = PriorDict(filename=str(path), conversion_function=complete_parameters)
    except Exception as err:  # bilby raises many types (NameError, TypeError, AttributeError, ...)
        msg = re.sub(r"\s+", " ", str(err)).strip()[:200]
        raise GwinferError(f"{path.name}: bilby cannot parse the prior file ({type(err).__name__}: {msg})") from None
    has_masses = {"mass_1", "mass_2"} <= set(prior) or {"chirp_mass", "mass_ratio"} <= set(prior)
    if not has_masses or "luminosity_distance" not in prior or "geocent_time" not in prior:
        raise GwinferError(
            f"{path.name}: needs mass_1 and mass_2 (or chirp_mass and mass_ratio), luminosity_distance and geocent_time"
        )
    if time_offset:
        tp = prior["geocent_time"]
        if isinstance(tp, DeltaFunction):
            prior["geocent_time"] = DeltaFunction(tp.peak + time_offset, name="geocent_time")
        elif type(tp) is Uniform:
            prior["geocent_time"] = Uniform(tp.minimum + time_offset, tp.maximum + time_offset, name="geocent_time")
        else:
            raise GwinferError(
                f"{path.name}: time_offset needs a Uniform or fixed geocent_time prior, not {type(tp).__name__}"
            )
    return prior


def sample(prior: Any, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` draws from ``prior`` (constraints applied), reproducible for a given ``seed``.

    Returns a dict of float arrays of length ``n`` including the derived masses of
    :func:`complete_parameters` (constraint-only keys are the derived values). bilby's global generator is
    seeded for the call and restored afterwards.
    """
    from bilby.core.utils import random as brandom

    if int(n) < 1:
        raise GwinferError(f"number of samples n = {n} must be >= 1")
    saved = brandom.Generator.rng
    brandom.Generator.rng = np.random.default_rng(seed)
    try:
        draws = prior.sample(int(n))
    finally:
        brandom.Generator.rng = saved
    draws = complete_parameters(draws)
    return {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in draws.items()}
