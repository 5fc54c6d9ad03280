"""Every source kind gives the same answers: CSV, Parquet, SQLite, PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
import tomli_w

import node
from demo import PROFILES, SCHEMA, generate
from demo._provision import _write_data
from node import privacy
from node._config import DatasetSpec
from node._query import Access, Aggregation, Binning, Filter, Query
from node._sources import (
    SourceError,
    WorkingCopies,
    cluster_order,
    open_source,
    undeclared_marker,
)
from node._statistics import (
    StatementCache,
    build_statistics_select,
    encodings,
    exact_vectors,
    layout,
    requested,
)

TABLE = generate(PROFILES["agency-b"], seed=11).slice(0, 700)

QUERIES = [
    Query(
        "q",
        "incidents",
        (
            Aggregation("count", None),
            Aggregation("mean", "damage_eur"),
            Aggregation("sum", "suspects"),
        ),
        (),
        ("offence",),
        Access(),
    ),
    Query(
        "q",
        "incidents",
        (Aggregation("count", "damage_eur"),),
        (
            Filter("severity", "between", (2, 4)),
            Filter("region", "in", ("east", "west")),
        ),
        ("cross_border",),
        Access(),
    ),
    Query(
        "q",
        "incidents",
        (Aggregation("sum", "damage_eur"),),
        (Filter("month", "=", ("2025-03",)), Filter("cross_border", "=", (True,))),
        (),
        Access(),
    ),
]


def spec_for(source: dict[str, Any]) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {"id": "incidents", "source": source, "columns": SCHEMA}
    )


def written(folder: Path, table: pa.Table, kind: str) -> dict[str, Any]:
    """Write ``table`` under ``folder`` as ``kind``; return its absolute source."""
    source: dict[str, Any] = _write_data(folder / "data", table, kind)  # type: ignore[arg-type]
    if "path" in source:
        source["path"] = str(folder / source["path"])
    else:
        source["url"] = f"sqlite:///{folder / source['url'].removeprefix('sqlite:///')}"
    return source


def plan_of(query: Query, spec: DatasetSpec) -> Any:
    """The exact-answer release plan of ``query`` (rho 1, one row per person)."""
    return privacy.plan_release(
        requested(query),
        groups=len(layout(query, spec).keys),
        max_rows_per_person=1,
        columns=encodings(query, spec, {}),
        rho=1.0,
    )


def vectors_of(source: Any, query: Query, spec: DatasetSpec) -> dict[str, list[int]]:
    """Run ``query`` at ``source``; return its exact integer vectors."""
    plan = plan_of(query, spec)
    rows = source.run(build_statistics_select(query, spec, source.table(), plan))
    return exact_vectors(query, spec, layout(query, spec), plan, rows)


@pytest.fixture
def pg_table(postgres_url: str) -> Iterator[str]:
    name = f"incidents_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_url)
    meta = sa.MetaData()
    columns = {
        "incident_id": sa.Text,
        "region": sa.Text,
        "offence": sa.Text,
        "month": sa.Text,
        "severity": sa.BigInteger,
        "suspects": sa.BigInteger,
        "damage_eur": sa.Float,
        "cross_border": sa.Boolean,
    }
    table = sa.Table(name, meta, *(sa.Column(c, t) for c, t in columns.items()))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), TABLE.to_pylist())
    yield name
    meta.drop_all(engine)
    engine.dispose()


def results(spec: DatasetSpec, copies: WorkingCopies | None = None) -> list[Any]:
    """Exact integer statistics of every query, as the node computes them."""
    source = open_source(spec, copies)
    try:
        return [
            (layout(query, spec).keys, vectors_of(source, query, spec))
            for query in QUERIES
        ]
    finally:
        source.close()


def test_file_and_sqlite_sources_agree(tmp_path: Path) -> None:
    answers = []
    copies = WorkingCopies(tmp_path / "work", memory_mb=64)
    for kind in ("csv", "parquet", "sqlite"):
        source = written(tmp_path / kind, TABLE, kind)
        if "path" in source:
            answers.append(results(spec_for(source), copies))  # a working copy
        answers.append(results(spec_for(source)))  # files read in place
    assert all(answer == answers[0] for answer in answers)
    assert len(answers) == 5
    keys, vectors = answers[0][0]
    counts = dict(zip(keys, vectors["count"], strict=True))
    offences = TABLE.column("offence").to_pylist()
    assert counts == {(o,): offences.count(o) for o in SCHEMA["offence"]["categories"]}  # type: ignore[index]
    suspects = dict(zip(keys, vectors["sum(suspects)"], strict=True))
    rows = TABLE.to_pylist()
    for (offence,), total in suspects.items():
        assert total == sum(r["suspects"] for r in rows if r["offence"] == offence)


@pytest.mark.postgres
def test_postgresql_agrees_with_duckdb(
    tmp_path: Path, postgres_url: str, pg_table: str
) -> None:
    assert results(
        spec_for({"kind": "sql", "url": postgres_url, "table": pg_table})
    ) == results(spec_for(written(tmp_path, TABLE, "parquet")))


@pytest.mark.postgres
def test_a_node_serves_a_postgresql_table(
    federation: Any, postgres_url: str, pg_table: str, tmp_path: Path
) -> None:
    site = next(s for s in federation.fed.sites if s.agency == "agency-b")
    config = {
        "node": {"agency": "agency-b", "listen": "127.0.0.1:0"},
        "tls": {
            k: str(site.folder / "pki" / f)
            for k, f in (("ca", "ca.crt"), ("cert", "node.crt"), ("key", "node.key"))
        },
        "policy": {"file": str(site.policy)},
        "datasets": [
            {
                "id": "incidents",
                "source": {"kind": "sql", "url": postgres_url, "table": pg_table},
                "columns": SCHEMA,
            }
        ],
    }
    path = tmp_path / "node.toml"
    path.write_text(tomli_w.dumps(config))
    server = node.create_server(node.load_node_config(path))
    server.start()
    try:
        fed_file = federation.fed.write_federation_file(
            {"agency-b": server.address}, path=tmp_path / "f.toml"
        )
        import coordinator

        spec = coordinator.QuerySpec(
            "incidents",
            (
                coordinator.Aggregation("count"),
                coordinator.Aggregation("mean", "severity"),
            ),
            group_by=("region",),
            purpose="statistics",
            exact=True,
        )
        with coordinator.Coordinator.from_config(
            coordinator.load_federation(fed_file)
        ) as hub:
            result = hub.query(spec)
    finally:
        server.stop(0)
    assert result.contributors == ("agency-b/node",)
    regions = TABLE.column("region").to_pylist()
    got = {g.key[0]: g.values[0].value for g in result.groups}
    assert got == {r: regions.count(r) for r in SCHEMA["region"]["categories"]}  # type: ignore[index]


def test_a_file_lacking_a_declared_column_is_refused(tmp_path: Path) -> None:
    source = written(tmp_path, TABLE.drop_columns(["suspects"]), "csv")
    with pytest.raises(SourceError, match="suspects"):
        open_source(spec_for(source))


def test_a_csv_with_a_wrongly_typed_column_is_refused(tmp_path: Path) -> None:
    broken = TABLE.set_column(
        TABLE.schema.get_field_index("severity"),
        "severity",
        pa.array(["high"] * TABLE.num_rows),
    )
    source = written(tmp_path, broken, "csv")
    with pytest.raises(SourceError, match="does not match the declared columns"):
        open_source(spec_for(source))


def test_a_missing_table_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    sa.create_engine(url).dispose()
    with pytest.raises(SourceError, match="table 'incidents' not found"):
        open_source(spec_for({"kind": "sql", "url": url, "table": "incidents"}))


def _count(source: Any, spec: DatasetSpec) -> int:
    return sum(vectors_of(source, QUERIES[0], spec)["count"])


def _copies(
    tmp_path: Path, threads: int | None = None, settle: float = 0.0
) -> WorkingCopies:
    return WorkingCopies(tmp_path / "work", 64, threads, settle_seconds=settle)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_working_copy_follows_its_file_and_is_deleted_on_close(
    tmp_path: Path, kind: str
) -> None:
    spec = spec_for(written(tmp_path, TABLE, kind))
    opened = open_source(spec, _copies(tmp_path))
    copy = tmp_path / "work" / f"incidents.{os.getpid()}.duckdb"
    try:
        assert copy.is_file()
        assert copy.stat().st_mode & 0o777 == 0o600
        assert _count(opened, spec) == TABLE.num_rows
        # The agency replaces its file: the next query sees the new rows.
        written(tmp_path, TABLE.slice(0, 123), kind)
        assert _count(opened, spec) == 123
    finally:
        opened.close()
    assert not copy.exists()
    assert list((tmp_path / "work").iterdir()) == []


def test_a_working_copy_is_off_when_the_dataset_says_so(tmp_path: Path) -> None:
    spec = spec_for({**written(tmp_path, TABLE, "parquet"), "working_copy": False})
    opened = open_source(spec, _copies(tmp_path))
    try:
        assert not (tmp_path / "work").exists()
        assert _count(opened, spec) == TABLE.num_rows
    finally:
        opened.close()


def test_a_file_replaced_by_a_broken_one_fails_queries_until_mended(
    tmp_path: Path,
) -> None:
    spec = spec_for(written(tmp_path, TABLE, "csv"))
    opened = open_source(spec, _copies(tmp_path))
    try:
        written(tmp_path, TABLE.drop_columns(["suspects"]), "csv")
        with pytest.raises(SourceError, match="suspects"):
            _count(opened, spec)
        Path(spec.source.path).unlink()  # type: ignore[union-attr]
        with pytest.raises(
            SourceError, match=r"cannot read .*incidents\.csv: No such file"
        ):
            _count(opened, spec)
        written(tmp_path, TABLE.slice(0, 50), "csv")
        assert _count(opened, spec) == 50
    finally:
        opened.close()


def test_equal_queries_share_one_statement_and_other_values_do_not(
    tmp_path: Path,
) -> None:
    spec = spec_for(written(tmp_path, TABLE, "parquet"))
    opened = open_source(spec, _copies(tmp_path))
    cache = StatementCache(capacity=2)

    def count_where(month: str) -> tuple[Any, int]:
        query = Query(
            "q",
            "incidents",
            (Aggregation("count", None),),
            (Filter("month", "=", (month,)),),
            (),
            Access(),
        )
        plan = plan_of(query, spec)
        stmt = cache.select(query, spec, opened.table(), plan)
        rows = opened.run(stmt)
        count = exact_vectors(query, spec, layout(query, spec), plan, rows)["count"]
        return stmt, count[0]

    months = TABLE.column("month").to_pylist()
    try:
        first, march = count_where("2025-03")
        again, march_again = count_where("2025-03")
        other, april = count_where("2025-04")
        assert again is first and march_again == march == months.count("2025-03") > 0
        assert other is not first and april == months.count("2025-04")
        count_where("2025-05")  # capacity 2: March is forgotten
        assert count_where("2025-03")[0] is not first
    finally:
        opened.close()


def _odd_regions(
    folder: Path, kind: str, undeclared: str
) -> tuple[list[Any], DatasetSpec]:
    """Write TABLE with every 7th region ``undeclared`` and every 11th missing."""
    odd = [
        undeclared if i % 7 == 0 else None if i % 11 == 0 else r
        for i, r in enumerate(TABLE.column("region").to_pylist())
    ]
    table = TABLE.set_column(
        TABLE.schema.get_field_index("region"), "region", pa.array(odd, pa.string())
    )
    return odd, spec_for(written(folder, table, kind))


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_rows_outside_the_declared_domain_never_form_a_group(
    tmp_path: Path, kind: str
) -> None:
    """Unknown and missing group values are dropped, not released or merged."""
    odd, spec = _odd_regions(tmp_path, kind, "atlantis")
    query = Query(
        "q", "incidents", (Aggregation("count", None),), (), ("region",), Access()
    )
    plan = plan_of(query, spec)
    opened = open_source(spec, _copies(tmp_path))
    try:
        rows = opened.run(build_statistics_select(query, spec, opened.table(), plan))
    finally:
        opened.close()
    assert {row[0] for row in rows} <= set(SCHEMA["region"]["categories"])  # type: ignore[index]
    groups = layout(query, spec)
    counts = exact_vectors(query, spec, groups, plan, rows)["count"]
    assert counts == [odd.count(key[0]) for key in groups.keys]
    assert sum(counts) == len(odd) - odd.count("atlantis") - odd.count(None)


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_category_values_keep_their_meaning_in_a_working_copy(
    tmp_path: Path, kind: str
) -> None:
    """Declared categories are stored as an ENUM; undeclared values still count.

    A working copy and the file read in place give the same answers, and both equal
    the truth: an undeclared value passes ``!=`` and never forms a group; a missing
    one matches no comparison.
    """
    odd, spec = _odd_regions(tmp_path, kind, "it's atlantis")
    count = (Aggregation("count", None),)
    queries = {
        "by region": Query("q", "incidents", count, (), ("region",), Access()),
        "!= north": Query(
            "q", "incidents", count, (Filter("region", "!=", ("north",)),), (), Access()
        ),
        "in": Query(
            "q",
            "incidents",
            count,
            (Filter("region", "in", ("north", "east")),),
            (),
            Access(),
        ),
        "= west, by offence": Query(
            "q",
            "incidents",
            count,
            (Filter("region", "=", ("west",)),),
            ("offence",),
            Access(),
        ),
    }
    answers = []
    for copies in (_copies(tmp_path), None):
        opened = open_source(spec, copies)
        try:
            answers.append(
                {
                    name: vectors_of(opened, query, spec)["count"]
                    for name, query in queries.items()
                }
            )
        finally:
            opened.close()
    copy, in_place = answers
    assert copy == in_place
    keys = layout(queries["by region"], spec).keys
    assert copy["by region"] == [odd.count(key[0]) for key in keys]
    assert copy["!= north"] == [sum(r is not None and r != "north" for r in odd)]
    assert copy["in"] == [sum(r in ("north", "east") for r in odd)]
    offences = TABLE.column("offence").to_pylist()
    assert copy["= west, by offence"] == [
        sum(r == "west" and o == key[0] for r, o in zip(odd, offences, strict=True))
        for key in layout(queries["= west, by offence"], spec).keys
    ]


def test_a_working_copy_stores_declared_categories_as_an_enum(tmp_path: Path) -> None:
    """Quotes and a category equal to the marker survive; the column is an ENUM."""
    declared = [*SCHEMA["region"]["categories"], "o'hare", "(undeclared)"]  # type: ignore[index]
    regions = TABLE.column("region").to_pylist()
    values = [
        "o'hare"
        if i % 5 == 0
        else "(undeclared)"
        if i % 6 == 0
        else "it's atlantis"
        if i % 7 == 0
        else r
        for i, r in enumerate(regions)
    ]
    table = TABLE.set_column(
        TABLE.schema.get_field_index("region"), "region", pa.array(values, pa.string())
    )
    columns = {**SCHEMA, "region": {**SCHEMA["region"], "categories": declared}}
    spec = DatasetSpec.model_validate(
        {
            "id": "incidents",
            "source": written(tmp_path, table, "parquet"),
            "columns": columns,
        }
    )
    query = Query(
        "q", "incidents", (Aggregation("count", None),), (), ("region",), Access()
    )
    opened = open_source(spec, _copies(tmp_path))
    try:
        counts = vectors_of(opened, query, spec)["count"]
        [(kind,)] = opened._con.execute(  # the working copy's own storage
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'dataset' AND column_name = 'region'"
        ).fetchall()
        markers = opened._con.execute(
            "SELECT count(*) FROM dataset WHERE CAST(region AS VARCHAR) = ?",
            [undeclared_marker(declared)],
        ).fetchall()
    finally:
        opened.close()
    assert kind.startswith("ENUM(")
    assert undeclared_marker(declared) == "(undeclared)~"
    assert markers == [(values.count("it's atlantis"),)]
    keys = layout(query, spec).keys
    assert counts == [values.count(key[0]) for key in keys]
    assert counts[declared.index("(undeclared)")] > 0


def test_a_working_copy_is_sorted_by_its_low_cardinality_columns(
    tmp_path: Path,
) -> None:
    """Booleans first, then categories by domain size; answers are unchanged."""
    spec = spec_for(written(tmp_path, TABLE, "csv"))
    order = cluster_order(spec.columns)
    assert order == ["cross_border", "region", "offence", "month"]
    opened = open_source(spec, _copies(tmp_path))
    try:
        listed = ", ".join(f'"{n}"' for n in order)
        rows = opened._con.execute(  # the working copy in storage order
            f"SELECT {listed} FROM dataset ORDER BY rowid"
        ).fetchall()
        copied = results(spec, _copies(tmp_path / "again"))
    finally:
        opened.close()
    # Each column sorted within the one before, categories in declared order.
    ranks = [
        {v: i for i, v in enumerate(spec.columns[n].categories)} if i else None
        for i, n in enumerate(order)
    ]
    keys = [
        tuple(
            v if rank is None else rank[v] for v, rank in zip(row, ranks, strict=True)
        )
        for row in rows
    ]
    assert keys == sorted(keys)
    assert copied == results(spec)  # the same answers as the file read in place


def _bin_of(value: float, edges: tuple[float, ...]) -> int:
    """The public bin of ``value``: ``[e_i, e_i+1)``, the last one closed."""
    return next(
        (i for i in range(len(edges) - 2) if value < edges[i + 1]), len(edges) - 2
    )


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_two_histograms_and_binned_groups_equal_a_direct_count(
    tmp_path: Path, kind: str
) -> None:
    """One histogram joins the GROUP BY, the other is summed per bin: both exact."""
    spec = spec_for(written(tmp_path, TABLE, kind))
    suspects_edges = (0.0, 1.0, 20.0)
    query = Query(
        "q",
        "incidents",
        (
            Aggregation("count", None),
            Aggregation("histogram", "damage_eur", (0.0, 500.0, 2500.0, 1e6)),
            Aggregation("sum", "suspects"),
            Aggregation("histogram", "severity", (1.0, 2.0, 3.0, 5.0)),
        ),
        (Filter("cross_border", "=", (False,)),),
        ("region",),
        Access(),
        binned=(Binning("suspects", suspects_edges),),
    )
    plan = plan_of(query, spec)
    opened = open_source(spec, _copies(tmp_path))
    try:
        got = vectors_of(opened, query, spec)
    finally:
        opened.close()
    groups = layout(query, spec)
    expected = {v.name: [0] * v.length for v in plan.vectors}
    position = {key: i for i, key in enumerate(groups.keys)}
    for row in TABLE.to_pylist():
        if row["cross_border"]:
            continue
        label = ("[0, 1)", "[1, 20]")[_bin_of(row["suspects"], suspects_edges)]
        g = position[(row["region"], label)]
        expected["count"][g] += 1
        expected["sum(suspects)"][g] += row["suspects"]
        for vector in plan.vectors:
            if vector.kind == "histogram":
                assert vector.edges is not None and vector.column is not None
                cells = len(vector.edges) - 1
                b = _bin_of(row[vector.column], vector.edges)
                expected[vector.name][g * cells + b] += 1
    assert got == expected
    assert sum(expected["count"]) > 50


@pytest.mark.parametrize("working_copy", [True, False])
def test_file_datasets_use_the_configured_duckdb_threads(
    tmp_path: Path, working_copy: bool
) -> None:
    source = {**written(tmp_path, TABLE, "parquet"), "working_copy": working_copy}
    spec = spec_for(source)
    for threads in (1, 3):
        opened = open_source(spec, _copies(tmp_path, threads))
        try:
            setting = opened.run(sa.select(sa.func.current_setting("threads")))
        finally:
            opened.close()
        assert setting == [(threads,)]


_HOLD_COPY = """
import sys
from pathlib import Path
from node._config import DatasetSpec
from node._sources import WorkingCopies, open_source
spec = DatasetSpec.model_validate_json(sys.argv[1])
source = open_source(spec, WorkingCopies(Path(sys.argv[2]), memory_mb=64))
print("open", flush=True)
sys.stdin.read()
source.close()
"""


def test_node_processes_sharing_a_work_dir_keep_copies_of_their_own(
    tmp_path: Path,
) -> None:
    spec = spec_for(written(tmp_path, TABLE, "parquet"))
    work = tmp_path / "work"
    other = subprocess.Popen(
        [sys.executable, "-c", _HOLD_COPY, spec.model_dump_json(), str(work)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline() == "open\n"
        mine = open_source(spec, _copies(tmp_path))
        try:
            assert _count(mine, spec) == TABLE.num_rows
            assert sorted(p.name for p in work.glob("*.duckdb")) == sorted(
                f"incidents.{pid}.duckdb" for pid in (os.getpid(), other.pid)
            )
        finally:
            mine.close()
        assert [p.name for p in work.glob("*.duckdb")] == [
            f"incidents.{other.pid}.duckdb"
        ]
    finally:
        other.communicate("", timeout=30)
    assert other.returncode == 0
    assert list(work.glob("*.duckdb")) == []


def test_copies_left_by_a_crashed_node_are_deleted_at_start(tmp_path: Path) -> None:
    spec = spec_for(written(tmp_path, TABLE, "parquet"))
    work = tmp_path / "work"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    work.mkdir()
    leftover = work / f"incidents.{gone.pid}.duckdb"
    leftover.write_bytes(b"rows of a node that crashed")
    (work / f"incidents.{gone.pid}.tmp").mkdir()
    opened = open_source(spec, _copies(tmp_path))
    try:
        assert not leftover.exists()
        assert not (work / f"incidents.{gone.pid}.tmp").exists()
        assert _count(opened, spec) == TABLE.num_rows
    finally:
        opened.close()
    assert list(work.iterdir()) == []


def test_queries_racing_a_file_replacement_see_the_old_rows_or_the_new(
    tmp_path: Path,
) -> None:
    """Files rewritten in place under running queries: no query fails or mixes."""
    spec = spec_for(written(tmp_path, TABLE, "parquet"))
    opened = open_source(spec, _copies(tmp_path, threads=1, settle=0.1))
    sizes = {TABLE.num_rows, 321, 123}
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def query() -> None:
        while not stop.is_set():
            try:
                seen.append(_count(opened, spec))
            except BaseException as exc:  # reported below
                errors.append(exc)
                return

    workers = [threading.Thread(target=query) for _ in range(4)]
    try:
        for worker in workers:
            worker.start()
        for rows in (321, 123, 321):
            time.sleep(0.4)
            written(tmp_path, TABLE.slice(0, rows), "parquet")
        time.sleep(0.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        opened.close()
    assert errors == []
    assert set(seen) <= sizes
    assert 123 in seen and seen[-1] == 321


def test_a_file_still_settling_is_answered_from_the_previous_copy(
    tmp_path: Path,
) -> None:
    spec = spec_for(written(tmp_path, TABLE, "csv"))
    opened = open_source(spec, _copies(tmp_path, settle=30.0))
    try:
        written(tmp_path, TABLE.slice(0, 10), "csv")  # just written: may be partial
        assert _count(opened, spec) == TABLE.num_rows
        settled = time.time() - 60
        os.utime(spec.source.path, (settled, settled))  # type: ignore[union-attr]
        assert _count(opened, spec) == 10
    finally:
        opened.close()
