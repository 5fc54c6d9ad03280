"""The declared sharing policy of one agency: what it shares, with whom, for what."""

from __future__ import annotations

from functools import cached_property

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from policies._budgets import Budget
from policies._consistency import Parts, contradictions
from policies._datasets import Dataset
from policies._header import Duties, PolicyHeader
from policies._rules import Permission, Prohibition
from policies._types import Name, Strict

#: The pydantic error type of a policy whose parts contradict each other.
CONTRADICTION = "policy_contradiction"


class Policy(Strict):
    """A whole policy file, with ODRL-like semantics.

    Default deny: a request is allowed only if a permission permits it, no prohibition
    matches it, and it uses no column the policy never releases. Every contradiction
    between parts (a permission granting a never-released column, a group-by on a
    column without public domain, ...) is a validation error.
    """

    policy: PolicyHeader = Field(description="Identity, validity and privacy unit.")
    datasets: dict[Name, Dataset] = Field(
        default_factory=dict,
        description="The datasets the policy governs; others are never shared.",
    )
    permissions: list[Permission] = Field(
        default_factory=list, description="What assignees may do."
    )
    prohibitions: list[Prohibition] = Field(
        default_factory=list,
        description="What assignees must never do; overrides permissions.",
    )
    budgets: list[Budget] = Field(
        default_factory=list, description="Privacy budgets per requester."
    )
    duties: Duties = Field(
        default_factory=Duties, description="Notification and retention duties."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        issues = contradictions(self.parts)
        if issues:
            raise PydanticCustomError(
                CONTRADICTION,
                "{count} contradiction(s) between parts of the policy, first: {first}",
                {"count": len(issues), "first": issues[0].message},
            )
        return self

    @cached_property
    def rho_caps(self) -> tuple[float | None, ...]:
        """Each permission's per-query cap in rho at this policy's delta (or ``None``)."""
        return tuple(p.rho_cap(self.policy.delta) for p in self.permissions)

    @cached_property
    def parts(self) -> Parts:
        """The policy's parts, as the consistency checks read them."""
        return Parts.of(
            self.policy,
            self.datasets,
            self.permissions,
            self.prohibitions,
            self.budgets,
            self.duties,
        )
