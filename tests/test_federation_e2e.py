"""End to end: three nodes over mutual TLS, queried by the coordinator."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import duckdb
import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import coordinator
import pki
from accord.v1 import node_service_pb2 as pb
from accord.v1 import node_service_pb2_grpc as pb_grpc
from accord.v1 import types_pb2
from coordinator import Aggregation, Filter, QuerySpec
from tests.conftest import RunningFederation

ALL = ("agency-a", "agency-b", "agency-c")


def pooled(
    fed: RunningFederation, agencies: tuple[str, ...], sql: str
) -> list[tuple[Any, ...]]:
    """Run ``sql`` over the named agencies' raw rows, pooled in one DuckDB table."""
    import pyarrow as pa

    table = pa.concat_tables(s.table for s in fed.fed.sites if s.agency in agencies)
    con = duckdb.connect()
    con.register("pooled", table)
    return con.execute(sql).fetchall()


def by_key(
    result: coordinator.FederatedResult,
) -> dict[tuple[Any, ...], list[float | None]]:
    return {g.key: [v.value for v in g.values] for g in result.groups}


def test_counts_and_means_by_region_equal_the_pooled_data(
    federation: RunningFederation,
) -> None:
    spec = QuerySpec(
        dataset="incidents",
        aggregations=(
            Aggregation("count"),
            Aggregation("mean", "severity"),
            Aggregation("mean", "damage_eur"),
        ),
        group_by=("region",),
        purpose="statistics",
        exact=True,
    )
    with federation.coordinator() as hub:
        result = hub.query(spec)
    assert result.contributors == ("agency-a/node", "agency-b/node", "agency-c/node")
    expected = pooled(
        federation,
        ALL,
        "SELECT region, count(*), avg(severity), avg(damage_eur) FROM pooled GROUP BY region",
    )
    got = by_key(result)
    assert len(got) == 5
    for region, count, mean_sev, mean_dmg in expected:
        values = got[(region,)]
        assert values[0] == count
        assert values[1] == pytest.approx(mean_sev, rel=1e-9)
        assert values[2] == pytest.approx(mean_dmg, rel=1e-9)
    digests = result.policy_digests
    assert set(digests) == set(result.contributors)
    assert all(len(d) == 64 for d in digests.values())


@pytest.mark.parametrize(
    ("filters", "group_by", "where", "group_sql"),
    [
        ((), (), "TRUE", None),
        ((Filter("severity", ">=", (3,)),), ("offence",), "severity >= 3", "offence"),
        (
            (Filter("region", "in", ("north", "east")),),
            ("offence",),
            "region IN ('north','east')",
            "offence",
        ),
        (
            (Filter("suspects", "between", (1, 3)),),
            ("region",),
            "suspects BETWEEN 1 AND 3",
            "region",
        ),
        (
            (Filter("cross_border", "=", (True,)),),
            ("region",),
            "cross_border",
            "region",
        ),
        (
            (Filter("region", "!=", ("north",)), Filter("damage_eur", "<", (5000.0,))),
            ("cross_border",),
            "region <> 'north' AND damage_eur < 5000",
            "cross_border",
        ),
        (
            (Filter("severity", "=", (5,)), Filter("suspects", "<=", (2,))),
            (),
            "severity = 5 AND suspects <= 2",
            None,
        ),
    ],
)
def test_filtered_queries_equal_the_pooled_data(
    federation: RunningFederation,
    filters: tuple[Filter, ...],
    group_by: tuple[str, ...],
    where: str,
    group_sql: str | None,
) -> None:
    spec = QuerySpec(
        dataset="incidents",
        aggregations=(
            Aggregation("count"),
            Aggregation("mean", "suspects"),
            Aggregation("count", "damage_eur"),
        ),
        filters=filters,
        group_by=group_by,
        purpose="statistics",
        exact=True,
    )
    with federation.coordinator() as hub:
        result = hub.query(spec)
    assert len(result.contributors) == 3
    select = f"{group_sql}, " if group_sql else ""
    sql = f"SELECT {select}count(*), avg(suspects), count(damage_eur) FROM pooled WHERE {where}"
    if group_sql:
        sql += f" GROUP BY {group_sql}"
    got = by_key(result)
    for row in pooled(federation, ALL, sql):
        key, values = (row[:1], row[1:]) if group_sql else ((), row)
        assert got[key][0] == values[0]
        assert got[key][1] == pytest.approx(values[1], rel=1e-9)
        assert got[key][2] == values[2]
    # Groups come from the declared domain: absent keys are reported with zero rows.
    if group_sql == "region":
        assert len(got) == 5


def test_a_refusing_node_is_left_out_and_named(federation: RunningFederation) -> None:
    spec = QuerySpec(
        dataset="incidents",
        aggregations=(Aggregation("sum", "damage_eur"), Aggregation("count")),
        group_by=("offence",),
        purpose="statistics",
        exact=True,
    )
    with federation.coordinator() as hub:
        result = hub.query(spec)
    # agency-c's policy permits count and mean only.
    assert result.contributors == ("agency-a/node", "agency-b/node")
    refused = [o for o in result.outcomes if o.status == "refused"]
    assert [o.agency for o in refused] == ["agency-c"]
    assert refused[0].reason == "POLICY_DENIED"
    assert refused[0].metadata["policy"] == "urn:accord:agency-c:policy:1"
    assert "c-counts-and-means" in refused[0].message
    expected = pooled(
        federation,
        ("agency-a", "agency-b"),
        "SELECT offence, sum(damage_eur), count(*) FROM pooled GROUP BY offence",
    )
    got = by_key(result)
    for offence, total, count in expected:
        assert got[(offence,)][0] == pytest.approx(total, rel=1e-9)
        assert got[(offence,)][1] == count


def test_a_purpose_outside_a_policy_is_refused_with_the_declared_rule(
    federation: RunningFederation,
) -> None:
    spec = QuerySpec(
        dataset="incidents",
        aggregations=(Aggregation("count"),),
        purpose="policy-evaluation",
    )
    with federation.coordinator() as hub:
        result = hub.query(spec)
    statuses = {o.agency: o.status for o in result.outcomes}
    assert statuses == {"agency-a": "ok", "agency-b": "refused", "agency-c": "ok"}
    b = next(o for o in result.outcomes if o.agency == "agency-b")
    assert b.metadata["rule"] == "default-deny" or "b-statistics-only" in b.message
    assert "purpose" in b.message
    site_b = next(s for s in federation.fed.sites if s.agency == "agency-b")
    assert (
        b.metadata["revision"]
        == federation.servers["agency-b"].servicer.policy_digest()
    )
    assert site_b.policy.exists()


# --- direct calls: errors name the field -----------------------------------------


def open_stub(
    federation: RunningFederation, agency: str
) -> tuple[grpc.Channel, pb_grpc.NodeServiceStub]:
    material = federation.fed.coordinator_tls.read()
    channel = grpc.secure_channel(
        federation.address(agency), pki.channel_credentials(material)
    )
    return channel, pb_grpc.NodeServiceStub(channel)


@pytest.fixture
def stub(federation: RunningFederation) -> Iterator[pb_grpc.NodeServiceStub]:
    channel, stub = open_stub(federation, "agency-a")
    yield stub
    channel.close()


def rich_error(
    call: grpc.RpcError,
) -> tuple[grpc.StatusCode, str, list[str], dict[str, str]]:
    assert isinstance(call, grpc.Call)
    status = rpc_status.from_call(call)
    assert status is not None
    reason, fields, metadata = "", [], {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.domain == "accord"
            reason, metadata = info.reason, dict(info.metadata)
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return call.code(), reason, fields, metadata


def request(**kwargs: Any) -> pb.RunQueryRequest:
    base = pb.RunQueryRequest(
        query_id="q1",
        dataset_id="incidents",
        access=types_pb2.AccessContext(purpose="statistics"),
    )
    base.aggregations.add(function=pb.AGGREGATE_FUNCTION_COUNT)
    for key, value in kwargs.items():
        if key == "aggregations":
            del base.aggregations[:]
            base.aggregations.extend(value)
        elif key == "filters":
            base.filters.extend(value)
        elif key == "group_by":
            base.group_by.extend(value)
        else:
            setattr(base, key, value)
    return base


@pytest.mark.parametrize(
    ("req", "reason", "field"),
    [
        (request(dataset_id="arrests"), "UNKNOWN_DATASET", "dataset_id"),
        (
            request(
                aggregations=[
                    pb.Aggregation(function=pb.AGGREGATE_FUNCTION_MEAN, column="age")
                ]
            ),
            "UNKNOWN_COLUMN",
            "aggregations[0].column",
        ),
        (
            request(
                aggregations=[
                    pb.Aggregation(function=pb.AGGREGATE_FUNCTION_SUM, column="region")
                ]
            ),
            "TYPE_MISMATCH",
            "aggregations[0].column",
        ),
        (
            request(aggregations=[pb.Aggregation(column="severity")]),
            "INVALID_QUERY",
            "aggregations[0].function",
        ),
        (request(aggregations=[]), "INVALID_QUERY", "aggregations"),
        (
            request(
                filters=[
                    pb.Filter(
                        column="severity",
                        operator=pb.FILTER_OPERATOR_EQUAL,
                        value=types_pb2.Value(string_value="high"),
                    )
                ]
            ),
            "TYPE_MISMATCH",
            "filters[0].value",
        ),
        (
            request(
                filters=[
                    pb.Filter(
                        column="region",
                        operator=pb.FILTER_OPERATOR_EQUAL,
                        value=types_pb2.Value(string_value="atlantis"),
                    )
                ]
            ),
            "TYPE_MISMATCH",
            "filters[0].value",
        ),
        (
            request(
                filters=[
                    pb.Filter(
                        column="region",
                        operator=pb.FILTER_OPERATOR_LESS,
                        value=types_pb2.Value(string_value="north"),
                    )
                ]
            ),
            "TYPE_MISMATCH",
            "filters[0].operator",
        ),
        (
            request(
                filters=[
                    pb.Filter(column="severity", operator=pb.FILTER_OPERATOR_EQUAL)
                ]
            ),
            "INVALID_QUERY",
            "filters[0].value",
        ),
        (
            request(
                filters=[
                    pb.Filter(
                        column="severity",
                        operator=pb.FILTER_OPERATOR_BETWEEN,
                        values=[
                            types_pb2.Value(int_value=4),
                            types_pb2.Value(int_value=1),
                        ],
                    )
                ]
            ),
            "INVALID_QUERY",
            "filters[0].values",
        ),
        (
            request(
                filters=[
                    pb.Filter(
                        column="region; DROP TABLE incidents",
                        operator=pb.FILTER_OPERATOR_EQUAL,
                        value=types_pb2.Value(string_value="north"),
                    )
                ]
            ),
            "UNKNOWN_COLUMN",
            "filters[0].column",
        ),
        (request(group_by=["severity"]), "TYPE_MISMATCH", "group_by[0]"),
        (
            request(group_by=["region", "offence", "month", "cross_border"]),
            "INVALID_QUERY",
            "group_by",
        ),
        (request(group_by=['region" OR 1=1 --']), "UNKNOWN_COLUMN", "group_by[0]"),
    ],
)
def test_bad_queries_get_invalid_argument_naming_the_field(
    stub: pb_grpc.NodeServiceStub, req: pb.RunQueryRequest, reason: str, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.RunQuery(req, timeout=5)
    code, got_reason, fields, metadata = rich_error(info.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert got_reason == reason
    assert fields == [field]
    assert metadata["field"] == field


def test_string_values_with_sql_are_bound_not_executed(
    federation: RunningFederation,
) -> None:
    # agency-b permits filters on its free-text case reference; the value is bound.
    channel, stub = open_stub(federation, "agency-b")
    req = request(
        filters=[
            pb.Filter(
                column="incident_id",
                operator=pb.FILTER_OPERATOR_EQUAL,
                value=types_pb2.Value(string_value="x' OR '1'='1"),
            )
        ]
    )
    req.privacy.exact = True
    try:
        response = stub.RunQuery(req, timeout=5)
    finally:
        channel.close()
    [count] = [s for s in response.statistics if s.name == "count"]
    assert list(count.values) == [0]
    assert count.mechanism == "none"


def test_policy_denial_is_permission_denied_with_the_rule(
    stub: pb_grpc.NodeServiceStub, federation: RunningFederation
) -> None:
    # agency-a prohibits any use of incident_id.
    req = request(
        aggregations=[
            pb.Aggregation(function=pb.AGGREGATE_FUNCTION_COUNT, column="incident_id")
        ]
    )
    with pytest.raises(grpc.RpcError) as info:
        stub.RunQuery(req, timeout=5)
    code, reason, _, metadata = rich_error(info.value)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert reason == "POLICY_DENIED"
    assert metadata["rule"] == "a-no-case-ids"
    assert (
        metadata["revision"] == federation.servers["agency-a"].servicer.policy_digest()
    )


def test_identity_comes_from_the_certificate(
    stub: pb_grpc.NodeServiceStub, federation: RunningFederation
) -> None:
    info = stub.GetNodeInfo(pb.GetNodeInfoRequest(), timeout=5)
    assert info.caller_identity == "spiffe://demo/agency/hub/coordinator/analyst"
    assert info.identity == "spiffe://demo/agency/agency-a/node/node"
    assert info.agency == "agency-a"
    assert [d.dataset_id for d in info.datasets] == ["incidents"]
    columns = {c.name: c for c in info.datasets[0].columns}
    assert list(columns["region"].categories) == [
        "north",
        "south",
        "east",
        "west",
        "central",
    ]
    assert columns["severity"].lower_bound == 1 and columns["severity"].upper_bound == 5
    assert columns["severity"].type == types_pb2.COLUMN_TYPE_INTEGER


def test_an_officer_certificate_is_not_a_coordinator(
    federation: RunningFederation, tmp_path: Any
) -> None:
    officer = pki.issue(
        federation.fed.ca_dir,
        pki.Identity("demo", "agency-b", "officer", "dpo"),
        tmp_path,
    )
    channel = grpc.secure_channel(
        federation.address("agency-a"),
        pki.channel_credentials(officer.tls_files().read()),
    )
    stub = pb_grpc.NodeServiceStub(channel)
    try:
        with pytest.raises(grpc.RpcError) as info:
            stub.RunQuery(request(), timeout=5)
        code, reason, _, _ = rich_error(info.value)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert reason == "POLICY_DENIED"
    finally:
        channel.close()


# --- failures never hang a query ----------------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung node)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_and_hung_nodes_are_reported_while_the_others_answer(
    federation: RunningFederation, silent_port: int
) -> None:
    addresses = {s.agency: federation.address(s.agency) for s in federation.fed.sites}
    addresses["agency-x"] = f"127.0.0.1:{free_port()}"
    addresses["agency-y"] = f"127.0.0.1:{silent_port}"
    path = federation.fed.write_federation_file(
        addresses,
        path=federation.federation_file.with_name("broken.toml"),
        deadline=1.0,
    )
    config = coordinator.load_federation(path)
    spec = QuerySpec(
        dataset="incidents",
        aggregations=(Aggregation("count"),),
        purpose="statistics",
        exact=True,
    )
    start = time.perf_counter()
    with coordinator.Coordinator.from_config(config) as hub:
        result = hub.query(spec)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0
    statuses = {o.agency: o.status for o in result.outcomes}
    assert statuses == {
        "agency-a": "ok",
        "agency-b": "ok",
        "agency-c": "ok",
        "agency-x": "unreachable",
        "agency-y": "unreachable",
    }
    x = next(o for o in result.outcomes if o.agency == "agency-x")
    y = next(o for o in result.outcomes if o.agency == "agency-y")
    assert "refused" in x.message or "unavailable" in x.message
    assert "deadline" in y.message
    assert result.contributors == ("agency-a/node", "agency-b/node", "agency-c/node")
    total = sum(s.rows for s in federation.fed.sites)
    assert result.groups[0].values[0].value == total


def test_published_schemas_are_reused_between_queries(
    federation: RunningFederation, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = coordinator.GrpcNodeLink.get_info

    def counting(self: coordinator.GrpcNodeLink, timeout: float) -> Any:
        calls.append(self.node.agency)
        return real(self, timeout)

    monkeypatch.setattr(coordinator.GrpcNodeLink, "get_info", counting)
    spec = QuerySpec(
        "incidents", (Aggregation("count"),), purpose="statistics", exact=True
    )
    clock = [0.0]
    with federation.coordinator() as hub:
        hub._clock = lambda: clock[0]
        hub.query(spec)
        hub.query(spec)
        assert sorted(calls) == ["agency-a", "agency-b", "agency-c"]
        clock[0] += hub.SCHEMA_TTL + 1
        hub.query(spec)
    assert len(calls) == 6


def test_node_calls_reuse_one_pool_of_threads() -> None:
    """Fan-outs run on the process's shared pool; repeated ones start no threads."""
    from dataclasses import dataclass

    from coordinator._fanout import fan_out
    from coordinator._link import NodeAddress

    @dataclass
    class Link:  # what fan_out reads of a link: where the node is
        node: NodeAddress

    links = [
        Link(NodeAddress(f"agency-{i}", "node", f"127.0.0.1:{9000 + i}", None, "f"))
        for i in range(4)
    ]

    def pool_threads() -> int:
        return sum(t.name.startswith("accord-node-call") for t in threading.enumerate())

    names: list[set[str]] = []
    counts: list[int] = []
    for _ in range(6):
        seen: set[str] = set()

        def call(link: Any, deadline: float, seen: set[str] = seen) -> str:
            time.sleep(0.01)  # all four in flight at once
            seen.add(threading.current_thread().name)
            return str(link.node.agency)

        outcomes = fan_out(links, call, deadline=1.0)  # type: ignore[arg-type]
        assert [o.response for o in outcomes] == [f"agency-{i}" for i in range(4)]
        names.append(seen)
        counts.append(pool_threads())
    assert all(n.startswith("accord-node-call") for seen in names for n in seen)
    # Idle threads are reused: the pool does not grow by four threads a fan-out.
    assert counts[-1] - counts[0] <= 2
