"""Value types of the policy file: actions, names, assignees, digests, UTC date-times."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Final, Literal, Self, TypeAlias, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

import pki

Action: TypeAlias = Literal[
    "count", "sum", "mean", "variance", "histogram", "quantile", "train"
]
#: Every action a rule can name, in documentation order.
ACTIONS: Final[tuple[Action, ...]] = get_args(Action)
#: Actions that read a column's values, so need its numeric bounds.
VALUE_ACTIONS: Final = frozenset({"sum", "mean", "variance", "quantile"})

ColumnType: TypeAlias = Literal["integer", "float", "category", "boolean", "string"]
NUMERIC_TYPES: Final = frozenset({"integer", "float"})

_AWARE_HINT = "expected a date-time with a UTC offset, e.g. 2026-01-01T00:00:00Z"
_ASSIGNEE_HINT = (
    "expected an agency name (agency-b), an identity "
    "(spiffe://<federation>/agency/<agency>/<role>/<name>), role:<role> or *"
)
_AGENCY = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class Strict(BaseModel):
    """Base of every table of the policy file: no unknown keys, no coercion, frozen.

    Values derived from the fields (``functools.cached_property``) live in the
    instance ``__dict__``; copies forget them, so ``model_copy(update=...)`` never
    carries a value derived from the old fields.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def __copy__(self) -> Self:
        copied = super().__copy__()
        _forget_derived(copied)
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        copied = super().__deepcopy__(memo)
        _forget_derived(copied)
        return copied


def _forget_derived(model: BaseModel) -> None:
    for name in [k for k in model.__dict__ if k not in type(model).model_fields]:
        del model.__dict__[name]


def _aware(value: object) -> object:
    """Accept an offset date-time (TOML native or RFC 3339 text) and nothing vaguer."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(_AWARE_HINT) from None
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError(f"{_AWARE_HINT}; this one has no offset")
        return value
    if isinstance(value, date):
        raise ValueError(f"{_AWARE_HINT}; this is a date without a time")
    return value


def _assignee(value: str) -> str:
    if value == "*" or _AGENCY.fullmatch(value):
        return value
    if value.startswith("role:"):
        role = value.removeprefix("role:")
        if role not in pki.ROLES:
            roles = ", ".join(f"role:{r}" for r in pki.ROLES)
            raise ValueError(f"expected one of {roles}")
        return value
    if value.startswith("spiffe://"):
        try:
            pki.Identity.parse(value)
        except pki.InvalidIdentity as exc:
            raise ValueError(str(exc)) from None
        return value
    raise ValueError(_ASSIGNEE_HINT)


def _digest(value: str) -> str:
    if not _DIGEST.fullmatch(value):
        raise ValueError('expected "sha256:" and 64 lowercase hex digits')
    return value


#: An aware date-time; TOML offset date-times (``2026-01-01T00:00:00Z``).
UtcDateTime = Annotated[datetime, BeforeValidator(_aware)]

#: Who a rule or budget is about.
Assignee = Annotated[
    str,
    AfterValidator(_assignee),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\*|role:(node|coordinator|officer)|spiffe://\S+"
            r"|[a-z0-9][a-z0-9.-]{0,62})$",
            "description": _ASSIGNEE_HINT.removeprefix("expected "),
        }
    ),
]

#: A code digest of a training app.
Digest = Annotated[
    str,
    AfterValidator(_digest),
    WithJsonSchema({"type": "string", "pattern": r"^sha256:[0-9a-f]{64}$"}),
]

#: The id of a rule or budget: quoted in refusals and in the decision log.
RuleUid = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]

#: A dataset id or column name.
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")]

#: Free text naming a purpose or a legal basis, compared exactly.
Label = Annotated[str, Field(min_length=1, max_length=200)]

#: A positive, finite privacy parameter.
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
