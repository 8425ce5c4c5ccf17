"""NRHybSur3dq8 (Varma et al. 2019, arXiv:1812.07865) through lalsimulation, when its data file exists.

The surrogate's data (``NRHybSur3dq8.h5``, from lalsuite-extra or the gwsurrogate download) cannot be
fetched at run time here; without it the backend refuses with a one-line error saying how to install it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.physics.parameters import component_masses
from gwinfer.physics.timegrid import TimeGrid
from gwinfer.waveforms.base import ValidityRange, WaveformBackend, check_approximant
from gwinfer.waveforms.lal import newtonian_frequency

DATA_FILE = "NRHybSur3dq8.h5"


def find_data_file() -> Path | None:
    """The surrogate's HDF5 data file on ``LAL_DATA_PATH``, or None."""
    for folder in os.environ.get("LAL_DATA_PATH", "").split(os.pathsep):
        if folder and (Path(folder) / DATA_FILE).is_file():
            return Path(folder) / DATA_FILE
    return None


class NRHybSur3dq8Backend(WaveformBackend):
    """h22 from ``SimInspiralChooseTDModes(NRHybSur3dq8)``: the (2,2) mode directly, no projection."""

    name = "NRHybSur3dq8"
    #: trained on q <= 8, |chi| <= 0.8; the authors validate extrapolation to q = 10 (Varma et al. 2019)
    validity = ValidityRange(1.0, 10.0, 0.8)

    def __init__(self, approximant: str = "NRHybSur3dq8", total_mass: float = 60.0) -> None:
        check_approximant(self.name, approximant)
        if find_data_file() is None:
            raise GwinferError(
                f"NRHybSur3dq8 needs its data file {DATA_FILE} on LAL_DATA_PATH: install lalsuite-extra "
                "(or download it with gwsurrogate) and export LAL_DATA_PATH=<folder holding it>"
            )
        import lal
        import lalsimulation

        self._lal, self._lalsim = lal, lalsimulation
        self.total_mass = float(total_mass)

    def raw_h22(self, q: float, s1z: float, s2z: float, grid: TimeGrid) -> tuple[np.ndarray, np.ndarray]:
        lal, lalsim = self._lal, self._lalsim
        M = self.total_mass
        m1, m2 = component_masses(M, q)
        t_unit = M * lal.MTSUN_SI
        distance = 1e6 * lal.PC_SI
        need = -grid.t_start + max(0.2 * -grid.t_start, 200.0)
        f_min = newtonian_frequency(1.5 * need, q) / t_unit
        dt = min(grid.dt, 0.5)
        params = lal.CreateDict()
        modes = lalsim.SimInspiralCreateModeArray()
        lalsim.SimInspiralModeArrayActivateMode(modes, 2, 2)
        lalsim.SimInspiralWaveformParamsInsertModeArray(params, modes)
        hlms = lalsim.SimInspiralChooseTDModes(
            0.0, dt * t_unit, float(m1) * lal.MSUN_SI, float(m2) * lal.MSUN_SI,
            0.0, 0.0, s1z, 0.0, 0.0, s2z, f_min, f_min, distance, params, 4, lalsim.NRHybSur3dq8,
        )  # fmt: skip
        mode = lalsim.SphHarmTimeSeriesGetMode(hlms, 2, 2)
        h = mode.data.data * distance / (M * lal.MRSUN_SI)
        return float(mode.epoch) / t_unit + dt * np.arange(h.size), h

    def versions(self) -> dict[str, str]:
        return {"lalsimulation": self._lalsim.__version__, "data_file": str(find_data_file())}
