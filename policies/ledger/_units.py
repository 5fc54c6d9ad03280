"""Rho as integer nano-units, rounded so that rounding never overspends."""

from __future__ import annotations

import math

NANO = 1_000_000_000


def cost_units(rho: float) -> int:
    """Convert a cost to nano-rho, rounded up."""
    return math.ceil(rho * NANO - 1e-6)


def limit_units(rho: float) -> int:
    """Convert a limit to nano-rho, rounded down."""
    return math.floor(rho * NANO + 1e-6)


def to_rho(units: int) -> float:
    """Convert nano-rho back to rho."""
    return units / NANO
