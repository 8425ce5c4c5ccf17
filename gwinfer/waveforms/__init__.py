"""Waveform backends behind one interface: ``get_backend(name).h22(q, s1z, s2z, grid)``.

Names: ``IMRPhenomT`` (default), ``IMRPhenomXAS``, ``SEOBNRv4_opt`` (lalsimulation), ``SEOBNRv5``
(pyseobnr, optional) and ``NRHybSur3dq8`` (needs its data file).
"""

from __future__ import annotations

from gwinfer.errors import GwinferError
from gwinfer.waveforms.base import ValidityRange, WaveformBackend, align_to_grid, peak_time

DEFAULT_BACKEND = "IMRPhenomT"
BACKENDS = ("IMRPhenomT", "IMRPhenomXAS", "SEOBNRv4_opt", "SEOBNRv5", "NRHybSur3dq8")


def get_backend(name: str = DEFAULT_BACKEND, **options: float) -> WaveformBackend:
    """Build the backend called ``name`` (see :data:`BACKENDS`)."""
    if name in ("IMRPhenomT", "IMRPhenomXAS", "SEOBNRv4_opt"):
        from gwinfer.waveforms.lal import LALBackend

        return LALBackend(name, **options)
    if name == "SEOBNRv5":
        from gwinfer.waveforms.seobnr import SEOBNRv5Backend

        return SEOBNRv5Backend(**options)
    if name == "NRHybSur3dq8":
        from gwinfer.waveforms.surrogate import NRHybSur3dq8Backend

        return NRHybSur3dq8Backend(**options)
    raise GwinferError(f"unknown waveform backend {name!r}; accepted: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "ValidityRange", "WaveformBackend", "align_to_grid", "get_backend", "peak_time"]
