"""Minimum group size, applied to noisy counts (post-processing: no privacy cost).

Suppressing on the *noisy* count costs nothing and leaks nothing beyond the release;
suppressing on the exact count would make the suppression pattern itself a
non-private release. A thresholded cell still needs its noise: thresholds alone do
not stop differencing attacks (DESIGN, trust and threats).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from node.privacy._checks import check_int
from node.privacy._mechanisms import as_int64_vector
from node.privacy._noise import Noise


def suppress(
    noisy_counts: Sequence[int] | npt.NDArray[Any], min_group_size: int
) -> npt.NDArray[np.bool_]:
    """Return the mask of cells to suppress: noisy count below ``min_group_size``.

    Parameters
    ----------
    noisy_counts : sequence of int or numpy.ndarray
        Released (noisy) counts, one per cell.
    min_group_size : int
        The policy's minimum group size (0 suppresses only negative noisy counts).

    Returns
    -------
    numpy.ndarray of bool
        ``True`` where the cell, and every aggregate of that group, must be withheld.
    """
    min_group_size = check_int("min_group_size", min_group_size, 0)
    mask: npt.NDArray[np.bool_] = as_int64_vector(noisy_counts) < min_group_size
    return mask


def at_risk_below(noise: Noise, min_group_size: int, confidence: float = 0.95) -> int:
    """Return the true count below which a cell is suppressed with probability > (1 - c)/2.

    A cell with true count ``t >= min_group_size + m`` (``m`` the two-sided
    half-width) is suppressed only if its noise falls below ``-m``, which happens
    with probability at most ``(1 - confidence) / 2``. The dry run reports cells
    "at risk" with this threshold; it needs no data.

    Parameters
    ----------
    noise : Noise
        The noise on the count vector.
    min_group_size : int
        The policy's minimum group size.
    confidence : float
        Two-sided confidence defining ``m``.

    Returns
    -------
    int
        ``min_group_size + m``.
    """
    return min_group_size + noise.half_width(confidence)
