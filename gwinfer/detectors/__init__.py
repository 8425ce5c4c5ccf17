"""Detectors and data: PSDs, whitening, antenna projection, simulated segments and real strain.

No torch here. Units: Hz, s (GPS or segment-relative, as documented), one-sided PSDs in 1/Hz.
"""

from gwinfer.detectors.projection import DETECTORS, antenna_pattern, project, project_fd, time_delay
from gwinfer.detectors.psd import DEFAULT_PSD_FILE, PSD, welch_psd
from gwinfer.detectors.signal import PLUS, fd_polarisations, optimal_snr, td_waveform, whitened_strain
from gwinfer.detectors.strain import cut, read_strain
from gwinfer.detectors.whitening import band_fraction, colored_noise, whiten, whiten_fd, whitened_noise

__all__ = [
    "DEFAULT_PSD_FILE",
    "DETECTORS",
    "PLUS",
    "PSD",
    "antenna_pattern",
    "band_fraction",
    "colored_noise",
    "cut",
    "fd_polarisations",
    "optimal_snr",
    "project",
    "project_fd",
    "read_strain",
    "td_waveform",
    "time_delay",
    "welch_psd",
    "whiten",
    "whiten_fd",
    "whitened_noise",
    "whitened_strain",
]
