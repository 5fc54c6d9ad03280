"""For every policy field: changing only that field flips a decision.

A flip is a change in what the decision says: allowed or denied, the matched rule, the
policy uid, the cost, the budget charges or an obligation. ``test_every_field_flips``
pins the list to the model: a new field needs a flip here (or a stated reason).
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

import policies

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64

BASE: dict[str, Any] = {
    "policy": {
        "uid": "urn:accord:test:fields:1",
        "agency": "agency-a",
        "version": 1,
        "default": "deny",
        "valid_from": datetime(2026, 1, 1, tzinfo=UTC),
        "valid_until": datetime(2027, 1, 1, tzinfo=UTC),
        "delta": 1e-6,
        "privacy_unit": {"max_rows_per_person": 2, "id_column": "person_id"},
    },
    "datasets": {
        "incidents": {
            "description": "incidents",
            "never_release": ["name"],
            "columns": {
                "region": {"type": "category", "categories": ["north", "south"]},
                "offence": {"type": "category", "categories": ["fraud", "theft"]},
                "severity": {"type": "integer", "bounds": [1, 5], "description": "1-5"},
                "note": {"type": "string"},
                "flag": {"type": "boolean"},
            },
        },
        "other": {
            "columns": {
                "region": {"type": "category", "categories": ["north", "south"]},
                "severity": {"type": "integer", "bounds": [1, 5]},
                "flag": {"type": "boolean"},
            }
        },
    },
    "permissions": [
        {
            "uid": "p-stats",
            "description": "coordinators, statistics",
            "assignees": ["role:coordinator"],
            "purposes": ["statistics"],
            "legal_bases": ["law-1"],
            "actions": ["count", "mean"],
            "datasets": ["incidents"],
            "columns": ["region", "severity", "flag"],
            "group_by": ["region"],
            "min_group_size": 5,
            "max_epsilon": 1.0,
            "default_rho": 0.004,
            "exact": False,
            "secure_aggregation_required": False,
            "require_justification": False,
            "require_on_behalf_of": False,
            "expires": datetime(2026, 12, 1, tzinfo=UTC),
        },
        {
            "uid": "p-any",
            "assignees": ["agency-x"],
            "purposes": ["statistics", "research"],
            "actions": ["count", "mean", "sum"],
            "datasets": ["incidents", "other"],
            "max_rho": 0.05,
            "default_rho": 0.01,
        },
        {
            "uid": "p-train",
            "assignees": ["role:coordinator"],
            "purposes": ["training"],
            "actions": ["train"],
            "datasets": ["incidents"],
            "apps": [{"name": "lr", "digest": D1}],
            "default_rho": 0.02,
            "max_rounds": 5,
        },
    ],
    "prohibitions": [
        {
            "uid": "x-block",
            "description": "agency-x: never count notes grouped by flag",
            "assignees": ["agency-y"],
            "datasets": ["incidents"],
            "purposes": ["statistics"],
            "legal_bases": ["law-1"],
            "actions": ["count"],
            "columns": ["note"],
            "group_by": ["flag"],
        },
        {"uid": "app-name", "assignees": ["*"], "apps": [{"name": "zz", "digest": D1}]},
        {
            "uid": "app-digest",
            "assignees": ["*"],
            "apps": [{"name": "lr", "digest": D2}],
        },
    ],
    "budgets": [
        {
            "uid": "b-coord",
            "description": "coordinators",
            "assignees": ["role:coordinator"],
            "per_purpose": False,
            "rho_per_period": 1.0,
            "period_days": 30,
            "rho_lifetime": 5.0,
            "alert_threshold": 0.8,
        }
    ],
    "duties": {"notify": "mailto:dpo@a.example", "log_retention_days": 365},
}

HUB = policies.Requester(
    "spiffe://demo/agency/hub/coordinator/analyst", "hub", "coordinator"
)
X = policies.Requester(
    "spiffe://demo/agency/agency-x/coordinator/c", "agency-x", "coordinator"
)

#: A coordinator's statistics request that ``p-stats`` permits.
R0 = policies.AccessRequest(
    requester=HUB,
    dataset="incidents",
    actions=frozenset({"count", "mean"}),
    columns=frozenset({"severity"}),
    group_by=("region",),
    purpose="statistics",
    legal_basis="law-1",
    value_columns=frozenset({"severity"}),
    privacy=policies.PrivacyLoss(rho=0.9 * policies.rho_for_epsilon(1.0, 1e-6)),
)
#: agency-x's request, permitted by ``p-any``; ``x-block`` matches all but its assignee.
RX = policies.AccessRequest(
    requester=X,
    dataset="incidents",
    actions=frozenset({"count"}),
    columns=frozenset({"note"}),
    group_by=("flag",),
    purpose="statistics",
    legal_basis="law-1",
)
#: A training round that ``p-train`` permits.
RT = policies.AccessRequest(
    requester=HUB,
    dataset="incidents",
    actions=frozenset({"train"}),
    purpose="training",
    app="lr",
    app_digest=D1,
    round=5,
)


@dataclass(frozen=True)
class Flip:
    """Set ``path`` to ``value``; ``observe`` (a Decision attribute path) changes."""

    field: str
    path: tuple[str | int, ...]
    value: Any
    request: policies.AccessRequest
    observe: str
    base: tuple[tuple[tuple[str | int, ...], Any], ...] = ()


def _x2(**changes: Any) -> policies.AccessRequest:
    """``RX`` with one dimension moved off ``x-block`` (made to match ``agency-x``)."""
    return replace(RX, **changes)


X_BLOCK_X = ((("prohibitions", 0, "assignees"), ["agency-x"]),)

FLIPS = [
    Flip("policy.uid", ("policy", "uid"), "urn:accord:test:fields:2", R0, "policy_uid"),
    Flip(
        "policy.valid_from",
        ("policy", "valid_from"),
        datetime(2026, 7, 1, tzinfo=UTC),
        R0,
        "allowed",
    ),
    Flip(
        "policy.valid_until",
        ("policy", "valid_until"),
        datetime(2026, 5, 1, tzinfo=UTC),
        R0,
        "allowed",
    ),
    Flip("policy.delta", ("policy", "delta"), 1e-9, R0, "allowed"),
    Flip(
        "policy.privacy_unit.max_rows_per_person",
        ("policy", "privacy_unit", "max_rows_per_person"),
        3,
        R0,
        "obligations.max_rows_per_person",
    ),
    Flip(
        "policy.privacy_unit.id_column",
        ("policy", "privacy_unit", "id_column"),
        "note",
        _x2(group_by=()),
        "allowed",
    ),
    Flip(
        "datasets.never_release",
        ("datasets", "incidents", "never_release"),
        ["note"],
        _x2(group_by=()),
        "allowed",
    ),
    Flip(
        "datasets.columns.type",
        ("datasets", "incidents", "columns", "flag", "type"),
        "string",
        _x2(columns=frozenset()),
        "allowed",
    ),
    Flip(
        "datasets.columns.bounds",
        ("datasets", "incidents", "columns", "severity", "bounds"),
        None,
        _x2(
            actions=frozenset({"sum"}),
            columns=frozenset(),
            group_by=(),
            value_columns=frozenset({"severity"}),
        ),
        "allowed",
    ),
    Flip(
        "datasets.columns.categories",
        ("datasets", "incidents", "columns", "offence", "categories"),
        None,
        _x2(columns=frozenset(), group_by=("offence",)),
        "allowed",
    ),
    Flip(
        "permissions.uid", ("permissions", 0, "uid"), "p-renamed", R0, "matched_rules"
    ),
    Flip(
        "permissions.assignees",
        ("permissions", 0, "assignees"),
        ["agency-z"],
        R0,
        "allowed",
    ),
    Flip(
        "permissions.purposes",
        ("permissions", 0, "purposes"),
        ["research"],
        R0,
        "allowed",
    ),
    Flip(
        "permissions.legal_bases",
        ("permissions", 0, "legal_bases"),
        ["law-2"],
        R0,
        "allowed",
    ),
    Flip(
        "permissions.actions", ("permissions", 0, "actions"), ["count"], R0, "allowed"
    ),
    Flip(
        "permissions.apps.name",
        ("permissions", 2, "apps", 0, "name"),
        "gbm",
        RT,
        "allowed",
    ),
    Flip(
        "permissions.apps.digest",
        ("permissions", 2, "apps", 0, "digest"),
        D2,
        RT,
        "allowed",
    ),
    Flip(
        "permissions.datasets", ("permissions", 0, "datasets"), ["other"], R0, "allowed"
    ),
    Flip(
        "permissions.columns",
        ("permissions", 0, "columns"),
        ["region", "flag"],
        R0,
        "allowed",
    ),
    Flip(
        "permissions.group_by", ("permissions", 0, "group_by"), ["flag"], R0, "allowed"
    ),
    Flip(
        "permissions.min_group_size",
        ("permissions", 0, "min_group_size"),
        20,
        R0,
        "obligations.min_group_size",
    ),
    Flip(
        "permissions.max_epsilon", ("permissions", 0, "max_epsilon"), 0.5, R0, "allowed"
    ),
    Flip(
        "permissions.max_rho",
        ("permissions", 1, "max_rho"),
        0.01,
        replace(RX, privacy=policies.PrivacyLoss(rho=0.04), purpose="research"),
        "allowed",
    ),
    Flip(
        "permissions.default_rho",
        ("permissions", 0, "default_rho"),
        0.003,
        replace(R0, privacy=None),
        "rho",
    ),
    Flip(
        "permissions.exact",
        ("permissions", 0, "exact"),
        True,
        R0,
        "obligations.exact_allowed",
    ),
    Flip(
        "permissions.secure_aggregation_required",
        ("permissions", 0, "secure_aggregation_required"),
        True,
        R0,
        "allowed",
    ),
    Flip(
        "permissions.min_participants",
        ("permissions", 0, "min_participants"),
        3,
        R0,
        "allowed",
    ),
    Flip("permissions.max_rounds", ("permissions", 2, "max_rounds"), 4, RT, "allowed"),
    Flip(
        "permissions.require_justification",
        ("permissions", 0, "require_justification"),
        True,
        R0,
        "allowed",
    ),
    Flip(
        "permissions.require_on_behalf_of",
        ("permissions", 0, "require_on_behalf_of"),
        True,
        R0,
        "allowed",
    ),
    Flip(
        "permissions.expires",
        ("permissions", 0, "expires"),
        datetime(2026, 5, 1, tzinfo=UTC),
        R0,
        "allowed",
    ),
    Flip(
        "prohibitions.uid",
        ("prohibitions", 0, "uid"),
        "x-renamed",
        RX,
        "matched_rules",
        X_BLOCK_X,
    ),
    Flip(
        "prohibitions.assignees",
        ("prohibitions", 0, "assignees"),
        ["agency-x"],
        RX,
        "allowed",
    ),
    Flip(
        "prohibitions.datasets",
        ("prohibitions", 0, "datasets"),
        ["other"],
        _x2(dataset="other", columns=frozenset(), group_by=()),
        "allowed",
        (
            *X_BLOCK_X,
            (("prohibitions", 0, "columns"), []),
            (("prohibitions", 0, "group_by"), []),
        ),
    ),
    Flip(
        "prohibitions.purposes",
        ("prohibitions", 0, "purposes"),
        ["research"],
        _x2(purpose="research"),
        "allowed",
        X_BLOCK_X,
    ),
    Flip(
        "prohibitions.legal_bases",
        ("prohibitions", 0, "legal_bases"),
        ["law-2"],
        _x2(legal_basis="law-2"),
        "allowed",
        X_BLOCK_X,
    ),
    Flip(
        "prohibitions.actions",
        ("prohibitions", 0, "actions"),
        ["mean"],
        _x2(actions=frozenset({"mean"})),
        "allowed",
        X_BLOCK_X,
    ),
    Flip(
        "prohibitions.apps.name",
        ("prohibitions", 1, "apps", 0, "name"),
        "lr",
        RT,
        "allowed",
    ),
    Flip(
        "prohibitions.apps.digest",
        ("prohibitions", 2, "apps", 0, "digest"),
        D1,
        RT,
        "allowed",
    ),
    Flip(
        "prohibitions.columns",
        ("prohibitions", 0, "columns"),
        ["region"],
        _x2(columns=frozenset({"region"})),
        "allowed",
        X_BLOCK_X,
    ),
    Flip(
        "prohibitions.group_by",
        ("prohibitions", 0, "group_by"),
        ["region"],
        _x2(group_by=("region",)),
        "allowed",
        X_BLOCK_X,
    ),
    Flip("budgets.uid", ("budgets", 0, "uid"), "b-renamed", R0, "charges"),
    Flip("budgets.assignees", ("budgets", 0, "assignees"), ["agency-z"], R0, "charges"),
    Flip("budgets.per_purpose", ("budgets", 0, "per_purpose"), True, R0, "charges"),
    Flip(
        "budgets.rho_per_period", ("budgets", 0, "rho_per_period"), 0.5, R0, "charges"
    ),
    Flip("budgets.period_days", ("budgets", 0, "period_days"), 7, R0, "charges"),
    Flip("budgets.rho_lifetime", ("budgets", 0, "rho_lifetime"), 4.0, R0, "charges"),
    Flip(
        "budgets.alert_threshold", ("budgets", 0, "alert_threshold"), 0.5, R0, "charges"
    ),
    Flip(
        "duties.notify",
        ("duties", "notify"),
        "mailto:officer@a.example",
        R0,
        "obligations.notify",
    ),
    Flip(
        "duties.log_retention_days",
        ("duties", "log_retention_days"),
        3650,
        R0,
        "obligations.log_retention_days",
    ),
]

#: Fields that do not change what a decision says, and why.
NOT_DECISIVE = {
    "policy.agency": "names the declaring agency; the node refuses a policy of another",
    "policy.version": "for people; the file's digest identifies each revision",
    "policy.default": "has a single value, deny",
    "datasets.description": "documentation",
    "datasets.columns.description": "documentation",
    "permissions.description": "documentation",
    "prohibitions.description": "documentation",
    "budgets.description": "documentation",
}


def _with(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    if value is None:
        target.pop(path[-1])
    else:
        target[path[-1]] = value


def _observe(decision: policies.Decision, what: str) -> Any:
    value: Any = decision
    for name in what.split("."):
        value = getattr(value, name)
    return value


def _decide(data: dict[str, Any], request: policies.AccessRequest) -> policies.Decision:
    policy = policies.Policy.model_validate(data)
    return policies.evaluate(policy, request, digest="0" * 64, now=AT)


@pytest.mark.parametrize("flip", FLIPS, ids=[f.field for f in FLIPS])
def test_changing_only_this_field_flips_the_decision(flip: Flip) -> None:
    before = copy.deepcopy(BASE)
    for path, value in flip.base:
        _with(before, path, value)
    after = copy.deepcopy(before)
    _with(after, flip.path, flip.value)

    old = _decide(before, flip.request)
    new = _decide(after, flip.request)

    assert _observe(old, flip.observe) != _observe(new, flip.observe), (
        old.reason,
        new.reason,
    )
    if flip.observe == "allowed":
        assert old.allowed, old.reason  # the change is what refuses


def _leaves(model: type[pydantic.BaseModel], prefix: str = "") -> Iterator[str]:
    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        nested = [
            arg
            for arg in (info.annotation, *typing.get_args(info.annotation))
            if isinstance(arg, type) and issubclass(arg, pydantic.BaseModel)
        ]
        if nested:
            yield from _leaves(nested[0], path)
        else:
            yield path


def test_every_field_flips_or_says_why_not() -> None:
    fields = set(_leaves(policies.Policy))
    flipped = {f.field for f in FLIPS}
    assert flipped.isdisjoint(NOT_DECISIVE)
    assert fields == flipped | set(NOT_DECISIVE), (
        f"no flip for: {sorted(fields - flipped - set(NOT_DECISIVE))}; "
        f"not a field: {sorted((flipped | set(NOT_DECISIVE)) - fields)}"
    )


def test_the_base_policy_allows_the_base_requests() -> None:
    for request in (R0, RX, RT):
        assert _decide(copy.deepcopy(BASE), request).allowed
