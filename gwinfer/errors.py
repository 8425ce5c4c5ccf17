"""The one exception type the toolkit raises for bad input.

Every message is a single line naming the problem and, where there is one, the accepted range.
The command line prints it as ``gwinfer: error: <message>`` and exits with status 2.
"""

from __future__ import annotations


class GwinferError(ValueError):
    """Bad input or state the user can fix: raised with a one-line message."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def check_range(name: str, value: float, low: float, high: float, *, unit: str = "") -> float:
    """Return ``value`` if ``low <= value <= high`` (finite), else raise a one-line GwinferError."""
    v = float(value)
    if not (low <= v <= high):
        u = f" {unit}" if unit else ""
        raise GwinferError(f"{name} = {value!r}{u} is outside the accepted range [{low}, {high}]{u}")
    return v
