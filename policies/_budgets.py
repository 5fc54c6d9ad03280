"""``[[budgets]]``: how much privacy loss each requester may spend, in zCDP rho."""

from __future__ import annotations

from pydantic import Field

from policies._types import Assignee, Positive, RuleUid, Strict


class Budget(Strict):
    """A privacy budget: every requester it applies to has an account of its own.

    A request is charged against every budget whose assignees match the requester:
    once for the current period (``rho_per_period`` over ``period_days``) and once
    for the lifetime (``rho_lifetime``), whichever the budget sets.
    """

    uid: RuleUid = Field(description="Unique id of the budget.")
    description: str = Field(default="", description="Free text, for people.")
    assignees: list[Assignee] = Field(
        min_length=1,
        description="Requesters this budget applies to; each gets its own account.",
    )
    per_purpose: bool = Field(
        default=False,
        description="Keep a separate account per requester and purpose.",
    )
    rho_per_period: Positive | None = Field(
        default=None, description="Limit per period, in zCDP rho."
    )
    period_days: int | None = Field(
        default=None,
        ge=1,
        description="Length of a period in days; periods are counted from 1970-01-01 UTC.",
    )
    rho_lifetime: Positive | None = Field(
        default=None, description="Limit over the policy's lifetime, in zCDP rho."
    )
    alert_threshold: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="Fraction of a limit past which the compliance officer is notified.",
    )
