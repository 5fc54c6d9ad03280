"""Privacy loss in zCDP rho, and how it reads as epsilon at a delta.

Accord accounts every loss in zero-concentrated DP (rho adds up under composition).
People read epsilon: rho-zCDP implies (epsilon, delta)-DP with
``epsilon = rho + 2 * sqrt(rho * ln(1 / delta))`` (Bun & Steinke 2016, Prop. 1.3) --
the classic conversion, slightly looser than OpenDP's, so a cap stated as epsilon is
never exceeded.
"""

from __future__ import annotations

import math


def epsilon_at(rho: float, delta: float) -> float:
    """Return the epsilon at ``delta`` that a loss of ``rho`` (zCDP) implies."""
    if rho <= 0:
        return 0.0
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """Return the largest rho whose epsilon at ``delta`` is ``epsilon`` (inverse of ``epsilon_at``)."""
    if epsilon <= 0:
        return 0.0
    log_term = math.log(1.0 / delta)
    # (sqrt(L + eps) - sqrt(L))**2, written without cancellation.
    return epsilon**2 / (math.sqrt(log_term + epsilon) + math.sqrt(log_term)) ** 2


def rho_of_pure_epsilon(epsilon: float) -> float:
    """Return the zCDP rho of a pure epsilon-DP release: ``epsilon**2 / 2``."""
    return epsilon * epsilon / 2.0
