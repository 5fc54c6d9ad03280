"""What the node tells the workbench besides its log: budgets and the node's facts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["BudgetLine", "BudgetReport", "NodeFacts"]


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One privacy budget of one requester, as the node's ledger stands.

    Attributes
    ----------
    budget_id : str
        The policy's budget rule.
    requester : str
        Whose budget (SAN URI).
    purpose : str
        The purpose of a per-purpose budget ("" otherwise).
    scope : str
        ``lifetime`` or the period as ISO 8601 (``P30D``).
    period_start, period_end : datetime or None
        The current period (``None`` for a lifetime budget).
    rho_limit, rho_spent, rho_remaining : float
        In zCDP rho.
    epsilon_remaining, delta : float
        What is left as epsilon at ``delta``.
    alert_threshold : float
        Fraction of the limit past which the officer is alerted.
    """

    budget_id: str
    requester: str
    purpose: str
    scope: str
    period_start: datetime | None
    period_end: datetime | None
    rho_limit: float
    rho_spent: float
    rho_remaining: float
    epsilon_remaining: float
    delta: float
    alert_threshold: float

    @property
    def fraction(self) -> float:
        """Spent as a fraction of the limit (0 for a zero limit)."""
        return self.rho_spent / self.rho_limit if self.rho_limit > 0 else 0.0

    @property
    def past_threshold(self) -> bool:
        """Whether spending reached the alert threshold (as the node's ledger says)."""
        return self.rho_limit > 0 and self.rho_spent >= self.alert_threshold * (
            self.rho_limit
        )

    @property
    def exhausted(self) -> bool:
        """Whether nothing (to 1e-12 rho) is left."""
        return self.rho_remaining <= 1e-12

    @property
    def period_days(self) -> int | None:
        """The period's length in days, or ``None`` for a lifetime budget."""
        if self.period_start is None or self.period_end is None:
            return None
        return (self.period_end - self.period_start).days


@dataclass(frozen=True, slots=True)
class BudgetReport:
    """Every budget of one requester (``GetBudget``).

    Attributes
    ----------
    requester : str
        The requester.
    policy_digest : str
        SHA-256 of the policy declaring the budgets.
    budgets : tuple[BudgetLine, ...]
        The budgets.
    """

    requester: str
    policy_digest: str
    budgets: tuple[BudgetLine, ...]


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """The node's identity and the policy in force (``GetNodeInfo``).

    Attributes
    ----------
    agency, federation, node_name, identity, version : str
        Who the node is.
    policy_digest : str
        SHA-256 of the policy the node applies now.
    caller_identity : str
        The workbench's own identity, as the node sees it.
    """

    agency: str
    federation: str
    node_name: str
    identity: str
    version: str
    policy_digest: str
    caller_identity: str
