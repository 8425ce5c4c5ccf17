"""Small validators shared by the config dataclasses: each raises one-line :class:`GwinferError` naming
the setting and the accepted range."""

from __future__ import annotations

from typing import Any

from gwinfer.errors import GwinferError


def positive_int(value: Any, where: str, minimum: int = 1) -> None:
    """``value`` must be an integer >= ``minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise GwinferError(f"{where} = {value!r} must be an integer >= {minimum}")


def positive_ints(values: Any, where: str) -> None:
    """Every element of ``values`` must be an integer >= 1."""
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise GwinferError(f"{where} = {list(values)} must hold integers >= 1")


def in_range(value: Any, where: str, low: float, high: float, *, closed_high: bool = True,
             closed_low: bool = True, unit: str = "") -> None:
    """``value`` must be a number in [low, high] (bounds open where ``closed_*`` is False)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value >= low if closed_low else value > low) and (value <= high if closed_high else value < high)
    if not ok:
        lb, rb = "[" if closed_low else "(", "]" if closed_high else ")"
        raise GwinferError(f"{where} = {value!r}{unit} must lie in {lb}{low}, {high}{rb}{unit}")
