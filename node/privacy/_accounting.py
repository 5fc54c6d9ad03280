"""Privacy accounting in zCDP rho: conversions to and from epsilon, budget splits.

Accord charges every release in zero-concentrated DP (Bun & Steinke 2016): rho adds
up under composition, and both mechanisms convert into it.

* A pure epsilon-DP release is ``epsilon^2 / 2``-zCDP (Bun & Steinke 2016, Prop. 1.4;
  OpenDP ``make_pureDP_to_zCDP``): ``rho_for_epsilon``.
* A rho-zCDP release is (epsilon, delta)-DP for every delta. ``epsilon_at`` asks
  OpenDP (``make_zCDP_to_approxDP`` then ``make_fix_delta``), which uses the tight
  conversion of Canonne, Kamath & Steinke 2020: rho = 1/18 (a count with sigma = 3)
  gives epsilon = 1.5577 at delta = 1e-6. ``epsilon_at_classic`` is the classic
  bound ``rho + 2 sqrt(rho ln(1/delta))`` (Bun & Steinke 2016, Prop. 1.3): 1.8077 for
  the same rho -- always larger, kept as a cross-check and for people who know it.

Note that ``policies`` reads an epsilon *cap* through the classic conversion
(``policies.rho_for_epsilon(epsilon, delta)``, the inverse of the classic bound): a
different function from ``rho_for_epsilon(epsilon)`` here, which converts a *pure*
epsilon.
"""

from __future__ import annotations

import math
from typing import Any

import opendp.prelude as dp

from node.privacy._checks import check_int, check_number, check_positive


def _check_delta(delta: float) -> float:
    value = check_number("delta", delta)
    if not 0 < value < 1:
        raise ValueError(f"delta must lie strictly between 0 and 1, got {delta!r}")
    return value


def rho_for_epsilon(epsilon: float) -> float:
    """Return the zCDP rho of a pure ``epsilon``-DP release: ``epsilon^2 / 2``.

    Parameters
    ----------
    epsilon : float
        The pure-DP epsilon of the release (positive, finite).

    Returns
    -------
    float
        ``epsilon ** 2 / 2``.
    """
    epsilon = check_positive("epsilon", epsilon)
    return epsilon * epsilon / 2.0


def _unit_gaussian() -> Any:
    """Return a scalar Gaussian with scale 1: its loss at sensitivity ``d`` is ``d^2/2``."""
    dp.enable_features("contrib")
    return dp.m.make_gaussian(
        dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=1.0
    )


def epsilon_at(rho: float, delta: float) -> float:
    """Return the epsilon at ``delta`` implied by ``rho``-zCDP, as OpenDP computes it.

    A unit-scale Gaussian measurement at sensitivity ``d = sqrt(2 rho)`` (nudged up by
    ulps until its zCDP loss is at least ``rho``) is cast with
    ``make_zCDP_to_approxDP`` and ``make_fix_delta``; its map gives the epsilon.

    Parameters
    ----------
    rho : float
        zCDP loss (non-negative, finite). Zero gives zero.
    delta : float
        The delta, strictly between 0 and 1.

    Returns
    -------
    float
        The smallest epsilon OpenDP proves at ``delta`` (1.5577 for rho = 1/18 at 1e-6).
    """
    delta = _check_delta(delta)
    if rho == 0:
        return 0.0
    rho = check_positive("rho", rho)
    gaussian = _unit_gaussian()
    d_in = math.sqrt(2.0 * rho)
    while float(gaussian.map(d_in)) < rho:
        d_in = math.nextafter(d_in, math.inf)
    approx: Any = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(gaussian), delta=delta)
    epsilon, _ = approx.map(d_in)
    return float(epsilon)


def epsilon_at_classic(rho: float, delta: float) -> float:
    """Return the classic bound ``rho + 2 sqrt(rho ln(1/delta))`` (Bun & Steinke 2016).

    Parameters
    ----------
    rho : float
        zCDP loss (non-negative, finite).
    delta : float
        The delta, strictly between 0 and 1.

    Returns
    -------
    float
        An epsilon at ``delta``; never below ``epsilon_at(rho, delta)``.
    """
    delta = _check_delta(delta)
    if rho == 0:
        return 0.0
    rho = check_positive("rho", rho)
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


def split_budget(total: float, parts: int) -> tuple[float, ...]:
    """Split ``total`` evenly over ``parts`` releases, never overspending by rounding.

    Works for rho (zCDP composes by addition) and for pure epsilon alike. Each share
    is ``total / parts``, lowered by ulps if needed so that ``math.fsum`` of the
    shares never exceeds ``total``; it stays within 1e-15 relative of it.

    Parameters
    ----------
    total : float
        The budget to split (positive, finite).
    parts : int
        How many released vectors share it (at least 1).

    Returns
    -------
    tuple of float
        ``parts`` equal shares.
    """
    total = check_positive("budget", total)
    parts = check_int("parts", parts, 1)
    share = total / parts
    while math.fsum([share] * parts) > total:
        share = math.nextafter(share, 0.0)
    return (share,) * parts
