"""Argument checks at the package boundary: precise errors naming the field."""

from __future__ import annotations

import math

import numpy as np


def check_int(
    name: str, value: object, minimum: int, maximum: int | None = None
) -> int:
    """Return ``value`` as an int if it is an integer in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name} must be {bounds}, got {number}")
    return number


def check_number(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a real number (not bool), else ``TypeError``."""
    if isinstance(value, bool) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def check_positive(name: str, value: object) -> float:
    """Return ``value`` as a float if it is positive and finite."""
    number = check_number(name, value)
    if not 0.0 < number < math.inf:
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return number
