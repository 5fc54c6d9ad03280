"""Policy decisions per second: a 50-rule policy against a one-rule policy.

Run: ``/work/venv/bin/python bench/bench_policy.py [--decisions N]``. The 50-rule
policy has 25 permissions, 15 prohibitions and 10 budgets; requests cycle through an
allowed one matching the last permission (every prohibition and permission is read),
one refused by a prohibition, one no permission matches (every permission is checked
for the nearest), and one allowed by the first permission. Both policies run in the same process; the table shows the median of
five runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

import policies

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
COLUMNS = {
    "region": {"type": "category", "categories": ["north", "south", "east", "west"]},
    "offence": {"type": "category", "categories": ["fraud", "theft", "assault"]},
    "severity": {"type": "integer", "bounds": [1, 5]},
    "damage_eur": {"type": "float", "bounds": [0, 1_000_000]},
    "cross_border": {"type": "boolean"},
    "note": {"type": "string"},
}
HEADER = {
    "uid": "urn:accord:bench:1",
    "agency": "agency-a",
    "valid_from": datetime(2026, 1, 1, tzinfo=UTC),
    "privacy_unit": {"max_rows_per_person": 1},
}


def fifty_rules() -> policies.Policy:
    """25 permissions, 15 prohibitions, 10 budgets."""
    permissions = [
        {
            "uid": f"p-{i}",
            "assignees": ["role:coordinator", f"agency-{i}"],
            "purposes": ["statistics"] if i == 24 else [f"purpose-{i}"],
            "legal_bases": ["law-1", f"law-{i}"],
            "actions": ["count", "sum", "mean"],
            "datasets": ["incidents"],
            "columns": ["region", "offence", "severity", "damage_eur", "cross_border"],
            "group_by": ["region", "offence", "cross_border"],
            "min_group_size": 10,
            "max_epsilon": 1.0,
            "default_rho": 0.01,
            "require_justification": i % 2 == 0,
        }
        for i in range(25)
    ]
    prohibitions = [
        {
            "uid": f"x-{i}",
            "assignees": ["*"] if i == 14 else [f"agency-{i + 100}"],
            "columns": ["note"],
            "purposes": ["statistics", "investigation"],
        }
        for i in range(15)
    ]
    budgets = [
        {
            "uid": f"b-{i}",
            "assignees": ["*"] if i < 3 else [f"agency-{i + 100}"],
            "per_purpose": i % 2 == 1,
            "rho_per_period": 1.0,
            "period_days": 30,
            "rho_lifetime": 10.0,
        }
        for i in range(10)
    ]
    return policies.Policy.model_validate(
        {
            "policy": HEADER,
            "datasets": {"incidents": {"never_release": ["name"], "columns": COLUMNS}},
            "permissions": permissions,
            "prohibitions": prohibitions,
            "budgets": budgets,
            "duties": {"notify": "mailto:dpo@agency-a.example"},
        }
    )


def one_rule() -> policies.Policy:
    """A single permission, nothing else."""
    return policies.Policy.model_validate(
        {
            "policy": HEADER,
            "datasets": {"incidents": {"columns": COLUMNS}},
            "permissions": [
                {
                    "uid": "p-only",
                    "assignees": ["role:coordinator"],
                    "purposes": ["statistics"],
                    "actions": ["count", "sum", "mean"],
                    "datasets": ["incidents"],
                    "default_rho": 0.01,
                }
            ],
        }
    )


HUB = policies.Requester(
    "spiffe://demo/agency/hub/coordinator/analyst", "hub", "coordinator"
)
BASE = policies.AccessRequest(
    requester=HUB,
    dataset="incidents",
    actions=frozenset({"count", "mean"}),
    columns=frozenset({"severity"}),
    value_columns=frozenset({"severity"}),
    group_by=("region",),
    purpose="statistics",
    legal_basis="law-1",
    justification="quarterly statistics",
)


def requests() -> list[policies.AccessRequest]:
    """Allowed late, prohibited, unmatched, allowed early."""
    from dataclasses import replace

    return [
        BASE,
        replace(BASE, columns=frozenset({"note"})),
        replace(BASE, purpose="investigation"),
        replace(BASE, purpose="purpose-0"),
    ]


def measure(policy: policies.Policy, batch: list[Any], decisions: int) -> float:
    """Return decisions per second (median of five runs)."""
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        for i in range(decisions):
            policies.evaluate(policy, batch[i % len(batch)], digest="0" * 64, now=NOW)
        rates.append(decisions / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    """Print the benchmark table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    args = parser.parse_args()
    big, small = fifty_rules(), one_rule()
    rules = len(big.permissions) + len(big.prohibitions) + len(big.budgets)
    batch = requests()
    outcomes = [policies.evaluate(big, r, digest="", now=NOW).allowed for r in batch]
    assert outcomes == [True, False, False, True], outcomes
    trivial = measure(small, [BASE], args.decisions)
    fifty = measure(big, batch, args.decisions)
    table = Table(title="policy decisions (pure evaluator, one thread)")
    for column in (
        "policy",
        "rules",
        "decisions/s",
        "µs per decision",
        "x one-rule time",
    ):
        table.add_column(column, justify="right" if column != "policy" else "left")
    table.add_row(
        "one permission", "1", f"{trivial:,.0f}", f"{1e6 / trivial:.1f}", "1.0"
    )
    table.add_row(
        "mixed",
        str(rules),
        f"{fifty:,.0f}",
        f"{1e6 / fifty:.1f}",
        f"{trivial / fifty:.1f}",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
