"""What a policy decides on: a request as the node sees it, and the decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Requester:
    """The authenticated requester, from its mTLS certificate."""

    uri: str
    agency: str
    role: str


@dataclass(frozen=True)
class AccessRequest:
    """One request to a node, reduced to what the policy needs."""

    requester: Requester
    dataset: str
    actions: frozenset[str]
    columns: frozenset[str] = frozenset()
    group_by: tuple[str, ...] = ()
    purpose: str = ""
    legal_basis: str = ""
    justification: str = ""
    on_behalf_of: str = ""


@dataclass(frozen=True)
class Decision:
    """The outcome of evaluating a policy.

    ``reason`` names the declared rule (or the default deny), never anything derived
    from data.
    """

    allowed: bool
    matched_rules: tuple[str, ...]
    reason: str
    policy_uid: str
    policy_digest: str
    unmet: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class BudgetCharge:
    """One budget a request must fit in, and what it costs there.

    The evaluator computes charges from the policy (pure); the ledger reserves them
    atomically: all of a request's charges or none.

    Parameters
    ----------
    budget_id : str
        The policy's budget rule id.
    account : str
        The ledger account: requester URI, plus the purpose for per-purpose budgets.
    period_start, period_end : datetime | None
        The current accounting period; both ``None`` for a lifetime budget.
    limit_rho : float
        The budget's limit in zCDP rho.
    cost_rho : float
        What this request costs, in rho.
    alert_threshold : float
        Fraction of the limit past which the agency's officer is alerted.
    """

    budget_id: str
    account: str
    period_start: datetime | None
    period_end: datetime | None
    limit_rho: float
    cost_rho: float
    alert_threshold: float = 0.8

    @property
    def period_key(self) -> str:
        """``lifetime`` or the ISO start of the period: the ledger's row key."""
        return "lifetime" if self.period_start is None else self.period_start.isoformat()
