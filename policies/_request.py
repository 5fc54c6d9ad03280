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
class PrivacyLoss:
    """The privacy loss a request asks to spend: pure epsilon or zCDP rho, one of them.

    Parameters
    ----------
    epsilon : float | None
        Pure differential privacy epsilon; it costs ``epsilon**2 / 2`` in rho.
    rho : float | None
        Zero-concentrated differential privacy rho.
    """

    epsilon: float | None = None
    rho: float | None = None


@dataclass(frozen=True)
class AccessRequest:
    """One request to a node, reduced to what the policy needs.

    Parameters
    ----------
    requester : Requester
        Who asks, from the mTLS certificate.
    dataset : str
        The dataset asked about.
    actions : frozenset[str]
        What is computed: count, sum, mean, variance, histogram, quantile or train.
    columns : frozenset[str]
        Every column the request reads (aggregated, filtered, grouped by).
    group_by : tuple[str, ...]
        The group-by columns, in order.
    purpose, legal_basis, justification, on_behalf_of : str
        Why and for whom, as stated by the requester ("" when not stated).
    value_columns : frozenset[str]
        Columns whose values are summed, averaged or ranked; each needs declared
        numeric bounds. Empty when the caller does not say.
    privacy : PrivacyLoss | None
        The loss the requester asks to spend; ``None``: the permission's default.
    secure_aggregation : bool
        Whether the answer is combined by secure aggregation.
    participants : int | None
        How many agencies take part, when the requester says.
    app, app_digest : str
        Training: the app asked to run and its code digest (``sha256:...``).
    round : int | None
        Training: the round number (from 1).
    """

    requester: Requester
    dataset: str
    actions: frozenset[str]
    columns: frozenset[str] = frozenset()
    group_by: tuple[str, ...] = ()
    purpose: str = ""
    legal_basis: str = ""
    justification: str = ""
    on_behalf_of: str = ""
    value_columns: frozenset[str] = frozenset()
    privacy: PrivacyLoss | None = None
    secure_aggregation: bool = False
    participants: int | None = None
    app: str = ""
    app_digest: str = ""
    round: int | None = None

    @property
    def used_columns(self) -> frozenset[str]:
        """Every column the request touches: read, grouped by or aggregated."""
        return self.columns | frozenset(self.group_by) | self.value_columns


@dataclass(frozen=True)
class Obligations:
    """What the node must do when it answers an allowed request.

    Parameters
    ----------
    delta : float
        The policy's delta (epsilon is shown at this delta).
    max_rows_per_person : int
        Rows one person may contribute: noise is scaled to hide them all.
    min_group_size : int | None
        Suppress groups whose noisy count is below this.
    exact_allowed : bool
        The answer may be exact (no noise); the loss is charged all the same.
    secure_aggregation_required : bool
        The answer must be masked for secure aggregation.
    min_participants : int | None
        The least number of agencies the answer may be combined with.
    clamp_bounds : tuple[tuple[str, float, float], ...]
        ``(column, lower, upper)`` of every value column, from the policy.
    notify : str | None
        The compliance officer to notify when a budget passes its threshold.
    log_retention_days : int | None
        How long the decision record is kept.
    """

    delta: float
    max_rows_per_person: int
    min_group_size: int | None = None
    exact_allowed: bool = False
    secure_aggregation_required: bool = False
    min_participants: int | None = None
    clamp_bounds: tuple[tuple[str, float, float], ...] = ()
    notify: str | None = None
    log_retention_days: int | None = None


@dataclass(frozen=True)
class Decision:
    """The outcome of evaluating a policy.

    ``reason`` names the declared rule (or the default deny), never anything derived
    from data. On a denial, ``matched_rules`` holds the rule that refused (a
    prohibition, a never-released column, ...) and is empty for the default deny;
    ``unmet`` names the constraints the nearest permission did not meet. A denial has
    no cost, charges or obligations.

    Parameters
    ----------
    allowed : bool
        Whether the request may run.
    matched_rules : tuple[str, ...]
        The permission that allowed it, or the declared rule that refused it.
    reason : str
        One sentence naming the declared rule.
    policy_uid, policy_digest : str
        Which policy decided, and the SHA-256 of its file.
    unmet : tuple[str, ...]
        Constraints of the nearest permission that the request does not meet.
    rho : float
        The per-query loss (zCDP rho) charged for an allowed request.
    charges : tuple[BudgetCharge, ...]
        One charge per applicable budget limit, for the ledger to reserve.
    obligations : Obligations | None
        What the node must do when it answers; ``None`` on a denial.
    """

    allowed: bool
    matched_rules: tuple[str, ...]
    reason: str
    policy_uid: str
    policy_digest: str
    unmet: tuple[str, ...] = field(default=())
    rho: float = 0.0
    charges: tuple[BudgetCharge, ...] = field(default=())
    obligations: Obligations | None = None


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
        return (
            "lifetime" if self.period_start is None else self.period_start.isoformat()
        )
