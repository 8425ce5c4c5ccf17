"""One lazy registry of kinds: ``kind -> "module:Class"``, imported on first use.

Used for the point estimators, the posterior estimators (:mod:`gwinfer.models.registry`) and the
waveform backends (:mod:`gwinfer.waveforms`), so that naming a kind never imports the other kinds'
dependencies (torch, zuko, lalsimulation, pyseobnr) and an unknown name gets one line listing the
accepted ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from gwinfer.errors import GwinferError


class Registry(Mapping[str, Any]):
    """Read-only mapping ``kind -> class`` whose classes are imported when first looked up.

    ``what`` names the family in error messages (e.g. ``"model kind"``); ``entries`` maps each kind to
    ``"package.module:Attribute"``.
    """

    def __init__(self, what: str, entries: dict[str, str]) -> None:
        for kind, target in entries.items():
            if target.count(":") != 1:
                raise ValueError(f"registry entry {kind!r}: {target!r} is not 'module:Attribute'")
        self.what = what
        self._entries = dict(entries)
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, kind: str) -> Any:
        if kind not in self._entries:
            raise KeyError(kind)
        if kind not in self._loaded:
            module, attr = self._entries[kind].split(":")
            self._loaded[kind] = getattr(importlib.import_module(module), attr)
        return self._loaded[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, kind: object) -> bool:
        return kind in self._entries

    def get_kind(self, kind: Any) -> Any:
        """The class registered as ``kind``; one-line GwinferError naming the accepted kinds otherwise."""
        if not isinstance(kind, str) or kind not in self._entries:
            raise GwinferError(f"unknown {self.what} {kind!r}; accepted: {', '.join(sorted(self._entries))}")
        return self[kind]

    def target(self, kind: str) -> str:
        """The ``"module:Attribute"`` string of ``kind`` (no import)."""
        return self._entries[kind]
