"""Checks the configuration sections share: one ``DifairError`` per bad value, naming the fix."""

from __future__ import annotations

import math

from difair.errors import DifairError


def check_range(name: str, value: list[float]) -> tuple[float, float]:
    """``value`` as a (low, high) pair of finite numbers; one ``DifairError`` otherwise."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DifairError(f"{name} takes two numbers LOW,HIGH, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise DifairError(f"{name} takes two finite numbers, got {value!r}")
    return lo, hi


def check_positive(name: str, value: object, alternative: str = "") -> None:
    """Refuse ``value`` unless it is a whole number >= 1 (``alternative`` names what else the option takes)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        alt = f" {alternative}" if alternative else ""
        raise DifairError(f"{name} must be a whole number >= 1{alt}, got {value!r}")
