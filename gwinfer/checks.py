"""Small validators shared by the config dataclasses: each raises one-line :class:`GwinferError` naming
the setting and the accepted range."""

from __future__ import annotations

import math
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


def integer(where: str, value: Any, low: int, high: int) -> None:
    """``value`` must be an integer in [low, high] (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise GwinferError(f"{where} = {value!r} must be an integer in [{low}, {high}]")


def number(
    where: str, value: Any, low: float, high: float, *, open_low: bool = False, open_high: bool = False
) -> float:
    """``value`` must be a finite number in [low, high] (ends open where asked); returns it as a float."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if open_low else value >= low) and (value < high if open_high else value <= high)
    if not ok:
        lo, hi = ("(" if open_low else "["), (")" if open_high else "]")
        raise GwinferError(f"{where} = {value!r} must be a number in {lo}{low}, {high}{hi}")
    return float(value)


def choice(where: str, value: Any, choices: tuple[str, ...]) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise GwinferError(f"{where} = {value!r} must be one of {', '.join(choices)}")


def boolean(where: str, value: Any) -> None:
    """``value`` must be True or False."""
    if not isinstance(value, bool):
        raise GwinferError(f"{where} = {value!r} must be true or false")
