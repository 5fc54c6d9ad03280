"""The two discrete noise distributions: variance, tails and exact 95% half-widths.

Both live on the integers, so a released value ``y = x + X`` with true value ``x``
gives the interval ``[y - m, y + m]``, which covers ``x`` exactly when ``|X| <= m``.
The half-width ``m`` is the smallest integer with ``P(|X| <= m) >= confidence``.

Discrete Gaussian ``N_Z(0, sigma^2)`` (Canonne, Kamath & Steinke 2020, "CKS20"),
``P(X = x) = exp(-x^2 / (2 sigma^2)) / Z`` with ``Z = sum over all integers``:

* for ``sigma <= EXACT_SIGMA_MAX`` the pmf is summed exactly (``12 sigma`` terms; the
  rest weighs less than ``exp(-72)``), so ``m`` is exact;
* above it, ``m = ceil(z * sigma)`` with ``z`` the continuous two-sided quantile
  (1.959964 at 95%). This is a *proved* bound, never narrower than needed: for
  ``k >= 1`` each term ``exp(-x^2/2s^2)`` with ``x >= k`` is at most the integral of
  ``exp(-t^2/2s^2)`` over ``[x - 1, x]``, and ``Z >= sigma sqrt(2 pi)`` by Poisson
  summation (every Fourier term is positive), so ``P(X >= k) <= P(Y >= k - 1)`` for
  ``Y ~ N(0, sigma^2)``. Hence ``P(|X| > m) <= P(|Y| >= m) <= alpha`` once
  ``m >= z sigma``. It is at most one unit wider than the exact value.

The textbook ``+-1.96 sigma`` rounded down is *not* a 95% interval for small sigma:
``sigma = 3`` gives ``|X| <= 5`` with probability 0.9345 only; the exact half-width is
6 (0.9705). The variance is ``sum x^2 P(x)``: below ``sigma^2`` (0.215 at
``sigma = 0.5``), equal to it to 1e-6 relative from ``sigma = 1`` on.

Discrete Laplace with scale ``b``, ``P(X = x) = (1 - p) / (1 + p) * p^|x|`` with
``p = exp(-1/b)`` -- everything in closed form:

* ``P(|X| > m) = 2 p^(m + 1) / (1 + p)``, so
  ``m = max(0, ceil(-b * ln(alpha (1 + p) / 2)) - 1)``;
* ``Var X = 2 p / (1 - p)^2`` (about ``2 b^2``).

These are the scales OpenDP's ``make_gaussian`` and ``make_laplace`` take on integer
domains (``scale`` is ``sigma`` and ``b``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from node.privacy._checks import check_number, check_positive

Mechanism = Literal["discrete_gaussian", "discrete_laplace"]

DISCRETE_GAUSSIAN: Final = "discrete_gaussian"
DISCRETE_LAPLACE: Final = "discrete_laplace"
MECHANISMS: Final = (DISCRETE_GAUSSIAN, DISCRETE_LAPLACE)

#: Up to this sigma the discrete Gaussian's pmf is summed exactly (at most 120,000 terms).
EXACT_SIGMA_MAX: Final = 10_000.0

#: The default confidence of intervals.
CONFIDENCE: Final = 0.95


def check_confidence(confidence: float) -> float:
    """Return ``confidence`` if it lies strictly between 0 and 1, else raise ``ValueError``."""
    value = check_number("confidence", confidence)
    if not 0.0 < value < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {value!r}")
    return value


def normal_quantile(confidence: float) -> float:
    """Return ``z`` with ``P(|Y| <= z) = confidence`` for a standard normal ``Y``."""
    return NormalDist().inv_cdf(0.5 + check_confidence(confidence) / 2.0)


@dataclass(frozen=True)
class Noise:
    """The noise added to each released integer: its mechanism and scale.

    Parameters
    ----------
    mechanism : {"discrete_gaussian", "discrete_laplace"}
        The distribution: discrete Gaussian (zCDP releases) or discrete Laplace
        (pure epsilon releases).
    scale : float
        ``sigma`` of the discrete Gaussian, or ``b`` of the discrete Laplace
        (``P(x) ~ exp(-|x| / b)``); positive and finite.
    """

    mechanism: Mechanism
    scale: float

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ValueError(
                f"mechanism must be one of {', '.join(MECHANISMS)}, got {self.mechanism!r}"
            )
        object.__setattr__(self, "scale", check_positive("noise scale", self.scale))

    @property
    def variance(self) -> float:
        """The exact variance of one noise draw."""
        if self.mechanism == DISCRETE_GAUSSIAN:
            return discrete_gaussian_variance(self.scale)
        return discrete_laplace_variance(self.scale)

    @property
    def std(self) -> float:
        """The standard deviation of one noise draw."""
        return math.sqrt(self.variance)

    def half_width(self, confidence: float = CONFIDENCE) -> int:
        """Return the smallest ``m`` with ``P(|X| <= m) >= confidence`` (see module doc)."""
        if self.mechanism == DISCRETE_GAUSSIAN:
            return discrete_gaussian_half_width(self.scale, confidence)
        return discrete_laplace_half_width(self.scale, confidence)

    def coverage(self, half_width: int) -> float:
        """Return ``P(|X| <= half_width)``: the coverage of ``[y - m, y + m]``."""
        if half_width < 0:
            return 0.0
        if self.mechanism == DISCRETE_GAUSSIAN:
            return discrete_gaussian_coverage(self.scale, half_width)
        return 1.0 - discrete_laplace_tail(self.scale, half_width)


# The discrete Gaussian's variance, coverage and half-width are sums over up to 12
# sigma terms; a node asks for the same few scales again and again, so the scalar
# results are cached (the functions are pure).


def _gaussian_weights(sigma: float) -> npt.NDArray[np.float64]:
    """Unnormalised pmf ``exp(-x^2 / 2 sigma^2)`` for ``x = 0 .. ceil(12 sigma) + 2``."""
    x = np.arange(0, math.ceil(12.0 * sigma) + 3, dtype=np.float64)
    return np.exp(-(x * x) / (2.0 * sigma * sigma))


def _gaussian_abs_cdf(sigma: float) -> npt.NDArray[np.float64]:
    """``P(|X| <= m)`` for ``m = 0, 1, ...`` (exact summation)."""
    w = _gaussian_weights(sigma)
    total = w[0] + 2.0 * float(w[1:].sum())
    cum: npt.NDArray[np.float64] = (2.0 * np.cumsum(w) - w[0]) / total
    return cum


def discrete_gaussian_pmf(sigma: float, support: int) -> npt.NDArray[np.float64]:
    """Return ``P(X = x)`` for ``x = -support .. support`` (exact for sigma <= 10,000).

    Parameters
    ----------
    sigma : float
        The discrete Gaussian's scale.
    support : int
        Half-length of the returned window; mass outside it is dropped, not moved.

    Returns
    -------
    numpy.ndarray
        ``2 * support + 1`` probabilities, centred on zero.
    """
    x = np.arange(-support, support + 1, dtype=np.float64)
    log_w = -(x * x) / (2.0 * sigma * sigma)
    if sigma <= EXACT_SIGMA_MAX:
        w = _gaussian_weights(sigma)
        log_total = math.log(w[0] + 2.0 * float(w[1:].sum()))
    else:  # Poisson summation: the normaliser is sigma * sqrt(2 pi) to double precision
        log_total = math.log(sigma) + 0.5 * math.log(2.0 * math.pi)
    pmf: npt.NDArray[np.float64] = np.exp(log_w - log_total)
    return pmf


@functools.lru_cache(maxsize=1024)
def discrete_gaussian_variance(sigma: float) -> float:
    """Return the variance of ``N_Z(0, sigma^2)`` (``sigma^2`` above 10,000)."""
    if sigma > EXACT_SIGMA_MAX:
        return sigma * sigma
    w = _gaussian_weights(sigma)
    x = np.arange(w.size, dtype=np.float64)
    return float(2.0 * (w * x * x).sum() / (w[0] + 2.0 * w[1:].sum()))


@functools.lru_cache(maxsize=1024)
def discrete_gaussian_coverage(sigma: float, half_width: int) -> float:
    """Return ``P(|X| <= half_width)``; above sigma 10,000 a proved lower bound."""
    if half_width < 0:
        return 0.0
    if sigma > EXACT_SIGMA_MAX:
        return 1.0 - 2.0 * NormalDist(0.0, sigma).cdf(-float(half_width))
    cum = _gaussian_abs_cdf(sigma)
    return float(cum[half_width]) if half_width < cum.size else 1.0


@functools.lru_cache(maxsize=1024)
def discrete_gaussian_half_width(sigma: float, confidence: float = CONFIDENCE) -> int:
    """Return the smallest ``m`` with ``P(|X| <= m) >= confidence`` for ``N_Z(0, sigma^2)``.

    Exact for ``sigma <= EXACT_SIGMA_MAX``; above it ``ceil(z * sigma)``, a proved
    upper bound at most one unit above the exact value (module docstring).
    """
    z = normal_quantile(confidence)
    bound = math.ceil(z * sigma)
    if sigma > EXACT_SIGMA_MAX:
        return bound
    cum = _gaussian_abs_cdf(sigma)
    exact = int(np.searchsorted(cum, confidence, side="left"))
    # The bound is proved; the summation can only tighten it.
    return min(exact, bound)


def _laplace_p(b: float) -> float:
    return math.exp(-1.0 / b)


def discrete_laplace_tail(b: float, half_width: int) -> float:
    """Return ``P(|X| > half_width) = 2 p^(m + 1) / (1 + p)`` for scale ``b``."""
    if half_width < 0:
        return 1.0
    p = _laplace_p(b)
    return 2.0 * math.exp(-(half_width + 1) / b) / (1.0 + p)


def discrete_laplace_variance(b: float) -> float:
    """Return ``2 p / (1 - p)^2``, the variance of the discrete Laplace with scale ``b``."""
    p = _laplace_p(b)
    return 2.0 * p / math.expm1(-1.0 / b) ** 2


def discrete_laplace_half_width(b: float, confidence: float = CONFIDENCE) -> int:
    """Return the smallest ``m`` with ``P(|X| <= m) >= confidence`` (closed form)."""
    alpha = 1.0 - check_confidence(confidence)
    p = _laplace_p(b)
    m = max(0, math.ceil(-b * math.log(alpha * (1.0 + p) / 2.0)) - 1)
    # Guard the closed form against rounding at an integer boundary.
    while m > 0 and discrete_laplace_tail(b, m - 1) <= alpha:
        m -= 1
    while discrete_laplace_tail(b, m) > alpha:
        m += 1
    return m


def discrete_laplace_cdf(b: float, x: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Return ``P(X <= x)`` elementwise for the discrete Laplace with scale ``b``."""
    p = _laplace_p(b)
    xf = x.astype(np.float64)
    below = np.exp(np.minimum(xf, 0.0) / b) / (1.0 + p)  # x < 0: p^(-x) / (1 + p)
    above = 1.0 - np.exp(-(np.maximum(xf, 0.0) + 1.0) / b) / (1.0 + p)
    cdf: npt.NDArray[np.float64] = np.where(x < 0, below, above)
    return cdf
