"""Waveform backends behind one interface: ``get_backend(name).h22(q, s1z, s2z, grid)``.

Names (:data:`BACKENDS`, a lazy :class:`gwinfer.registry.Registry`): ``IMRPhenomT`` (default),
``IMRPhenomXAS``, ``SEOBNRv4_opt`` (lalsimulation), ``SEOBNRv5`` (pyseobnr, optional) and
``NRHybSur3dq8`` (needs its data file). Every backend class is built as ``cls(name, **options)``.
"""

from __future__ import annotations

from gwinfer.registry import Registry
from gwinfer.waveforms.base import ValidityRange, WaveformBackend, align_to_grid, peak_time
from gwinfer.waveforms.canonical import CanonicalWaveform, canonical_h22

DEFAULT_BACKEND = "IMRPhenomT"
BACKENDS = Registry(
    "waveform backend",
    {
        "IMRPhenomT": "gwinfer.waveforms.lal:LALBackend",
        "IMRPhenomXAS": "gwinfer.waveforms.lal:LALBackend",
        "SEOBNRv4_opt": "gwinfer.waveforms.lal:LALBackend",
        "SEOBNRv5": "gwinfer.waveforms.seobnr:SEOBNRv5Backend",
        "NRHybSur3dq8": "gwinfer.waveforms.surrogate:NRHybSur3dq8Backend",
    },
)


def get_backend(name: str = DEFAULT_BACKEND, **options: float) -> WaveformBackend:
    """Build the backend called ``name`` (one of :data:`BACKENDS`) with its ``options``."""
    return BACKENDS.get_kind(name)(name, **options)


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "CanonicalWaveform",
    "ValidityRange",
    "WaveformBackend",
    "align_to_grid",
    "canonical_h22",
    "get_backend",
    "peak_time",
]
