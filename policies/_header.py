"""``[policy]`` and ``[duties]``: identity, validity, privacy unit and duties."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from policies._types import Name, Strict, UtcDateTime

#: The delta at which rho is shown as epsilon, unless the policy says otherwise.
DEFAULT_DELTA = 1e-6


class PrivacyUnit(Strict):
    """``[policy.privacy_unit]``: whom differential privacy protects, and how much."""

    max_rows_per_person: int = Field(
        ge=1,
        description=(
            "The most rows one person can have in any dataset: the noise is scaled "
            "to hide all of them."
        ),
    )
    id_column: Name | None = Field(
        default=None,
        description=(
            "The column identifying a person, where there is one; it is never released."
        ),
    )


class PolicyHeader(Strict):
    """``[policy]``: which policy this is and when it is in force."""

    uid: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^\S+$",
        description="Unique id of the policy, e.g. urn:accord:agency-a:policy:7.",
    )
    agency: str = Field(
        pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$",
        description="The agency declaring the policy (its node's agency).",
    )
    version: int = Field(default=1, ge=1, description="Revision number, for people.")
    default: Literal["deny"] = Field(
        default="deny",
        description="What happens when no permission matches: always deny.",
    )
    valid_from: UtcDateTime | None = Field(
        default=None, description="The policy denies everything before this."
    )
    valid_until: UtcDateTime | None = Field(
        default=None, description="The policy denies everything from this on."
    )
    delta: float = Field(
        default=DEFAULT_DELTA,
        gt=0,
        le=1e-3,
        description="The delta at which rho is shown (and max_epsilon read) as epsilon.",
    )
    privacy_unit: PrivacyUnit = Field(
        description="Whom the privacy guarantee protects: rows per person."
    )


class Duties(Strict):
    """``[duties]``: what the agency owes its compliance officer and supervisor."""

    notify: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "The compliance officer's contact (e.g. mailto:dpo@agency.example), "
            "notified when a budget passes its alert threshold. Required with budgets."
        ),
    )
    log_retention_days: int | None = Field(
        default=None,
        ge=1,
        description="How long decision records are kept, in days.",
    )
