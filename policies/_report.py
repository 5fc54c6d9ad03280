"""A decision as plain data: what ``explain`` prints, as JSON or as a table."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from policies._privacy import epsilon_at
from policies._request import BudgetCharge, Decision


def charge_report(charge: BudgetCharge, *, delta: float) -> dict[str, Any]:
    """Return one budget charge as JSON-ready data, with epsilon at ``delta``."""
    return {
        "budget_id": charge.budget_id,
        "account": charge.account,
        "period": charge.period_key,
        "period_start": _iso(charge.period_start),
        "period_end": _iso(charge.period_end),
        "limit_rho": charge.limit_rho,
        "limit_epsilon": epsilon_at(charge.limit_rho, delta),
        "cost_rho": charge.cost_rho,
        "alert_threshold": charge.alert_threshold,
    }


def decision_report(
    decision: Decision, *, at: datetime, delta: float
) -> dict[str, Any]:
    """Return ``decision`` as JSON-ready data, with its cost as epsilon at ``delta``.

    Parameters
    ----------
    decision : Decision
        The evaluator's decision.
    at : datetime
        The time it was evaluated at.
    delta : float
        The policy's delta.
    """
    duties = decision.obligations
    obligations: dict[str, Any] | None = None
    if duties is not None:
        obligations = asdict(duties)
        obligations["clamp_bounds"] = [
            {"column": c, "lower": lo, "upper": hi} for c, lo, hi in duties.clamp_bounds
        ]
    return {
        "decision": "allow" if decision.allowed else "deny",
        "allowed": decision.allowed,
        "matched_rules": list(decision.matched_rules),
        "reason": decision.reason,
        "unmet": list(decision.unmet),
        "policy_uid": decision.policy_uid,
        "policy_digest": decision.policy_digest,
        "at": at.isoformat(),
        "rho": decision.rho,
        "epsilon": epsilon_at(decision.rho, delta),
        "delta": delta,
        "charges": [charge_report(c, delta=delta) for c in decision.charges],
        "obligations": obligations,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
