"""Federated aggregate queries: exactness where allowed, DP coverage, secure totals."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import grpc
import pyarrow as pa
import pytest

import coordinator
from coordinator import Aggregation, Filter, QuerySpec
from coordinator._spec import Binning
from demo import provision
from demo._provision import DATASET, _declared_dataset
from tests.conftest import RunningFederation, decision_records, start_nodes

ROWS = {"agency-a": 1_200, "agency-b": 700, "agency-c": 500}


def open_policy(
    agency: str, *, exact: bool = True, min_group_size: int | None = None
) -> dict[str, Any]:
    """Every action for the hub, exact answers allowed, a large budget."""
    permission: dict[str, Any] = {
        "uid": f"{agency}-open",
        "assignees": ["role:coordinator"],
        "datasets": [DATASET],
        "actions": ["count", "sum", "mean", "variance", "histogram", "quantile"],
        "purposes": ["statistics"],
        "default_rho": 0.05,
        "max_rho": 1.0,
        "exact": exact,
    }
    if min_group_size is not None:
        permission["min_group_size"] = min_group_size
    return {
        "policy": {"privacy_unit": {"max_rows_per_person": 1}},
        "datasets": _declared_dataset("test incidents", never_release=["incident_id"]),
        "permissions": [permission],
        "budgets": [
            {"uid": f"{agency}-big", "assignees": ["*"], "rho_lifetime": 1000.0}
        ],
        "duties": {"notify": f"mailto:dpo@{agency}.example"},
    }


@pytest.fixture(scope="module")
def open_federation(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningFederation]:
    root = tmp_path_factory.mktemp("open-federation")
    agencies = list(ROWS)
    fed = provision(root, rows=ROWS, policies={a: open_policy(a) for a in agencies})
    servers = start_nodes(fed)
    try:
        path = fed.write_federation_file({a: s.address for a, s in servers.items()})
        yield RunningFederation(fed, servers, path)
    finally:
        for server in servers.values():
            server.stop(0)


def pooled(fed: RunningFederation, sql: str) -> list[tuple[Any, ...]]:
    table = pa.concat_tables(s.table for s in fed.fed.sites)
    con = duckdb.connect()
    con.register("pooled", table)
    return con.execute(sql).fetchall()


def values(
    result: coordinator.FederatedResult,
) -> dict[tuple[Any, ...], dict[str, float | None]]:
    return {g.key: {v.label: v.value for v in g.values} for g in result.groups}


def histogram_quantile(edges: list[float], counts: list[float], q: float) -> float:
    target, running = q * sum(counts), 0.0
    for i, n in enumerate(counts):
        if running + n >= target and n > 0:
            return edges[i] + (target - running) / n * (edges[i + 1] - edges[i])
        running += n
    return edges[-1]


EDGES = (0.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 1_000_000.0)


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "secure-aggregation"])
def test_every_aggregate_equals_the_pooled_data_when_exact(
    open_federation: RunningFederation, secure: bool
) -> None:
    spec = QuerySpec(
        dataset="incidents",
        aggregations=(
            Aggregation("count"),
            Aggregation("sum", "suspects"),
            Aggregation("mean", "severity"),
            Aggregation("variance", "severity"),
            Aggregation("stddev", "suspects"),
            Aggregation("mean", "damage_eur"),
            Aggregation("histogram", "damage_eur", bin_edges=EDGES),
            Aggregation(
                "quantile", "damage_eur", bin_edges=EDGES, quantiles=(0.5, 0.9)
            ),
        ),
        filters=(Filter("cross_border", "=", (True,)),),
        group_by=("region",),
        purpose="statistics",
        exact=True,
        secure_aggregation=secure,
    )
    with open_federation.coordinator() as hub:
        result = hub.query(spec)
    assert len(result.contributors) == 3
    assert result.secure_aggregation is secure
    got = values(result)
    rows = pooled(
        open_federation,
        "SELECT region, count(*), sum(suspects), avg(severity), var_pop(severity), "
        "stddev_pop(suspects), avg(damage_eur) FROM pooled WHERE cross_border GROUP BY region",
    )
    assert len(rows) == 5
    for region, n, total, mean_sev, var_sev, sd_sus, mean_dmg in rows:
        v = got[(region,)]
        assert v["count"] == n
        assert v["sum(suspects)"] == total
        assert v["mean(severity)"] == pytest.approx(mean_sev, rel=1e-12)
        assert v["variance(severity)"] == pytest.approx(var_sev, rel=1e-9)
        assert v["stddev(suspects)"] == pytest.approx(sd_sus, rel=1e-9)
        # fixed point: 8 fraction bits under secure aggregation, 20 otherwise
        assert v["mean(damage_eur)"] == pytest.approx(mean_dmg, abs=2**-9)
        counts = []
        for i in range(len(EDGES) - 1):
            lo, hi = EDGES[i], EDGES[i + 1]
            op = "<=" if i == len(EDGES) - 2 else "<"
            [(c,)] = pooled(
                open_federation,
                f"SELECT count(*) FROM pooled WHERE cross_border AND region = '{region}' "
                f"AND damage_eur >= {lo} AND damage_eur {op} {hi}",
            )
            counts.append(c)
        labels = spec.aggregations[6].output_labels()
        assert [v[label] for label in labels] == counts
        for q in (0.5, 0.9):
            assert v[f"q{q:g}(damage_eur)"] == pytest.approx(
                histogram_quantile(list(EDGES), counts, q), rel=1e-9
            )


def test_binned_group_by_equals_the_pooled_data(
    open_federation: RunningFederation,
) -> None:
    spec = QuerySpec(
        dataset="incidents",
        aggregations=(Aggregation("count"), Aggregation("mean", "severity")),
        group_by=("offence",),
        binned_group_by=(Binning("suspects", (0, 1, 3, 20)),),
        purpose="statistics",
        exact=True,
    )
    with open_federation.coordinator() as hub:
        result = hub.query(spec)
    got = values(result)
    assert len(got) == 6 * 3
    rows = pooled(
        open_federation,
        "SELECT offence, CASE WHEN suspects < 1 THEN '[0, 1)' WHEN suspects < 3 THEN '[1, 3)' "
        "ELSE '[3, 20]' END AS b, count(*), avg(severity) FROM pooled "
        "WHERE suspects BETWEEN 0 AND 20 GROUP BY 1, 2",
    )
    for offence, label, n, mean in rows:
        assert got[(offence, label)]["count"] == n
        assert got[(offence, label)]["mean(severity)"] == pytest.approx(mean, rel=1e-12)


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "secure-aggregation"])
def test_dp_intervals_cover_the_truth_about_95_percent(
    open_federation: RunningFederation, secure: bool
) -> None:
    """Many noisy runs: each cell's 95% interval holds the true value ~95% of the time."""
    truth = {
        (region,): (n, total)
        for region, n, total in pooled(
            open_federation,
            "SELECT region, count(*), sum(suspects) FROM pooled GROUP BY region",
        )
    }
    spec = QuerySpec(
        dataset="incidents",
        aggregations=(Aggregation("count"), Aggregation("sum", "suspects")),
        group_by=("region",),
        purpose="statistics",
        rho=0.02,
        secure_aggregation=secure,
    )
    runs = 40 if secure else 80
    hits = trials = 0
    with open_federation.coordinator() as hub:
        for _ in range(runs):
            result = hub.query(spec)
            for group in result.groups:
                for value, true in zip(group.values, truth[group.key], strict=True):
                    assert (
                        not value.exact
                        and value.low is not None
                        and value.high is not None
                    )
                    hits += value.low <= true <= value.high
                    trials += 1
    rate = hits / trials
    # trials >= 400: a binomial(0.95) rate lies in [0.915, 0.985] with prob > 1 - 1e-5.
    assert 0.915 <= rate <= 0.985, rate


def test_noise_scale_is_reported_and_matches_the_requested_rho(
    open_federation: RunningFederation,
) -> None:
    spec = QuerySpec(
        dataset="incidents",
        aggregations=(Aggregation("count"),),
        purpose="statistics",
        rho=0.02,
    )
    with open_federation.coordinator() as hub:
        result = hub.query(spec)
    for outcome in result.outcomes:
        assert outcome.response is not None
        [stat] = outcome.response.statistics
        assert stat.mechanism == "discrete_gaussian"
        # count sensitivity 1: sigma = 1 / sqrt(2 rho) = 5
        assert stat.noise_scale == pytest.approx(5.0, rel=1e-6)
        assert outcome.response.privacy.rho_charged == pytest.approx(0.02)


def test_dry_run_touches_nothing_and_spends_nothing(
    open_federation: RunningFederation,
) -> None:
    spec = QuerySpec(
        dataset="incidents",
        aggregations=(Aggregation("count"), Aggregation("mean", "damage_eur")),
        group_by=("region",),
        purpose="statistics",
        epsilon=0.5,
        dry_run=True,
    )
    with open_federation.coordinator() as hub:
        before = {o.agency: o.response for o in hub.budgets() if o.response}
        result = hub.query(spec)
        after = {o.agency: o.response for o in hub.budgets() if o.response}
    for outcome in result.outcomes:
        assert outcome.response is not None
        plan = outcome.response.plan
        assert plan.allowed
        assert plan.rho == pytest.approx(0.5**2 / 2)
        names = [s.name for s in plan.statistics]
        assert "count" in names and "sum(damage_eur)" in names
        assert all(
            s.mechanism == "discrete_laplace" and s.noise_scale > 0
            for s in plan.statistics
        )
        assert not outcome.response.statistics
    for agency, budgets in before.items():
        assert [b.rho_spent for b in budgets.budgets] == [
            b.rho_spent for b in after[agency].budgets
        ]


def test_suppression_after_noise(tmp_path: Path) -> None:
    agencies = ["agency-a"]
    fed = provision(
        tmp_path,
        agencies=agencies,
        rows={"agency-a": 300},
        policies={"agency-a": open_policy("agency-a", min_group_size=80)},
    )
    servers = start_nodes(fed)
    try:
        path = fed.write_federation_file({a: s.address for a, s in servers.items()})
        spec = QuerySpec(
            dataset="incidents",
            aggregations=(Aggregation("count"),),
            group_by=("offence",),
            purpose="statistics",
            exact=True,
        )
        with coordinator.Coordinator.from_config(
            coordinator.load_federation(path)
        ) as hub:
            result = hub.query(spec)
    finally:
        for server in servers.values():
            server.stop(0)
    offences = fed.sites[0].table.column("offence").to_pylist()
    for group in result.groups:
        true = offences.count(group.key[0])
        if true < 80:
            assert group.suppressed_at == ("agency-a/node",)
            assert group.values[0].value == 0
        else:
            assert group.values[0].value == true


@pytest.mark.parametrize(
    ("spec_kwargs", "code", "needle"),
    [
        ({"epsilon": 50.0}, grpc.StatusCode.PERMISSION_DENIED, "open"),
        ({"rho": 5.0}, grpc.StatusCode.PERMISSION_DENIED, "open"),
        (
            {
                "aggregations": (
                    Aggregation("histogram", "damage_eur", bin_edges=tuple(range(300))),
                )
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "bin_edges",
        ),
        (
            {
                "aggregations": (
                    Aggregation("histogram", "damage_eur", bin_edges=(5.0, 1.0)),
                )
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "increasing",
        ),
        (
            {"aggregations": (Aggregation("mean", "incident_id"),)},
            grpc.StatusCode.INVALID_ARGUMENT,
            "incident_id",
        ),
    ],
)
def test_bad_privacy_requests_are_refused_and_spend_nothing(
    open_federation: RunningFederation,
    spec_kwargs: dict[str, Any],
    code: grpc.StatusCode,
    needle: str,
) -> None:
    base: dict[str, Any] = {
        "dataset": "incidents",
        "aggregations": (Aggregation("count"),),
        "purpose": "statistics",
    }
    spec = QuerySpec(**{**base, **spec_kwargs})
    with open_federation.coordinator() as hub:
        before = [o.response.budgets[0].rho_spent for o in hub.budgets() if o.response]
        result = hub.query(spec)
        after = [o.response.budgets[0].rho_spent for o in hub.budgets() if o.response]
    assert before == after
    assert not result.contributors
    for outcome in result.outcomes:
        assert outcome.code == code.name, outcome
        assert needle in outcome.message


def test_secure_aggregation_hides_each_nodes_values(
    open_federation: RunningFederation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the coordinator receives: masked openings, no per-node statistic values."""
    captured: list[Any] = []
    real = coordinator.GrpcNodeLink.run_query

    def spy(self: coordinator.GrpcNodeLink, request: Any, timeout: float) -> Any:
        response = real(self, request, timeout)
        captured.append(response)
        return response

    monkeypatch.setattr(coordinator.GrpcNodeLink, "run_query", spy)
    spec = QuerySpec(
        dataset="incidents",
        aggregations=(Aggregation("count"), Aggregation("sum", "suspects")),
        group_by=("region",),
        purpose="statistics",
        exact=True,
        secure_aggregation=True,
    )
    with open_federation.coordinator() as hub:
        result = hub.query(spec)
    assert len(captured) == 3
    for response in captured:
        assert response.HasField("secure_aggregation")
        assert all(len(s.values) == 0 for s in response.statistics)
    [(n,)] = pooled(open_federation, "SELECT count(*) FROM pooled")
    assert sum(g.values[0].value for g in result.groups) == n
    assert math.isfinite(result.groups[0].values[1].value or math.nan)


def test_the_example_spec_file_runs(open_federation: RunningFederation) -> None:
    from coordinator._specfile import load_spec

    spec = load_spec(Path(__file__).resolve().parent.parent / "examples" / "query.yaml")
    assert spec.secure_aggregation and spec.rho == 0.05
    with open_federation.coordinator() as hub:
        result = hub.query(spec)
    assert len(result.contributors) == 3
    assert len(result.groups) == 5 * 3
    labels = [v.label for v in result.groups[0].values]
    assert labels[:3] == ["count", "mean(severity)", "stddev(suspects)"]
    assert "q0.9(damage_eur)" in labels


def test_spec_file_errors_name_line_and_field(tmp_path: Path) -> None:
    from coordinator import SpecError
    from coordinator._specfile import load_spec

    path = tmp_path / "bad.yaml"
    path.write_text(
        "dataset: incidents\naggregates:\n  - count\n  - {function: mode, column: x}\n"
        "filters:\n  - {column: region, op: in, value: north}\n"
    )
    with pytest.raises(SpecError) as info:
        load_spec(path)
    text = str(info.value)
    assert f"{path}:4: aggregates[1]" in text
    assert f"{path}:6: filters[0]" in text


def test_secure_sums_of_wide_float_columns_fit_the_encoding(
    open_federation: RunningFederation,
) -> None:
    """Float sums under secure aggregation use fewer fraction bits, never overflow."""
    spec = QuerySpec(
        dataset="incidents",
        aggregations=(
            Aggregation("sum", "damage_eur"),
            Aggregation("mean", "damage_eur"),
        ),
        purpose="statistics",
        exact=True,
        secure_aggregation=True,
    )
    with open_federation.coordinator() as hub:
        result = hub.query(spec)
    [(total, mean)] = pooled(
        open_federation, "SELECT sum(damage_eur), avg(damage_eur) FROM pooled"
    )
    [group] = result.groups
    # 8 fraction bits: each value within 2^-9 of its encoding.
    assert group.values[0].value == pytest.approx(total, abs=sum(ROWS.values()) * 2**-9)
    assert group.values[1].value == pytest.approx(mean, abs=2**-9)


def test_a_failing_ledger_refuses_with_unavailable_and_logs_an_error(
    tmp_path: Path,
) -> None:
    """The ledger's table gone: UNAVAILABLE, an "error" record, nothing spent."""
    import contextlib
    import sqlite3

    import sqlalchemy as sa

    import node

    fed = provision(
        tmp_path,
        agencies=["agency-a"],
        rows={"agency-a": 200},
        policies={"agency-a": open_policy("agency-a", exact=False)},
    )
    config = node.load_node_config(fed.sites[0].node_config)
    database = sa.engine.make_url(config.node.state_url).database
    assert database is not None
    servers = start_nodes(fed)
    spec = QuerySpec(
        dataset="incidents",
        aggregations=(Aggregation("count"),),
        purpose="statistics",
        rho=0.01,
    )
    try:
        path = fed.write_federation_file({a: s.address for a, s in servers.items()})
        with coordinator.Coordinator.from_config(
            coordinator.load_federation(path)
        ) as hub:
            assert hub.query(spec).contributors  # the ledger works
            with contextlib.closing(sqlite3.connect(database)) as con:
                spent_before = con.execute(
                    "SELECT sum(spent_nrho) FROM budget_spend"
                ).fetchone()
                con.execute("ALTER TABLE budget_spend RENAME TO budget_spend_away")
                con.commit()
            broken = hub.query(spec)
            with contextlib.closing(sqlite3.connect(database)) as con:
                con.execute("ALTER TABLE budget_spend_away RENAME TO budget_spend")
                con.commit()
                spent_after = con.execute(
                    "SELECT sum(spent_nrho) FROM budget_spend"
                ).fetchone()
            again = hub.query(spec)  # the node recovers with the table back
    finally:
        for server in servers.values():
            server.stop(0)
    assert not broken.contributors
    [outcome] = broken.outcomes
    assert outcome.code == grpc.StatusCode.UNAVAILABLE.name
    assert "privacy budget" in outcome.message
    assert "budget_spend" not in outcome.message  # no storage detail leaves
    assert spent_after == spent_before
    assert again.contributors
    records = decision_records(config.node.state_url)
    queries = [r for r in records if r.method == "RunQuery"]
    assert [r.decision for r in queries] == ["allow", "error", "allow"]
    assert queries[1].reason == (
        "the budget ledger is unavailable; the request was not answered"
    )
    assert queries[1].privacy_charged == 0
