"""The declared sharing policy of one agency: what it shares, with whom, for what."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Action = Literal["count", "sum", "mean"]
ACTIONS: tuple[Action, ...] = ("count", "sum", "mean")

_IDENT = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyHeader(_Strict):
    """The ``[policy]`` table: identity and validity of the policy."""

    uid: str = Field(
        min_length=1, description="Unique id, e.g. urn:accord:agency-a:policy:7"
    )
    agency: str = Field(pattern=_IDENT, description="The agency declaring the policy")
    version: int = Field(ge=1, default=1)
    default: Literal["deny"] = "deny"
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    @field_validator("valid_from", "valid_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(
                "expected a date-time with a UTC offset, e.g. 2026-01-01T00:00:00Z"
            )
        return value

    @model_validator(mode="after")
    def _window(self) -> PolicyHeader:
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be later than valid_from")
        return self


class Rule(_Strict):
    """A permission or prohibition; an empty list means "any" except for assignees."""

    uid: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    description: str = ""
    assignees: list[str] = Field(
        min_length=1,
        description=(
            "Agencies (agency-b), identities (spiffe://...), roles (role:coordinator) or *"
        ),
    )
    datasets: list[str] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    purposes: list[str] = Field(default_factory=list)
    legal_bases: list[str] = Field(default_factory=list)
    columns: list[str] = Field(default_factory=list)
    group_by: list[str] = Field(default_factory=list)

    @field_validator("assignees")
    @classmethod
    def _assignees(cls, values: list[str]) -> list[str]:
        for value in values:
            if not (
                value == "*"
                or value.startswith("spiffe://")
                or value.startswith("role:")
                or _is_ident(value)
            ):
                raise ValueError(
                    f"assignee {value!r}: expected an agency name, a spiffe:// identity, "
                    "role:<role> or *"
                )
        return values


class Policy(_Strict):
    """A whole policy file."""

    policy: PolicyHeader
    permissions: list[Rule] = Field(default_factory=list)
    prohibitions: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_uids(self) -> Policy:
        seen: set[str] = set()
        for rule in [*self.permissions, *self.prohibitions]:
            if rule.uid in seen:
                raise ValueError(f"rule uid {rule.uid!r} is declared twice")
            seen.add(rule.uid)
        return self


def _is_ident(value: str) -> bool:
    import re

    return re.match(_IDENT, value) is not None
