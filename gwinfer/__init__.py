"""gwinfer: infer binary black hole parameters from gravitational waves with deep learning.

Subpackages by concept (see docs/architecture.md):
``physics`` (pure functions, no torch), ``waveforms`` (h22 backends), ``data`` (catalogues, loaders),
``evaluation`` (overlaps, metrics), ``models``, ``training``, ``serving``.
"""

from gwinfer._version import __version__

__all__ = ["__version__"]
