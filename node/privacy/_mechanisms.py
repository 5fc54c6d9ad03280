"""Calibrated discrete noise on integer vectors, drawn by OpenDP's samplers.

``noisy_integers`` adds discrete Gaussian noise (for a zCDP budget rho, calibrated to
the L2 sensitivity) or discrete Laplace noise (for a pure epsilon, calibrated to the
L1 sensitivity) to a vector of exact integers. The noise comes from OpenDP 0.16's
``make_gaussian`` and ``make_laplace`` on ``vector_domain(atom_domain(T=i64))``:
exact samplers (Canonne, Kamath & Steinke 2020) fed by OpenSSL's CSPRNG, immune to
the floating-point attacks on textbook noise (REFERENCES c.2). Never numpy or Python
``random``.

Vectors shorter than a block take their noise from a :class:`NoisePool`: the same
measurement's draws, made a block at a time on a vector of zeros and each used once,
so a one-cell release does not pay OpenDP's per-call conversion cost.

Calibration is analytic -- ``sigma = Delta / sqrt(2 rho)``, ``b = Delta / epsilon`` --
then checked against OpenDP's own privacy map, and nudged up by ulps until the map
reports at most the requested loss, so a release never costs more than it was
charged (and costs it to within 1e-15 relative). OpenDP saturates at the int64 range;
keep inputs well inside it (``FixedPoint.max_rows``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import opendp.prelude as dp

from node.privacy._accounting import rho_for_epsilon
from node.privacy._checks import check_int, check_positive
from node.privacy._fixedpoint import INT64_MAX
from node.privacy._noise import DISCRETE_GAUSSIAN, DISCRETE_LAPLACE, Mechanism, Noise
from node.privacy._pool import NoisePool

IntVector = npt.NDArray[np.int64]


def _check_sensitivity(name: str, value: int) -> int:
    return check_int(name, value, 1, INT64_MAX)


@functools.lru_cache(maxsize=1024)
def opendp_measurement(noise: Noise) -> Any:
    """Return the OpenDP measurement that adds ``noise`` to an int64 vector.

    Cached per mechanism and scale: building one costs more than sampling from it,
    and a measurement holds no state between invocations (each draws fresh
    randomness from OpenSSL).

    Parameters
    ----------
    noise : Noise
        Mechanism and scale.

    Returns
    -------
    opendp.mod.Measurement
        ``make_gaussian`` over ``l2_distance(T=i64)`` (zCDP) or ``make_laplace`` over
        ``l1_distance(T=i64)`` (pure DP), on ``vector_domain(atom_domain(T=i64))``.
    """
    dp.enable_features("contrib")
    domain = dp.vector_domain(dp.atom_domain(T=dp.i64))
    if noise.mechanism == DISCRETE_GAUSSIAN:
        return dp.m.make_gaussian(domain, dp.l2_distance(T=dp.i64), scale=noise.scale)
    return dp.m.make_laplace(domain, dp.l1_distance(T=dp.i64), scale=noise.scale)


def _draw_block(noise: Noise, n: int) -> list[int]:
    """Return ``n`` independent draws of ``noise`` from OpenDP's sampler."""
    return [int(v) for v in opendp_measurement(noise)(np.zeros(n, dtype=np.int64))]


#: Draws for small releases, shared by every thread of the process.
NOISE_POOL = NoisePool(_draw_block)


def _saturating_sum(values: IntVector, noise: Sequence[int]) -> IntVector:
    """Return ``values + noise`` clamped to int64, as OpenDP's own addition does."""
    low = -INT64_MAX - 1
    return np.array(
        [
            min(INT64_MAX, max(low, int(v) + z))
            for v, z in zip(values, noise, strict=True)
        ],
        dtype=np.int64,
    )


@functools.lru_cache(maxsize=4096)
def _calibrate(mechanism: Mechanism, sensitivity: int, budget: float) -> float:
    """Return the smallest float scale (from the analytic one up) OpenDP maps to <= budget.

    Pure, so cached: a node answers the same calibrations again and again, and each
    costs about 0.4 ms of OpenDP measurement building.
    """
    if mechanism == DISCRETE_GAUSSIAN:
        scale = sensitivity / math.sqrt(2.0 * budget)
    else:
        scale = sensitivity / budget
    if not 0 < scale < math.inf:
        raise ValueError(
            f"cannot calibrate noise for sensitivity {sensitivity} at {budget}"
        )
    while float(opendp_measurement(Noise(mechanism, scale)).map(sensitivity)) > budget:
        scale = math.nextafter(scale, math.inf)
    return scale


def gaussian_scale(l2_sensitivity: int, rho: float) -> float:
    """Return the discrete Gaussian sigma whose release is exactly ``rho``-zCDP.

    Parameters
    ----------
    l2_sensitivity : int
        L2 sensitivity of the integer vector.
    rho : float
        zCDP budget of the release.

    Returns
    -------
    float
        ``l2_sensitivity / sqrt(2 rho)``, raised by ulps if OpenDP's map needs it.
    """
    return _calibrate(
        DISCRETE_GAUSSIAN,
        _check_sensitivity("l2_sensitivity", l2_sensitivity),
        check_positive("rho", rho),
    )


def laplace_scale(l1_sensitivity: int, epsilon: float) -> float:
    """Return the discrete Laplace scale whose release is exactly ``epsilon``-DP.

    Parameters
    ----------
    l1_sensitivity : int
        L1 sensitivity of the integer vector.
    epsilon : float
        Pure-DP budget of the release.

    Returns
    -------
    float
        ``l1_sensitivity / epsilon``, raised by ulps if OpenDP's map needs it.
    """
    return _calibrate(
        DISCRETE_LAPLACE,
        _check_sensitivity("l1_sensitivity", l1_sensitivity),
        check_positive("epsilon", epsilon),
    )


@dataclass(frozen=True, eq=False)
class Release:
    """A released integer vector and what protects it.

    Parameters
    ----------
    values : numpy.ndarray
        The noisy integers (int64), in the order of the input.
    noise : Noise
        The mechanism and scale of the noise on every entry.
    rho : float
        The zCDP cost of the release (for the discrete Laplace, ``epsilon^2 / 2``).
    epsilon : float or None
        The pure-DP epsilon (discrete Laplace only).
    sensitivity : int
        The sensitivity the noise was calibrated to (L2 for the Gaussian, L1 for
        the Laplace).
    """

    values: IntVector
    noise: Noise
    rho: float
    epsilon: float | None
    sensitivity: int

    @property
    def mechanism(self) -> Mechanism:
        """``"discrete_gaussian"`` or ``"discrete_laplace"``."""
        return self.noise.mechanism

    @property
    def scale(self) -> float:
        """The noise scale: sigma (Gaussian) or b (Laplace)."""
        return self.noise.scale


def as_int64_vector(values: Sequence[int] | npt.NDArray[Any]) -> IntVector:
    """Return ``values`` as a one-dimensional int64 array, refusing anything not integer.

    Parameters
    ----------
    values : sequence of int or numpy.ndarray
        Exact integers (Python ints within int64, or an integer-dtype array).

    Returns
    -------
    numpy.ndarray
        A new int64 array.
    """
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iu":
            raise TypeError(f"values must have an integer dtype, got {values.dtype}")
        if values.dtype.kind == "u" and values.size and int(values.max()) > INT64_MAX:
            raise ValueError("values must fit a signed 64-bit integer")
        array = values.astype(np.int64)
    else:
        items = list(values)
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int | np.integer):
                raise TypeError(f"values must be integers, got {type(item).__name__}")
            if not -INT64_MAX - 1 <= int(item) <= INT64_MAX:
                raise ValueError(f"value {item} does not fit a signed 64-bit integer")
        array = np.array([int(v) for v in items], dtype=np.int64)
    if array.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {array.shape}")
    return array


def noisy_integers(
    values: Sequence[int] | npt.NDArray[Any],
    *,
    l2_sensitivity: int | None = None,
    l1_sensitivity: int | None = None,
    rho: float | None = None,
    epsilon: float | None = None,
) -> Release:
    """Release ``values`` with calibrated discrete noise from OpenDP's samplers.

    Give exactly one budget: ``rho`` (zCDP; discrete Gaussian calibrated to
    ``l2_sensitivity``) or ``epsilon`` (pure DP; discrete Laplace calibrated to
    ``l1_sensitivity``). The other sensitivity may be given too and is then unused.

    Parameters
    ----------
    values : sequence of int or numpy.ndarray
        The exact integer vector (counts, fixed-point sums, histogram cells).
    l2_sensitivity, l1_sensitivity : int, optional
        The vector's sensitivities under add/remove-one-person.
    rho : float, optional
        zCDP budget of this release.
    epsilon : float, optional
        Pure-DP budget of this release.

    Returns
    -------
    Release
        The noisy integers, the mechanism, its scale and the cost.

    Raises
    ------
    ValueError
        Both or neither budget, a missing sensitivity, or out-of-range numbers.
    TypeError
        Non-integer values or sensitivities.
    """
    if (rho is None) == (epsilon is None):
        raise ValueError(
            "give exactly one of rho (discrete Gaussian) or epsilon (discrete Laplace)"
        )
    vector = as_int64_vector(values)
    if rho is not None:
        if l2_sensitivity is None:
            raise ValueError("rho (discrete Gaussian) needs l2_sensitivity")
        sensitivity = _check_sensitivity("l2_sensitivity", l2_sensitivity)
        rho = check_positive("rho", rho)
        noise = Noise(DISCRETE_GAUSSIAN, gaussian_scale(sensitivity, rho))
        cost, pure = rho, None
    else:
        assert epsilon is not None
        if l1_sensitivity is None:
            raise ValueError("epsilon (discrete Laplace) needs l1_sensitivity")
        sensitivity = _check_sensitivity("l1_sensitivity", l1_sensitivity)
        epsilon = check_positive("epsilon", epsilon)
        noise = Noise(DISCRETE_LAPLACE, laplace_scale(sensitivity, epsilon))
        cost, pure = rho_for_epsilon(epsilon), epsilon
    if vector.size >= NOISE_POOL.block:
        noisy = np.asarray(opendp_measurement(noise)(vector), dtype=np.int64)
    else:
        noisy = _saturating_sum(vector, NOISE_POOL.take(noise, int(vector.size)))
    noisy.setflags(write=False)
    return Release(
        values=noisy, noise=noise, rho=cost, epsilon=pure, sensitivity=sensitivity
    )
