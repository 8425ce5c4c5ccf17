"""SEOBNRv5 (2,2) mode from pyseobnr (Pompili et al. 2023, arXiv:2303.18039), an optional extra.

pyseobnr returns the modes directly in geometric units (time in M, h D / M), so no projection is needed.
Install with ``pip install 'gwinfer[seobnr]'`` (its build needs Debian's libgsl-dev and swig and
``SETUPTOOLS_USE_DISTUTILS=stdlib``).
"""

from __future__ import annotations

import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.physics.timegrid import TimeGrid
from gwinfer.waveforms.base import ValidityRange, WaveformBackend, check_approximant
from gwinfer.waveforms.lal import newtonian_frequency

INSTALL_HINT = (
    "SEOBNRv5 needs pyseobnr: pip install 'gwinfer[seobnr]' "
    "(first: apt-get install libgsl-dev swig; export SETUPTOOLS_USE_DISTUTILS=stdlib)"
)


class SEOBNRv5Backend(WaveformBackend):
    """h22 from ``pyseobnr.generate_waveform.generate_modes_opt`` (SEOBNRv5HM, the (2,2) mode only)."""

    name = "SEOBNRv5"
    #: SEOBNRv5HM is calibrated to NR up to q = 20 and |chi| <= 0.998 (Pompili et al. 2023)
    validity = ValidityRange(1.0, 20.0, 0.99)

    def __init__(self, approximant: str = "SEOBNRv5") -> None:
        check_approximant(self.name, approximant)
        try:
            import pyseobnr  # noqa: F401
            from pyseobnr.generate_waveform import generate_modes_opt
        except ImportError:
            raise GwinferError(INSTALL_HINT) from None
        self._generate = generate_modes_opt

    def raw_h22(self, q: float, s1z: float, s2z: float, grid: TimeGrid) -> tuple[np.ndarray, np.ndarray]:
        need = -grid.t_start + max(0.2 * -grid.t_start, 200.0)
        mf = newtonian_frequency(1.1 * need, q)
        for _ in range(6):
            # omega0 is the orbital angular frequency M Omega = pi M f_22
            t, modes = self._generate(q, s1z, s2z, np.pi * mf, settings={"dt": min(grid.dt, 0.5)})
            h = np.asarray(modes["2,2"] if "2,2" in modes else modes[(2, 2)])
            t = np.asarray(t, dtype=float)
            span = -(t[0] - t[int(np.argmax(np.abs(h)))])
            if span >= need:
                return t, h
            mf *= 0.97 * (span / need) ** (3.0 / 8.0)
        raise GwinferError(f"SEOBNRv5(q={q}, s1z={s1z}, s2z={s2z}) could not cover {need:.0f} M before the peak")

    def versions(self) -> dict[str, str]:
        import pyseobnr

        return {"pyseobnr": getattr(pyseobnr, "__version__", "unknown")}
