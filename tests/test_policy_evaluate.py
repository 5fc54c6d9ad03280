"""The evaluator is pure, total and default-deny; periods and privacy units."""

from __future__ import annotations

import ast
import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import policies
from demo import DEMO_POLICIES
from demo._provision import _policy_text
from tests.test_policy_fields import BASE, R0, RT, RX

ROOT = Path(__file__).resolve().parents[1]
AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
POLICY = policies.Policy.model_validate(BASE)

#: The modules evaluate() runs: no I/O, no clock, no logging.
PURE_MODULES = ["_evaluate", "_match", "_charges", "_privacy", "_request", "_rules"]
ALLOWED_IMPORTS = {
    "__future__",
    "collections.abc",
    "dataclasses",
    "datetime",
    "functools",
    "math",
    "pydantic",
    "typing",
}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_the_evaluator_reads_no_clock_and_does_no_io(module: str) -> None:
    tree = ast.parse((ROOT / "policies" / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.module in ALLOWED_IMPORTS or node.module.startswith(
                "policies._"
            ), node.module
        if isinstance(node, ast.Import):
            assert {a.name for a in node.names} <= ALLOWED_IMPORTS
        if isinstance(node, ast.Attribute):
            assert node.attr not in {"now", "utcnow", "today", "time", "open"}
        if isinstance(node, ast.Name):
            assert node.id not in {"open", "print"}


def test_time_is_an_argument_only() -> None:
    early, late = AT, AT + timedelta(days=400)
    assert policies.evaluate(POLICY, R0, digest="d", now=early).allowed
    assert not policies.evaluate(POLICY, R0, digest="d", now=late).allowed
    again = [policies.evaluate(POLICY, R0, digest="d", now=early) for _ in range(3)]
    assert len(set(again)) == 1


def test_offsets_do_not_change_the_decision() -> None:
    other = AT.astimezone(timezone(timedelta(hours=-7)))
    assert policies.evaluate(POLICY, R0, digest="d", now=other) == policies.evaluate(
        POLICY, R0, digest="d", now=AT
    )


def test_a_time_without_offset_is_denied_not_raised() -> None:
    decision = policies.evaluate(POLICY, R0, digest="d", now=datetime(2026, 6, 1))
    assert not decision.allowed
    assert "no UTC offset" in decision.reason


@pytest.mark.parametrize(
    "privacy",
    [
        policies.PrivacyLoss(),
        policies.PrivacyLoss(epsilon=0.1, rho=0.1),
        policies.PrivacyLoss(rho=-1.0),
        policies.PrivacyLoss(rho=0.0),
        policies.PrivacyLoss(rho=math.nan),
        policies.PrivacyLoss(epsilon=math.inf),
        policies.PrivacyLoss(rho=True),
        policies.PrivacyLoss(rho="0.1"),  # type: ignore[arg-type]
    ],
)
def test_an_invalid_privacy_statement_is_denied(privacy: policies.PrivacyLoss) -> None:
    decision = policies.evaluate(
        POLICY, replace(R0, privacy=privacy), digest="d", now=AT
    )
    assert not decision.allowed
    assert "epsilon or rho" in decision.reason or "positive, finite" in decision.reason


def test_no_action_is_denied() -> None:
    decision = policies.evaluate(
        POLICY, replace(R0, actions=frozenset()), digest="d", now=AT
    )
    assert not decision.allowed


WORDS = [
    "",
    "x",
    "count",
    "train",
    "incidents",
    "other",
    "region",
    "note",
    "flag",
    "severity",
    "name",
    "person_id",
    "statistics",
    "research",
    "law-1",
    "lr",
    "*",
]


def _random_request(rng: random.Random) -> policies.AccessRequest:
    def some(pool: list[str]) -> frozenset[str]:
        return frozenset(rng.sample(pool, rng.randint(0, 3)))

    who = rng.choice([R0.requester, RX.requester, policies.Requester("", "", "")])
    return policies.AccessRequest(
        requester=who,
        dataset=rng.choice(WORDS),
        actions=some([*policies.ACTIONS, "export"]),
        columns=some(WORDS),
        group_by=tuple(some(WORDS)),
        purpose=rng.choice(WORDS),
        legal_basis=rng.choice(WORDS),
        justification=rng.choice(WORDS),
        on_behalf_of=rng.choice(WORDS),
        value_columns=some(WORDS),
        privacy=rng.choice(
            [
                None,
                policies.PrivacyLoss(rho=rng.choice([0.001, 0.5, -1.0, math.nan])),
                policies.PrivacyLoss(epsilon=rng.random()),
            ]
        ),
        secure_aggregation=rng.random() < 0.5,
        participants=rng.choice([None, 0, 1, 5]),
        app=rng.choice(["", "lr", "zz"]),
        app_digest=rng.choice(["", RT.app_digest]),
        round=rng.choice([None, -1, 0, 1, 9]),
    )


def test_the_evaluator_is_total() -> None:
    """Random requests and times: always a Decision; denials carry nothing."""
    rng = random.Random(7)
    allowed = 0
    fields = list(policies.AccessRequest.__dataclass_fields__)
    for _ in range(3000):
        now = AT + timedelta(days=rng.randint(-400, 400))
        request = _random_request(rng)
        if rng.random() < 0.5:  # near a permitted request: one field changed
            field = rng.choice(fields)
            base = rng.choice([R0, RX, RT])
            request = replace(base, **{field: getattr(request, field)})
        decision = policies.evaluate(POLICY, request, digest="d", now=now)
        assert decision.policy_uid == POLICY.policy.uid
        assert decision.reason
        if decision.allowed:
            allowed += 1
            assert decision.rho > 0 and decision.obligations is not None
            assert len(decision.matched_rules) == 1
        else:
            assert (decision.rho, decision.charges, decision.obligations) == (
                0.0,
                (),
                None,
            )
    assert allowed  # the generator reaches permitted requests too


def test_an_empty_policy_denies_everything() -> None:
    empty = policies.Policy.model_validate(
        {"policy": {**BASE["policy"]}, "datasets": BASE["datasets"]}
    )
    decision = policies.evaluate(empty, R0, digest="d", now=AT)
    assert not decision.allowed
    assert decision.reason.endswith("(default deny)")
    assert decision.matched_rules == ()


@pytest.mark.parametrize(
    ("now", "days", "start"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), 30, datetime(1970, 1, 1, tzinfo=UTC)),
        (
            datetime(1970, 1, 30, 23, 59, tzinfo=UTC),
            30,
            datetime(1970, 1, 1, tzinfo=UTC),
        ),
        (datetime(1970, 1, 31, tzinfo=UTC), 30, datetime(1970, 1, 31, tzinfo=UTC)),
        (datetime(2026, 6, 1, 12, tzinfo=UTC), 30, datetime(2026, 5, 7, tzinfo=UTC)),
        (
            datetime(2026, 6, 1, 1, tzinfo=timezone(timedelta(hours=2))),
            1,
            datetime(2026, 5, 31, tzinfo=UTC),
        ),
        (datetime(1969, 12, 31, tzinfo=UTC), 7, datetime(1969, 12, 25, tzinfo=UTC)),
    ],
)
def test_periods_are_counted_from_the_epoch(
    now: datetime, days: int, start: datetime
) -> None:
    assert policies.current_period(now, days) == (start, start + timedelta(days=days))


def test_privacy_conversions() -> None:
    # REFERENCES (c.3): rho 0.0556 is epsilon ~1.81 at delta 1e-6 (classic bound).
    assert policies.epsilon_at(0.0556, 1e-6) == pytest.approx(1.81, abs=0.005)
    for epsilon in (0.01, 0.5, 1.0, 3.0, 10.0):
        rho = policies.rho_for_epsilon(epsilon, 1e-6)
        assert policies.epsilon_at(rho, 1e-6) == pytest.approx(epsilon, rel=1e-12)
    assert policies.rho_of_pure_epsilon(1.0) == 0.5
    assert policies.epsilon_at(0.0, 1e-6) == 0.0


def test_demo_policies_keep_their_rules() -> None:
    uids = {
        agency: [
            r.uid for r in policies.parse_policy(_policy_text(agency, d)).permissions
        ]
        for agency, d in DEMO_POLICIES.items()
    }
    assert uids == {
        "agency-a": ["a-statistics"],
        "agency-b": ["b-statistics-only"],
        "agency-c": ["c-counts-and-means"],
    }
    a = policies.parse_policy(_policy_text("agency-a", DEMO_POLICIES["agency-a"]))
    b = policies.parse_policy(_policy_text("agency-b", DEMO_POLICIES["agency-b"]))
    assert [p.uid for p in a.prohibitions] == ["a-no-case-ids"]
    assert a.budgets[0].period_days == 30
    assert b.budgets[0].rho_lifetime is not None and b.budgets[0].period_days is None


def test_copies_forget_values_derived_from_the_old_fields() -> None:
    assert policies.evaluate(POLICY, R0, digest="d", now=AT).allowed  # caches filled
    narrowed = POLICY.permissions[0].model_copy(update={"purposes": ["research"]})
    assert narrowed.sets.purposes == {"research"}
    capped = POLICY.model_copy(
        update={"permissions": [narrowed, *POLICY.permissions[1:]]}
    )
    assert not policies.evaluate(capped, R0, digest="d", now=AT).allowed


def test_importing_policies_does_not_load_the_cli() -> None:
    import subprocess
    import sys

    code = "import sys, policies; assert 'typer' not in sys.modules, 'typer loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=30)
    assert policies.cli.info.name == "policy"


def test_exception_tree() -> None:
    import tomlconf

    for error in (policies.PolicyInvalid, policies.RequestInvalid):
        assert issubclass(error, policies.PolicyError)
        assert issubclass(error, tomlconf.ConfigError)
