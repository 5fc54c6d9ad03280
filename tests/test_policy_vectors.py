"""Request -> expected-decision vectors, kept as data in tests/vectors/policies/*.toml."""

from __future__ import annotations

import hashlib
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import policies

VECTORS = Path(__file__).resolve().parent / "vectors" / "policies"

_EXPECT_KEYS = {"allowed", "rules", "reason", "unmet", "rho", "charges", "obligations"}
_CHARGE_KEYS = {
    "budget",
    "account",
    "period_start",
    "period_end",
    "limit_rho",
    "cost_rho",
    "alert_threshold",
}


def vector_parametrize(folder: Path) -> pytest.MarkDecorator:
    """Parametrize over every case of every vector file in ``folder``.

    A vector file is a policy (all its tables but ``[[cases]]``) followed by cases;
    the policy is validated with the same loader as ``accord policy check``.
    """
    params = []
    for path in sorted(folder.glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
        cases = data.pop("cases")
        policy = policies.validate_policy(path, text, data)
        digest = hashlib.sha256(text.encode()).hexdigest()
        names = [case["name"] for case in cases]
        assert len(set(names)) == len(names), f"{path.name}: duplicate case names"
        for case in cases:
            assert set(case) == {"name", "at", "request", "expect"}, case["name"]
            assert set(case["expect"]) <= _EXPECT_KEYS, case["name"]
            params.append(
                pytest.param(policy, digest, case, id=f"{path.stem}: {case['name']}")
            )
    return pytest.mark.parametrize(("policy", "digest", "case"), params)


def _charge(charge: policies.BudgetCharge) -> dict[str, Any]:
    out: dict[str, Any] = {
        "budget": charge.budget_id,
        "account": charge.account,
        "limit_rho": charge.limit_rho,
        "cost_rho": pytest.approx(charge.cost_rho),
        "alert_threshold": charge.alert_threshold,
    }
    if charge.period_start is not None:
        out["period_start"] = charge.period_start
        out["period_end"] = charge.period_end
    return out


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


@vector_parametrize(VECTORS)
def test_vector(policy: policies.Policy, digest: str, case: dict[str, Any]) -> None:
    request = policies.request_from_data(case["request"])
    at: datetime = case["at"]
    decision = policies.evaluate(policy, request, digest=digest, now=at)
    expect = case["expect"]

    assert decision.allowed is expect["allowed"], decision.reason
    assert decision.matched_rules == tuple(expect.get("rules", ())), decision.reason
    assert decision.policy_uid == policy.policy.uid
    assert decision.policy_digest == digest
    if "reason" in expect:
        assert expect["reason"] in decision.reason
    if "unmet" in expect:
        assert decision.unmet == tuple(expect["unmet"]), decision.reason
    if "rho" in expect:
        assert decision.rho == pytest.approx(expect["rho"])
    if "charges" in expect:
        for charge in expect["charges"]:
            assert set(charge) <= _CHARGE_KEYS
        assert [_charge(c) for c in decision.charges] == expect["charges"]
    if "obligations" in expect:
        assert decision.obligations is not None
        for key, value in expect["obligations"].items():
            assert getattr(decision.obligations, key) == _tuples(value), key
    if decision.allowed:
        assert decision.rho > 0
        assert decision.obligations is not None
        assert decision.matched_rules
    else:
        assert decision.rho == 0.0
        assert decision.charges == ()
        assert decision.obligations is None
