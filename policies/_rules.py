"""``[[permissions]]`` and ``[[prohibitions]]``: who may (or must not) do what."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from pydantic import Field

from policies._privacy import rho_for_epsilon
from policies._types import (
    Action,
    Assignee,
    Digest,
    Label,
    Name,
    Positive,
    RuleUid,
    Strict,
    UtcDateTime,
)


class App(Strict):
    """A training app a node has installed, by name and code digest."""

    name: Name = Field(description="The app's name, as installed at the node.")
    digest: Digest | None = Field(
        default=None,
        description=(
            'SHA-256 of the app\'s code, "sha256:<64 hex digits>". Required in '
            "permissions; in prohibitions, absent means any version."
        ),
    )


@dataclass(frozen=True)
class RuleSets:
    """A rule's lists as sets, computed once, for fast matching."""

    assignees: frozenset[str]
    purposes: frozenset[str]
    legal_bases: frozenset[str]
    actions: frozenset[str]
    apps: frozenset[tuple[str, str | None]]
    datasets: frozenset[str]
    columns: frozenset[str]
    group_by: frozenset[str]


class Rule(Strict):
    """The matching fields common to permissions and prohibitions.

    An absent or empty list means "any" (for prohibitions: the rule does not narrow on
    that field).
    """

    uid: RuleUid = Field(
        description="Unique id of the rule, named in refusals and in the decision log."
    )
    description: str = Field(default="", description="Free text, for people.")
    assignees: list[Assignee] = Field(
        min_length=1,
        description=(
            "Who the rule is about: agency names, identities (spiffe://...), "
            "role:<role> or * for everyone in the federation."
        ),
    )
    purposes: list[Label] = Field(
        default_factory=list, description="Purposes, as stated by the request."
    )
    legal_bases: list[Label] = Field(
        default_factory=list,
        description="Legal bases, exactly as the request states them.",
    )
    actions: list[Action] = Field(default_factory=list, description="Actions.")
    apps: list[App] = Field(
        default_factory=list, description="Training apps (action train only)."
    )
    datasets: list[Name] = Field(
        default_factory=list, description="Datasets declared under [datasets]."
    )
    columns: list[Name] = Field(
        default_factory=list,
        description="Columns a request may use (aggregated, filtered or grouped by).",
    )
    group_by: list[Name] = Field(
        default_factory=list, description="Columns a request may group by."
    )

    @cached_property
    def sets(self) -> RuleSets:
        """The rule's lists as sets (computed on first use)."""
        return RuleSets(
            assignees=frozenset(self.assignees),
            purposes=frozenset(self.purposes),
            legal_bases=frozenset(self.legal_bases),
            actions=frozenset(self.actions),
            apps=frozenset((app.name, app.digest) for app in self.apps),
            datasets=frozenset(self.datasets),
            columns=frozenset(self.columns),
            group_by=frozenset(self.group_by),
        )


class Permission(Rule):
    """``[[permissions]]``: what an assignee may do, and on which conditions.

    A permission permits a request when every one of its constraints is met: the
    requester is an assignee; the dataset, purpose and legal basis are listed; all the
    request's actions, columns and group-by columns are listed; and the privacy,
    secure-aggregation, participant, round, justification and expiry conditions hold.
    """

    purposes: list[Label] = Field(
        min_length=1, description="Purposes the permission is for (at least one)."
    )
    actions: list[Action] = Field(
        min_length=1, description="Actions permitted (at least one)."
    )
    datasets: list[Name] = Field(
        min_length=1, description="Datasets the permission covers (at least one)."
    )
    min_group_size: int | None = Field(
        default=None,
        ge=1,
        description="Groups whose noisy count is below this are suppressed.",
    )
    max_epsilon: Positive | None = Field(
        default=None,
        description="Cap on a query's privacy loss as epsilon at the policy's delta.",
    )
    max_rho: Positive | None = Field(
        default=None, description="Cap on a query's privacy loss in zCDP rho."
    )
    default_rho: Positive | None = Field(
        default=None,
        description="The loss charged when the request states none (zCDP rho).",
    )
    exact: bool = Field(
        default=False,
        description=(
            "Allow answers without noise (tests, trusted partners). The loss is "
            "still charged to the budgets."
        ),
    )
    secure_aggregation_required: bool = Field(
        default=False,
        description="Only requests combined by secure aggregation are permitted.",
    )
    min_participants: int | None = Field(
        default=None,
        ge=1,
        description="At least this many agencies must take part in the request.",
    )
    max_rounds: int | None = Field(
        default=None, ge=1, description="Training: the last round permitted."
    )
    require_justification: bool = Field(
        default=False, description="The request must state a justification."
    )
    require_on_behalf_of: bool = Field(
        default=False,
        description="The request must name the person it is made for.",
    )
    expires: UtcDateTime | None = Field(
        default=None, description="The permission ends at this date-time."
    )

    def rho_cap(self, delta: float) -> float | None:
        """Return the per-query cap in rho (the tighter of both caps), or ``None``."""
        caps = [
            cap
            for cap in (
                self.max_rho,
                None
                if self.max_epsilon is None
                else rho_for_epsilon(self.max_epsilon, delta),
            )
            if cap is not None
        ]
        return min(caps) if caps else None


class Prohibition(Rule):
    """``[[prohibitions]]``: what an assignee must never do; overrides permissions.

    A prohibition matches a request when the requester is an assignee, its dataset,
    purpose and legal basis are listed (where the rule lists them), and it uses at
    least one of each listed set of actions, apps, columns and group-by columns.
    """
