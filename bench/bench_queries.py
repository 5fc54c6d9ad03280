"""Federated aggregate queries end to end, against DuckDB over the pooled data.

Provisions ``--nodes`` agencies (default 5) with ``--rows`` generated incidents each
(default 1,000,000) in Parquet, starts every node as a separate process (mutual TLS,
policy gate, durable decision log and budget ledger on; each node loads its Parquet
file into its DuckDB working copy at start-up and answers from it), then measures:

1. A group-by region with count, mean(damage_eur) and a histogram of damage_eur over
   public edges, differentially private (rho per query, no exact answers), through
   ``Coordinator.query`` with secure aggregation off and on, against three
   centralized baselines run by DuckDB in this process: (A) the same query over all
   the Parquet files, read in place at every query; (B) the same query over a DuckDB
   table of the pooled rows, loaded once before timing into a DuckDB database file
   in the benchmark's folder, categories kept as text; (C) the same table stored
   exactly as the nodes' working copies are (declared categories as ENUMs, rows
   sorted by the working copies' cluster order) -- the storage the nodes answer
   from, so the fairest reference. The five run
   round-robin, ``--repeat`` times after a warm-up, so load from elsewhere on the
   machine hits them alike; medians, minimums and CPU time of all processes are
   reported, with the ratios of the federated runs to each baseline.
   Goals (issue 4): federated (secure aggregation off) <= 1.5x centralized, judged
   against each baseline; secure aggregation adds at most 30%. Should the secure
   query fail, the failure is reported and the same shape with mean(severity) is
   measured instead.
2. Small DP queries (a count with one filter) per second at one node over mutual
   TLS, from 1, 4 and 16 client threads, each reusing its own channel: queries/s,
   p50/p99 latency, CPU per query of the node and of the client. Twice: at the first
   node of the fleet (``--rows`` rows; the other nodes idle), and -- once the fleet
   has stopped -- at a node of its own (a one-agency federation) serving
   ``--small-rows`` rows (default 10,000), where the per-query overhead dominates.
   Baselines for each size: the same count by DuckDB in this process on the Parquet
   file and on a DuckDB table of it stored as the working copies are. Goal: >= 300/s.
3. Where the time goes: coordinator-side phases of the federated query (GetNodeInfo
   fan-out, RunQuery fan-out, secure-sum rounds, local work), then the fleet's first
   node served alone in this process with its phases timed (policy gate with budget
   ledger and decision log, SQL, noise...). Those in-process figures share this
   process's GIL with the client: a breakdown, not the node's throughput.
4. Peak RSS (``VmHWM``) of every node process of the fleet after start-up, after
   the group-by runs and at the end; then, with everything else stopped, of one node
   of its own serving ``--rss-rows`` rows (default 5,000,000; 0 skips it) after
   start-up, after a few group-by queries through the coordinator and after a
   second of count queries -- with the ratio to the fleet's first node: node memory
   should not grow with the number of rows.

Run: ``python bench/bench_queries.py [--rows N] [--nodes K] [--repeat R]
[--small-rows N] [--rss-rows N]``; ``--rows 100000 --rss-rows 500000`` for a quick
run. Product code is not changed: the timing probes (``_query_probes``) are wrappers
installed in this process only.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb
import grpc
import tomli_w

import coordinator
import demo._incidents as incidents
import node
import pki
from accord.v1 import node_service_pb2 as pb
from bench._query_probes import (
    NODE_PHASES,
    Phases,
    coordinator_probes,
    node_error,
    node_probes,
    peak_rss_mb,
    process_cpu,
)
from coordinator import Aggregation, Filter, GrpcNodeLink, NodeAddress, QuerySpec
from coordinator._schema import find_dataset, typed_spec
from coordinator._serde import spec_to_proto
from demo import DATASET, SCHEMA, DemoFederation, NodeFleet, NodeProcess, provision
from node._config import ColumnSpec
from node._sources import cluster_order, typed_column

#: Public histogram edges of damage_eur (EUR); the last bin is closed.
EDGES = (0.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 1_000_000.0)
#: Privacy loss of each query (zCDP rho): DP on, answers noisy.
RHO_GROUP_BY = 0.05
RHO_COUNT = 0.001
GOAL_FEDERATED = 1.5
GOAL_SECURE = 1.3
GOAL_QPS = 300.0

#: Extra agencies beyond the demo's three, each a variation of a demo profile.
EXTRA_TITLES = ("Customs", "Coast Guard", "Cyber Crime Unit", "Gendarmerie")
#: The one-agency federations of the small-dataset node and of the memory node.
SMALL_FEDERATION = "bench-small"
RSS_FEDERATION = "bench-rss"
#: The memory node's workload: group-by queries, then a second of counts.
RSS_GROUP_BYS = 3
RSS_COUNT_SECONDS = 1.0
#: The baseline tables in this process's DuckDB database file.
POOLED_TABLE, FIRST_TABLE, SMALL_TABLE = "pooled", "first_node", "small_node"
POOLED_TEXT = "pooled_text"  # categories kept as text


# --------------------------------------------------------------------------- setup


def agency_names(count: int) -> list[str]:
    """``agency-a``, ``agency-b``, ... (the demo's names first)."""
    if not 1 <= count <= 26:
        raise SystemExit("--nodes must be between 1 and 26")
    return [f"agency-{chr(ord('a') + i)}" for i in range(count)]


def extra_profiles(agencies: Sequence[str]) -> dict[str, incidents.AgencyProfile]:
    """Profiles for agencies the demo does not know: demo profiles, varied."""
    base = list(incidents.PROFILES.values())
    out = {}
    for i, agency in enumerate(a for a in agencies if a not in incidents.PROFILES):
        like = base[i % len(base)]
        out[agency] = dataclasses.replace(
            like,
            agency=agency,
            title=EXTRA_TITLES[i % len(EXTRA_TITLES)],
            damage_scale=like.damage_scale * (1.5 + 0.5 * i),
            cross_border_rate=min(0.9, like.cross_border_rate + 0.1 * (i + 1)),
            region_weights=tuple(reversed(like.region_weights)),
        )
    return out


def bench_policy(agency: str) -> dict[str, Any]:
    """Every action for the hub, DP by default, a budget no benchmark exhausts."""
    return {
        "policy": {"privacy_unit": {"max_rows_per_person": 1}},
        "datasets": {
            DATASET: {
                "description": "benchmark incidents",
                "never_release": ["incident_id"],
                "columns": {name: dict(spec) for name, spec in SCHEMA.items()},
            }
        },
        "permissions": [
            {
                "uid": f"{agency}-bench",
                "assignees": ["role:coordinator"],
                "datasets": [DATASET],
                "actions": ["count", "sum", "mean", "histogram"],
                "purposes": ["statistics"],
                "default_rho": RHO_GROUP_BY,
                "max_rho": 1.0,
            }
        ],
        "budgets": [
            {"uid": f"{agency}-big", "assignees": ["*"], "rho_lifetime": 1_000_000.0}
        ],
        "duties": {"notify": f"mailto:dpo@{agency}.example"},
    }


def provision_parquet(
    root: Path, agencies: Sequence[str], rows: int, federation: str = "bench"
) -> DemoFederation:
    """Provision the federation, every agency on Parquet (demo profiles patched in)."""
    with mock.patch.dict(incidents.PROFILES, extra_profiles(agencies)):
        return provision(
            root,
            federation=federation,
            agencies=agencies,
            sources=dict.fromkeys(agencies, "parquet"),
            policies={a: bench_policy(a) for a in agencies},
            rows=dict.fromkeys(agencies, rows),
        )


def set_file_threads(node_config: Path, threads: int) -> None:
    """Give a node ``threads`` DuckDB threads (``[node] file_threads``)."""
    config = tomllib.loads(node_config.read_text())
    config["node"]["file_threads"] = threads
    node_config.write_text(tomli_w.dumps(config))


def parquet_file(site_folder: Path) -> Path:
    """The Parquet file ``provision`` wrote for one agency."""
    return site_folder / "data" / f"{DATASET}.parquet"


def read_parquet(files: Sequence[Path]) -> str:
    """DuckDB's table function over ``files``, read in place."""
    listing = ", ".join(f"'{f}'" for f in files)
    return f"read_parquet([{listing}])"


def load_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    files: Sequence[Path],
    *,
    enum: bool = True,
) -> float:
    """Load ``files`` into ``table`` of ``con``'s database file; return the seconds.

    With ``enum`` (the default) the table is stored exactly as the nodes' working
    copies are: declared categories as ENUMs, rows sorted by the working copies'
    cluster order. ``enum=False`` keeps categories as text, in the files' order.
    """
    columns = {name: ColumnSpec.model_validate(spec) for name, spec in SCHEMA.items()}
    casts = ", ".join(typed_column(n, c, enum=enum) for n, c in columns.items())
    order = ""
    if enum:
        order = " ORDER BY " + ", ".join(f'"{n}"' for n in cluster_order(columns))
    start = time.perf_counter()
    con.execute(
        f'CREATE OR REPLACE TABLE "{table}" AS SELECT {casts} '
        f"FROM {read_parquet(files)}{order}"
    )
    con.execute("CHECKPOINT")
    return time.perf_counter() - start


@dataclasses.dataclass(frozen=True)
class Solo:
    """A node of its own: a one-agency federation, its node process started."""

    fed: DemoFederation
    process: NodeProcess
    config: coordinator.FederationConfig
    generated: float  # seconds to generate and write its data
    ready: float  # seconds from spawn to ready (working copy loaded)

    @property
    def pid(self) -> int:
        assert self.process.process is not None
        return self.process.process.pid

    @property
    def file(self) -> Path:
        return parquet_file(self.fed.sites[0].folder)

    @property
    def address(self) -> NodeAddress:
        site = self.fed.sites[0]
        return NodeAddress(
            site.agency, "node", self.process.address, None, self.fed.name
        )


@contextlib.contextmanager
def solo_node(root: Path, federation: str, rows: int) -> Iterator[Solo]:
    """Provision a one-agency federation (the first agency, ``rows`` rows); serve it."""
    start = time.perf_counter()
    fed = provision_parquet(root, agency_names(1), rows, federation=federation)
    generated = time.perf_counter() - start
    site = fed.sites[0]
    process = NodeProcess(site.agency, site.node_config, site.folder)
    with NodeFleet([process]) as fleet:
        start = time.perf_counter()
        addresses = fleet.wait_ready(timeout=600.0)
        ready = time.perf_counter() - start
        config = coordinator.load_federation(
            fed.write_federation_file(addresses, deadline=120.0)
        )
        yield Solo(fed, process, config, generated, ready)


# --------------------------------------------------------------------------- queries


def group_by_spec(
    *, secure: bool, participants: int, mean_of: str = "damage_eur"
) -> QuerySpec:
    """The federated group-by: count, mean and histogram per region, DP."""
    return QuerySpec(
        dataset=DATASET,
        aggregations=(
            Aggregation("count"),
            Aggregation("mean", mean_of),
            Aggregation("histogram", "damage_eur", bin_edges=EDGES),
        ),
        group_by=("region",),
        purpose="statistics",
        justification="benchmark",
        rho=RHO_GROUP_BY,
        secure_aggregation=secure,
        min_participants=max(2, min(3, participants)),
    )


def count_spec() -> QuerySpec:
    """The small DP query: a count with one filter."""
    return QuerySpec(
        dataset=DATASET,
        aggregations=(Aggregation("count"),),
        filters=(Filter("cross_border", "=", (True,)),),
        purpose="statistics",
        justification="benchmark",
        rho=RHO_COUNT,
    )


def centralized_sql(source: str) -> str:
    """The group-by over ``source`` (a table or files), histogram by CASE/SUM."""
    bins = []
    for i in range(len(EDGES) - 1):
        lo, hi = EDGES[i], EDGES[i + 1]
        upper = "<=" if i == len(EDGES) - 2 else "<"
        bins.append(
            f"sum(CASE WHEN damage_eur >= {lo} AND damage_eur {upper} {hi} "
            f"THEN 1 ELSE 0 END) AS h{i}"
        )
    return (
        f"SELECT region, count(*) AS n, avg(damage_eur) AS mean, {', '.join(bins)} "
        f"FROM {source} GROUP BY region ORDER BY CAST(region AS VARCHAR)"
    )


def same_answer(a: Sequence[tuple[Any, ...]], b: Sequence[tuple[Any, ...]]) -> bool:
    """Whether two centralized answers agree (means up to summation order)."""
    return len(a) == len(b) and all(
        x[:2] == y[:2]
        and x[3:] == y[3:]
        and math.isclose(float(x[2]), float(y[2]), rel_tol=1e-9)
        for x, y in zip(a, b, strict=True)
    )


class LostNodes(Exception):
    """A federated query ran without every node."""


@dataclasses.dataclass
class Series:
    """Timed runs of one query, by measure (seconds): total, cpu and phases."""

    label: str
    values: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: defaultdict(list)
    )
    result: coordinator.FederatedResult | None = None

    def add(self, sample: dict[str, float]) -> None:
        for key, value in sample.items():
            self.values[key].append(value)

    def median_ms(self, key: str = "total") -> float:
        return statistics.median(self.values[key]) * 1e3

    def mean_ms(self, key: str) -> float:
        return statistics.fmean(self.values[key]) * 1e3


#: The centralized series, by key: not federated, no coordinator phases.
CENTRAL = ("central", "text", "table")


def federated_once(
    hub: coordinator.Coordinator,
    phases: Phases,
    spec: QuerySpec,
    pids: Sequence[int],
    series: Series,
) -> dict[str, float]:
    """Run ``spec`` once through the coordinator; return its timings by phase."""
    phases.clear()
    cpu = process_cpu(pids)
    start = time.perf_counter()
    result = hub.query(dataclasses.replace(spec, query_id=uuid.uuid4().hex))
    total = time.perf_counter() - start
    cpu = process_cpu(pids) - cpu
    if len(result.contributors) != len(hub.links):
        failed = [o.agency for o in result.outcomes if not o.ok]
        raise LostNodes(
            f"{len(failed)} of {len(hub.links)} nodes failed: {', '.join(failed)}"
        )
    series.result = result
    runs = [phases.samples[f"run:{i}"][0] for i in range(len(hub.links))]
    info = phases.samples["info"][0]
    rounds = sum(phases.samples.get("secure_sum", [0.0]))
    return {
        "total": total,
        "cpu": cpu,
        "info": info,
        "run_slowest": max(runs),
        "run_fastest": min(runs),
        "secure_sum": rounds,
        "local": total - info - max(runs) - rounds,
    }


def interleaved(
    calls: dict[str, Callable[[], dict[str, float]]],
    series: dict[str, Series],
    repeat: int,
) -> None:
    """Run every call ``repeat`` times, round-robin, so drifting load hits all alike."""
    for _ in range(repeat):
        for name, call in calls.items():
            series[name].add(call())


def check_against_pooled(
    result: coordinator.FederatedResult | None, pooled: list[tuple[Any, ...]]
) -> float:
    """Return the largest relative error of the noisy counts against the truth."""
    if result is None:
        raise SystemExit("no federated result to check")
    truth = {row[0]: row[1] for row in pooled}
    worst = 0.0
    for group in result.groups:
        count = next(v for v in group.values if v.label == "count")
        if count.value is None:
            raise SystemExit(f"group {group.key} was suppressed")
        true = truth[group.key[0]]
        worst = max(worst, abs(count.value - true) / true)
    return worst


# --------------------------------------------------------------------------- throughput


def percentile_ms(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1e3


@dataclasses.dataclass(frozen=True)
class Throughput:
    """Back-to-back queries from some client threads."""

    label: str
    rows: int  # rows of the dataset queried
    queries: int
    seconds: float
    latencies: list[float]
    errors: int
    node_cpu: float | None  # seconds of node CPU per query; None: not a node
    client_cpu: float  # seconds of this process's CPU per query

    @property
    def rate(self) -> float:
        return self.queries / self.seconds


def hammer(
    links: Sequence[GrpcNodeLink],
    request: pb.RunQueryRequest,
    seconds: float,
    node_pid: int,
    rows: int,
) -> Throughput:
    """Each thread sends ``request`` over its own link, back to back, for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in links]
    errors = [0] * len(links)
    barrier = threading.Barrier(len(links) + 1)
    stop_at = [0.0]

    def worker(index: int) -> None:
        link, mine = links[index], latencies[index]
        message = pb.RunQueryRequest()
        message.CopyFrom(request)
        barrier.wait()
        while True:
            message.query_id = uuid.uuid4().hex
            began = time.perf_counter()
            if began >= stop_at[0]:
                return
            try:
                link.run_query(message, 10.0)
            except grpc.RpcError:
                errors[index] += 1
            mine.append(time.perf_counter() - began)

    threads = [
        threading.Thread(target=worker, args=(i,), daemon=True)
        for i in range(len(links))
    ]
    for thread in threads:
        thread.start()
    node_cpu, own_cpu = process_cpu([node_pid]), process_cpu([])
    began = time.perf_counter()
    stop_at[0] = began + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    own_cpu = process_cpu([]) - own_cpu
    node_cpu = process_cpu([node_pid]) - node_cpu - own_cpu
    flat = [x for lane in latencies for x in lane]
    label = f"node over mTLS, {len(links)} client thread{'s' if len(links) > 1 else ''}"
    n = max(1, len(flat))
    return Throughput(
        label, rows, len(flat), elapsed, flat, sum(errors), node_cpu / n, own_cpu / n
    )


def count_request(link: GrpcNodeLink) -> pb.RunQueryRequest:
    """The small count, typed against the schema the node publishes."""
    schema = find_dataset([link.get_info(10.0)], DATASET)
    if schema is None:
        raise SystemExit(f"the node does not publish {DATASET!r}")
    return spec_to_proto(typed_spec(count_spec(), schema))


def node_rates(
    address: NodeAddress,
    material: pki.TlsMaterial,
    threads: Sequence[int],
    seconds: float,
    node_pid: int,
    rows: int,
) -> list[Throughput]:
    """Small counts per second at one node, from each number of client threads."""
    out = []
    for count in threads:
        links = [GrpcNodeLink(address, material) for _ in range(count)]
        try:
            request = count_request(links[0])
            for link in links:  # connect and warm up every channel
                for _ in range(3):
                    link.run_query(request, 10.0)
            out.append(hammer(links, request, seconds, node_pid, rows))
        finally:
            for link in links:
                link.close()
    return out


def duckdb_count(
    con: duckdb.DuckDBPyConnection, source: str, label: str, rows: int, seconds: float
) -> Throughput:
    """The same count by DuckDB over ``source`` (a table or a file), in this process."""
    sql = f"SELECT count(*) FROM {source} WHERE cross_border = true"
    con.execute(sql).fetchall()
    latencies = []
    cpu = process_cpu([])
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        start = time.perf_counter()
        con.execute(sql).fetchall()
        latencies.append(time.perf_counter() - start)
    elapsed = time.perf_counter() - began
    cpu = process_cpu([]) - cpu
    return Throughput(
        label, rows, len(latencies), elapsed, latencies, 0, None, cpu / len(latencies)
    )


def duckdb_baselines(
    con: duckdb.DuckDBPyConnection, file: Path, table: str, rows: int, seconds: float
) -> list[Throughput]:
    """The count in this process on the Parquet file, then on a DuckDB table of it."""
    return [
        duckdb_count(
            con,
            read_parquet([file]),
            "DuckDB, Parquet file (baseline)",
            rows,
            seconds,
        ),
        duckdb_count(
            con,
            f'"{table}"',
            "DuckDB, DuckDB table (baseline)",
            rows,
            seconds,
        ),
    ]


# --------------------------------------------------------------------------- memory


@dataclasses.dataclass
class Memory:
    """Peak RSS (VmHWM, MB) of one node process after each stage of its run."""

    label: str
    rows: int
    peaks: dict[str, float] = dataclasses.field(default_factory=dict)
    now: float = 0.0

    def read(self, stage: str, pid: int) -> None:
        self.peaks[stage], self.now = peak_rss_mb(pid)


#: The stages after which the peak RSS is read, with their column headings.
STAGES = (
    ("start", "after start-up"),
    ("group", "after group-by"),
    ("end", "at the end"),
)


@dataclasses.dataclass(frozen=True)
class RssRun:
    """The node of its own at ``--rss-rows`` rows: memory and what it served."""

    memory: Memory
    generated: float
    ready: float
    group_by: list[float]  # seconds, through the coordinator
    counts: Throughput


def rss_run(root: Path, rows: int, threads: int) -> RssRun:
    """Serve ``rows`` rows at a node of its own; read its peak RSS along a workload."""
    with solo_node(root, RSS_FEDERATION, rows) as solo:
        memory = Memory(f"{solo.address.agency} (alone)", rows)
        memory.read("start", solo.pid)
        timings = []
        with coordinator.Coordinator.from_config(solo.config) as hub:
            spec = group_by_spec(secure=False, participants=1)
            for _ in range(RSS_GROUP_BYS):
                start = time.perf_counter()
                result = hub.query(dataclasses.replace(spec, query_id=uuid.uuid4().hex))
                timings.append(time.perf_counter() - start)
                if not result.contributors:
                    raise SystemExit(
                        f"group-by at {rows:,} rows failed: "
                        + "; ".join(o.message for o in result.outcomes)
                        + f" -- node log: {node_error(solo.process)}"
                    )
        memory.read("group", solo.pid)
        material = coordinator.load_tls(solo.config)
        (counts,) = node_rates(
            solo.address, material, [threads], RSS_COUNT_SECONDS, solo.pid, rows
        )
        memory.read("end", solo.pid)
    return RssRun(memory, solo.generated, solo.ready, timings, counts)


# --------------------------------------------------------------------------- one node


def node_breakdown(
    fed: DemoFederation, federation_file: Path, repeat: int
) -> tuple[Phases, Phases, float, float]:
    """Serve the first agency's node in this process; time the phases of both queries.

    Returns the phases of the group-by and of the count, and the client-observed
    median latencies (seconds) of each.
    """
    site = fed.sites[0]
    config = node.load_node_config(site.node_config)
    phases = Phases()
    done: dict[str, Phases] = {}
    client: dict[str, float] = {}
    material = coordinator.load_tls(coordinator.load_federation(federation_file))
    with node_probes(phases):
        server = node.create_server(config, listen="127.0.0.1:0")
        server.start()
        link = GrpcNodeLink(
            NodeAddress(site.agency, "node", server.address, None, fed.name), material
        )
        try:
            schema = find_dataset([link.get_info(10.0)], DATASET)
            assert schema is not None
            requests = {
                "group": spec_to_proto(
                    typed_spec(group_by_spec(secure=False, participants=1), schema)
                ),
                "count": spec_to_proto(typed_spec(count_spec(), schema)),
            }
            for key, times in (("group", repeat), ("count", 200)):
                link.run_query(requests[key], 30.0)  # warm-up, untimed
                phases.clear()
                samples = []
                for _ in range(times):
                    start = time.perf_counter()
                    link.get_info(10.0)
                    phases.add("client.info", time.perf_counter() - start)
                    start = time.perf_counter()
                    link.run_query(requests[key], 30.0)
                    samples.append(time.perf_counter() - start)
                client[key] = statistics.median(samples)
                done[key] = phases.copy()
        finally:
            link.close()
            server.stop(0)
    return done["group"], done["count"], client["group"], client["count"]


# --------------------------------------------------------------------------- report

WIDTH = 112


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def rule(width: int = WIDTH) -> None:
    print("-" * width)


@dataclasses.dataclass
class Report:
    """Everything measured, printed at the end."""

    args: argparse.Namespace
    series: dict[str, Series]
    secure_failure: str
    count_errors: dict[str, float]
    rates: list[Throughput]
    small_agency: str
    memory: list[Memory]
    rss: RssRun | None
    grouped: Phases
    small: Phases
    client_group: float
    client_count: float
    agency: str
    load: tuple[float, float]
    elapsed: float


def ratios(s: Series, ref: Series) -> tuple[float, float, float]:
    """Median, best-case (min) and CPU ratios of ``s`` to ``ref``."""
    return (
        s.median_ms() / ref.median_ms(),
        min(s.values["total"]) / min(ref.values["total"]),
        s.mean_ms("cpu") / ref.mean_ms("cpu"),
    )


def print_group_by(r: Report) -> None:
    rows = r.args.rows * r.args.nodes
    print()
    print(
        f"1. Group-by region: count, mean(damage_eur), histogram(damage_eur, "
        f"{len(EDGES) - 1} public bins); DP at rho {RHO_GROUP_BY} per node; "
        f"{rows:,} rows in all"
    )
    rule()
    print(f"{'run':<62} {'median':>7} {'min':>7} {'max':>7} {'CPU':>6}")
    rule()
    labels = {
        "central": "centralized A: DuckDB over the pooled Parquet files",
        "text": f"centralized B: DuckDB table of the pooled {rows:,} rows",
        "table": "centralized C: stored as the working copies (ENUM, sorted)",
        "plain": "federated, secure aggregation off",
        "secure": "federated, secure aggregation on",
        "plain*": "federated, secure aggregation off (mean(severity))",
        "secure*": "federated, secure aggregation on (mean(severity))",
    }
    for key, s in r.series.items():
        times = s.values["total"]
        print(
            f"{labels[key]:<62} {s.median_ms():>7.1f} {min(times) * 1e3:>7.1f} "
            f"{max(times) * 1e3:>7.1f} {s.mean_ms('cpu'):>6.0f}"
        )
    if "secure" not in r.series:
        print(f"{labels['secure']:<62} not measured:")
        print(f"  {r.secure_failure}")
    print(
        "ms per query; CPU: ms of all processes per query (centralized: this one; "
        "federated: coordinator and every node)"
    )
    rule()
    print(f"{'ratio':<62} {'x med':>7} {'x min':>7} {'x CPU':>7}  goal (on x med)")
    rule()

    def row(label: str, key: str, ref: str, goal: float = 0.0) -> None:
        med, best, cpu = ratios(r.series[key], r.series[ref])
        judged = f"<= {goal}x: {verdict(med <= goal)}" if goal else ""
        print(f"{label:<62} {med:>6.2f}x {best:>6.2f}x {cpu:>6.2f}x  {judged}")

    row("secure off / A (Parquet files)", "plain", "central", GOAL_FEDERATED)
    row(
        "secure off / B (DuckDB table, text categories)",
        "plain",
        "text",
        GOAL_FEDERATED,
    )
    row(
        "secure off / C (DuckDB table as the working copies)",
        "plain",
        "table",
        GOAL_FEDERATED,
    )
    if "secure" in r.series:
        row("secure on / A (Parquet files)", "secure", "central")
        row("secure on / C (DuckDB table as the working copies)", "secure", "table")
        row("secure on / secure off", "secure", "plain", GOAL_SECURE)
    elif "plain*" in r.series:
        print("the same shape with mean(severity), whose sums fit the secure encoding:")
        row("  secure off / C (DuckDB table)", "plain*", "table")
        row("  secure on / C (DuckDB table)", "secure*", "table")
        row("  secure on / secure off", "secure*", "plain*", GOAL_SECURE)
    print(
        "x med, x min, x CPU: ratios of the medians, of the minimums, of the CPU "
        "times. C is the fair reference:"
    )
    print(
        "each node answers from its DuckDB working copy, and C is that storage in one "
        "process; B keeps categories as text; A parses Parquet at every query."
    )
    print(
        "noisy counts against the pooled truth, largest relative error: "
        + ", ".join(f"{k} {v:.1e}" for k, v in r.count_errors.items())
    )


def print_breakdown(r: Report) -> None:
    runs = {k: v for k, v in r.series.items() if k not in CENTRAL}
    print()
    print("Where the federated time goes (coordinator side, median ms per query)")
    rule()
    print(f"{'phase':<56}" + "".join(f" {k:>10}" for k in runs))
    rule()
    for label, key in (
        ("schemas (GetNodeInfo, reused for a minute)", "info"),
        ("RunQuery fan-out: slowest node", "run_slowest"),
        ("RunQuery fan-out: fastest node", "run_fastest"),
        ("secure-sum rounds after RunQuery", "secure_sum"),
        ("coordinator-local (spec check, combine, threads)", "local"),
        ("total", "total"),
    ):
        print(
            f"{label:<56}"
            + "".join(f" {s.median_ms(key):>10.1f}" for s in runs.values())
        )
    if "plain*" in runs:
        print("(* the mean(severity) variant)")


def print_throughput(r: Report) -> None:
    print()
    print(
        f"2. Small DP queries at one node: count where cross_border = true, rho "
        f"{RHO_COUNT}; {r.args.qps_seconds:g} s per row"
    )
    rule()
    print(
        f"{'rows':>9}  {'client':<34} {'queries':>7} {'q/s':>6} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'node CPU':>8} {'client':>7} {'err':>4}  goal"
    )
    rule()
    for t in r.rates:
        node_cpu = "-" if t.node_cpu is None else f"{t.node_cpu * 1e3:.2f}"
        goal = (
            ""
            if t.node_cpu is None
            else f">= {GOAL_QPS:.0f}/s: {verdict(t.rate >= GOAL_QPS)}"
        )
        print(
            f"{t.rows:>9,}  {t.label:<34} {t.queries:>7} {t.rate:>6.0f} "
            f"{percentile_ms(t.latencies, 0.5):>7.2f} "
            f"{percentile_ms(t.latencies, 0.99):>7.2f} {node_cpu:>8} "
            f"{t.client_cpu * 1e3:>7.2f} {t.errors:>4}  {goal}"
        )
    print(
        "node CPU, client: CPU ms per query of the node process and of this one; "
        "DuckDB: the same count in this process"
    )
    print(
        f"{r.args.rows:,} rows: {r.agency} of the fleet (the other nodes idle); "
        f"{r.args.small_rows:,} rows: {r.small_agency} of a federation of its own, "
        "after the fleet stopped"
    )
    for size in sorted({t.rows for t in r.rates}, reverse=True):
        nodes = [t.rate for t in r.rates if t.rows == size and t.node_cpu is not None]
        tables = [t.rate for t in r.rates if t.rows == size and "table" in t.label]
        if nodes and tables:
            print(
                f"{size:,} rows: best node rate / DuckDB table rate: "
                f"{max(nodes) / tables[0]:.2f}"
            )


def print_node_phases(r: Report) -> None:
    print()
    print(
        f"3. Inside one node ({r.agency}, {r.args.rows:,} rows, served alone in this "
        "process; median ms per request: wall / CPU of the handling thread)"
    )
    rule()
    print(f"{'phase':<60} {'group-by':>17} {'count':>17}")
    rule()

    def cell(p: Phases, key: str) -> str:
        wall, cpu = p.median_ms(key), p.cpu_ms(key)
        if wall is None:
            return "-"
        return f"{wall:.2f}" + ("" if cpu is None else f" / {cpu:.2f}")

    for key, label in NODE_PHASES:
        if r.grouped.median_ms(key) is None and r.small.median_ms(key) is None:
            continue
        print(f"{label:<60} {cell(r.grouped, key):>17} {cell(r.small, key):>17}")
    print(
        f"{'RunQuery seen by the client (+ gRPC, TLS, protobuf)':<60} "
        f"{r.client_group * 1e3:>17.2f} {r.client_count * 1e3:>17.2f}"
    )
    print(
        f"{'GetNodeInfo seen by the client':<60} "
        f"{cell(r.grouped, 'client.info'):>17} {cell(r.small, 'client.info'):>17}"
    )


def print_memory(r: Report) -> None:
    print()
    print("4. Node memory: peak RSS (VmHWM) of each node process, MB")
    rule()
    print(
        f"{'node':<30} {'rows':>10}"
        + "".join(f" {heading:>15}" for _, heading in STAGES)
        + f" {'RSS now':>10}"
    )
    rule()
    everyone = [*r.memory, *([r.rss.memory] if r.rss else [])]
    for m in everyone:
        print(
            f"{m.label:<30} {m.rows:>10,}"
            + "".join(f" {m.peaks.get(stage, math.nan):>15.0f}" for stage, _ in STAGES)
            + f" {m.now:>10.0f}"
        )
    rule()
    threads = max(int(t) for t in r.args.threads.split(",") if t.strip())
    print(
        f"fleet: start-up (working copy loaded), {r.args.repeat + 1} group-bys with "
        f"secure aggregation off and {r.args.repeat + 1} with it on, then"
    )
    print(
        f"  the queries/s runs at {r.agency} ({r.args.threads} client threads, "
        f"{r.args.qps_seconds:g} s each); the others idle"
    )
    if r.rss is None:
        print("(--rss-rows 0: no node of its own)")
        return
    big, first = r.rss.memory, r.memory[0]
    print(
        f"alone: start-up (working copy loaded), {RSS_GROUP_BYS} group-bys through the "
        f"coordinator (one node: secure aggregation off), then"
    )
    print(
        f"  {threads} client threads of counts for {RSS_COUNT_SECONDS:g} s, once "
        "everything else had stopped"
    )
    growth = big.rows / first.rows
    print(
        f"{big.rows:,} vs {first.rows:,} rows ({growth:g}x the rows), peak RSS: "
        + ", ".join(
            f"{heading} {big.peaks[stage] / first.peaks[stage]:.2f}x"
            for stage, heading in STAGES
        )
    )
    extra = (big.rows - first.rows) / 1e6
    if extra > 0:
        print(
            "growth per extra million rows: "
            + ", ".join(
                f"{heading} {(big.peaks[stage] - first.peaks[stage]) / extra:+.0f} MB"
                for stage, heading in STAGES
            )
        )
    counts = r.rss.counts
    print(
        f"{big.rows:,} rows alone: {r.rss.generated:.1f} s to generate, ready in "
        f"{r.rss.ready:.1f} s; group-by median "
        f"{statistics.median(r.rss.group_by) * 1e3:.0f} ms; counts {counts.rate:.0f}/s "
        f"({counts.errors} errors)"
    )


def print_footer(r: Report) -> None:
    print()
    print(
        f"load average (1 min) at start {r.load[0]:.2f}, at end {r.load[1]:.2f} "
        f"on {os.cpu_count()} CPUs: other work on this machine skews the figures; "
        f"run time {r.elapsed:.0f} s"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per node")
    parser.add_argument("--nodes", type=int, default=5, help="number of agencies")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per figure")
    parser.add_argument(
        "--threads", default="1,4,16", help="client threads of the queries/s runs"
    )
    parser.add_argument(
        "--qps-seconds", type=float, default=3.0, help="seconds per queries/s run"
    )
    parser.add_argument(
        "--small-rows",
        type=int,
        default=10_000,
        help="rows of the node of its own whose queries/s are measured",
    )
    parser.add_argument(
        "--rss-rows",
        type=int,
        default=5_000_000,
        help="rows of the node of its own whose peak RSS is measured (0: none)",
    )
    parser.add_argument(
        "--node-threads",
        type=int,
        default=0,
        help="DuckDB threads of each fleet node (node.file_threads); default: the "
        "machine's cores shared out among the nodes, at least 1",
    )
    parser.add_argument("--keep", type=Path, help="provision here and keep the files")
    args = parser.parse_args()
    if args.node_threads <= 0:
        args.node_threads = max(1, (os.cpu_count() or 1) // args.nodes)
    if args.rows < 1 or args.small_rows < 1 or args.rss_rows < 0:
        parser.error("--rows and --small-rows must be positive, --rss-rows >= 0")
    if not [t for t in args.threads.split(",") if t.strip()]:
        parser.error("--threads needs one number at least")
    return args


def run(args: argparse.Namespace, root: Path) -> Report:
    """Provision, start the fleet, measure everything; every node always stops."""
    began = time.perf_counter()
    load_start = os.getloadavg()[0]
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    agencies = agency_names(args.nodes)
    start = time.perf_counter()
    fed = provision_parquet(root, agencies, args.rows)
    for fleet_site in fed.sites:
        set_file_threads(fleet_site.node_config, args.node_threads)
    setup_s = time.perf_counter() - start
    files = [parquet_file(site.folder) for site in fed.sites]
    data_mb = sum(f.stat().st_size for f in files) / 1e6
    site = fed.sites[0]
    # The centralized baseline's DuckDB database file, loaded before any timing.
    con = duckdb.connect(str(root / "baseline.duckdb"))
    try:
        load_s = load_table(con, POOLED_TABLE, files)
        load_table(con, POOLED_TEXT, files, enum=False)
        load_table(con, FIRST_TABLE, files[:1])
        fleet = NodeFleet(
            [NodeProcess(s.agency, s.node_config, s.folder) for s in fed.sites]
        )
        with fleet, contextlib.ExitStack() as stack:
            start = time.perf_counter()
            addresses = fleet.wait_ready(timeout=600.0)
            pids = [p.process.pid for p in fleet.nodes if p.process is not None]
            memory = [Memory(f"{p.label} (fleet)", args.rows) for p in fleet.nodes]
            for m, pid in zip(memory, pids, strict=True):
                m.read("start", pid)
            print(
                f"setup: {args.rows * args.nodes:,} rows generated and written "
                f"({data_mb:.0f} MB of Parquet) in {setup_s:.1f} s, loaded into this "
                f"process's DuckDB table in {load_s:.1f} s; {args.nodes} node "
                f"processes ready (working copies loaded) in "
                f"{time.perf_counter() - start:.1f} s",
                flush=True,
            )
            federation_file = fed.write_federation_file(addresses, deadline=120.0)
            config = coordinator.load_federation(federation_file)

            # 1. The centralized baselines and the federated group-by, interleaved.
            pooled: list[tuple[Any, ...]] = []
            tabled: list[tuple[Any, ...]] = []
            texted: list[tuple[Any, ...]] = []

            def centralized(
                sql: str, answer: list[tuple[Any, ...]]
            ) -> Callable[[], dict[str, float]]:
                def call() -> dict[str, float]:
                    cpu, began = process_cpu([]), time.perf_counter()
                    answer[:] = con.execute(sql).fetchall()
                    return {
                        "total": time.perf_counter() - began,
                        "cpu": process_cpu([]) - cpu,
                    }

                return call

            hub = stack.enter_context(coordinator.Coordinator.from_config(config))
            phases = stack.enter_context(coordinator_probes(hub))
            series = {
                name: Series(name)
                for name in (*CENTRAL, "plain", "secure", "plain*", "secure*")
            }

            def federated(name: str, spec: QuerySpec) -> Callable[[], dict[str, float]]:
                return lambda: federated_once(hub, phases, spec, pids, series[name])

            n = args.nodes
            calls = {
                "central": centralized(centralized_sql(read_parquet(files)), pooled),
                "text": centralized(centralized_sql(f'"{POOLED_TEXT}"'), texted),
                "table": centralized(centralized_sql(f'"{POOLED_TABLE}"'), tabled),
                "plain": federated(
                    "plain", group_by_spec(secure=False, participants=n)
                ),
                "secure": federated(
                    "secure", group_by_spec(secure=True, participants=n)
                ),
            }
            failure = ""
            if n < 2:  # secure aggregation needs two participants at least
                del calls["secure"], series["secure"]
                failure = "skipped: secure aggregation needs at least 2 nodes"
            for name, call in list(calls.items()):  # warm-up
                try:
                    call()
                except (LostNodes, coordinator.CoordinatorError, ValueError) as exc:
                    if name != "secure":
                        raise
                    # ValueError: secure_sum refuses a threshold above the nodes left.
                    why = sorted({e for e in map(node_error, fleet.nodes) if e})
                    failure = f"{type(exc).__name__}: {exc}" + (
                        f" -- node log: {'; '.join(why)}" if why else ""
                    )
                    print(f"federated group-by, secure: FAILED ({failure})", flush=True)
                    del calls["secure"], series["secure"]
                    calls["plain*"] = federated(
                        "plain*",
                        group_by_spec(secure=False, participants=n, mean_of="severity"),
                    )
                    calls["secure*"] = federated(
                        "secure*",
                        group_by_spec(secure=True, participants=n, mean_of="severity"),
                    )
                    calls["plain*"]()
                    calls["secure*"]()
            if not (same_answer(pooled, tabled) and same_answer(pooled, texted)):
                raise SystemExit(
                    "the pooled DuckDB table does not give the Parquet files' answer"
                )
            if "plain*" not in calls:
                del series["plain*"], series["secure*"]
            interleaved(calls, series, args.repeat)
            errors = {
                k: check_against_pooled(s.result, pooled)
                for k, s in series.items()
                if k not in CENTRAL
            }
            for m, pid in zip(memory, pids, strict=True):
                m.read("group", pid)
            print("group-by: done", flush=True)

            # 2. Small DP queries per second at the first node (the others idle).
            material = coordinator.load_tls(config)
            address = NodeAddress(
                site.agency, "node", addresses[site.agency], None, fed.name
            )
            rates = duckdb_baselines(
                con, files[0], FIRST_TABLE, args.rows, args.qps_seconds
            )
            rates += node_rates(
                address, material, threads, args.qps_seconds, pids[0], args.rows
            )
            for m, pid in zip(memory, pids, strict=True):
                m.read("end", pid)
            print(f"queries per second at {args.rows:,} rows: done", flush=True)

        # 2, continued: the same at a small node of its own, the fleet stopped.
        with solo_node(root / "small", SMALL_FEDERATION, args.small_rows) as solo:
            load_table(con, SMALL_TABLE, [solo.file])
            rates += duckdb_baselines(
                con, solo.file, SMALL_TABLE, args.small_rows, args.qps_seconds
            )
            rates += node_rates(
                solo.address,
                coordinator.load_tls(solo.config),
                threads,
                args.qps_seconds,
                solo.pid,
                args.small_rows,
            )
        print(f"queries per second at {args.small_rows:,} rows: done", flush=True)
    finally:
        con.close()
    # 3. The node's own phases, one node in this process (the fleet has stopped).
    grouped, small, client_group, client_count = node_breakdown(
        fed, federation_file, args.repeat
    )
    print("node phases: done", flush=True)
    # 4. Memory at --rss-rows rows, last, with everything else stopped.
    rss = None
    if args.rss_rows:
        rss = rss_run(root / "rss", args.rss_rows, max(threads))
        print(f"memory at {args.rss_rows:,} rows: done", flush=True)
    return Report(
        args=args,
        series=series,
        secure_failure=failure,
        count_errors=errors,
        rates=rates,
        small_agency=solo.address.agency,
        memory=memory,
        rss=rss,
        grouped=grouped,
        small=small,
        client_group=client_group,
        client_count=client_count,
        agency=site.agency,
        load=(load_start, os.getloadavg()[0]),
        elapsed=time.perf_counter() - began,
    )


def main() -> None:
    args = parse_args()
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    print(
        f"Accord federated queries: {args.nodes} nodes x {args.rows:,} rows (Parquet "
        f"in DuckDB working copies, mTLS, policy gate, decision log), "
        f"{os.cpu_count()} CPUs, {args.node_threads} DuckDB thread(s) per fleet node "
        f"(node.file_threads: the nodes share this machine's cores); medians of "
        f"{args.repeat} interleaved runs after a warm-up",
        flush=True,
    )
    try:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            report = run(args, args.keep)
        else:
            with tempfile.TemporaryDirectory(prefix="bench-queries-") as tmp:
                report = run(args, Path(tmp))
    except KeyboardInterrupt:
        print("interrupted: every node process has been stopped", file=sys.stderr)
        raise SystemExit(130) from None
    print_group_by(report)
    print_breakdown(report)
    print_throughput(report)
    print_node_phases(report)
    print_memory(report)
    print_footer(report)


if __name__ == "__main__":
    main()
