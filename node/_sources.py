"""Data sources a node reads: files through DuckDB, databases through SQLAlchemy."""

from __future__ import annotations

import abc
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.expression import TableClause

from node._config import ColumnSpec, DatasetSpec, FileSource, SqlSource

_DUCK_TYPES = {
    "integer": "BIGINT",
    "float": "DOUBLE",
    "category": "VARCHAR",
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
}


#: What a working copy stores for a category value the dataset does not declare (with
#: ``~`` appended while a declared value equals it). Such rows keep their meaning --
#: they pass ``!=`` filters and never form a group -- as they would with the text.
UNDECLARED = "(undeclared)"


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def undeclared_marker(categories: Sequence[str]) -> str:
    """Return the marker a working copy stores for values outside ``categories``."""
    marker = UNDECLARED
    while marker in categories:
        marker += "~"
    return marker


def typed_column(name: str, column: ColumnSpec, *, enum: bool) -> str:
    """Return the select item giving ``name`` its declared DuckDB type.

    With ``enum``, a category column becomes a DuckDB ``ENUM`` of its declared
    values plus :func:`undeclared_marker`: grouping and comparing small integers
    instead of text makes a group-by several times cheaper. The declared values are
    matched by a hash join (``IN (SELECT ...)``), so building the copy costs the
    same for five categories or thousands.
    """
    if not (enum and column.type == "category" and column.categories):
        return f'CAST("{name}" AS {_DUCK_TYPES[column.type]}) AS "{name}"'
    marker = undeclared_marker(column.categories)
    labels = ", ".join(_sql_text(c) for c in [*column.categories, marker])
    declared = ", ".join(f"({_sql_text(c)})" for c in column.categories)
    text = f'CAST("{name}" AS VARCHAR)'
    return (
        f"CAST(CASE WHEN {text} IS NULL THEN NULL "
        f"WHEN {text} IN (SELECT v FROM (VALUES {declared}) AS declared(v)) "
        f'THEN {text} ELSE {_sql_text(marker)} END AS ENUM({labels})) AS "{name}"'
    )


def cluster_order(columns: Mapping[str, ColumnSpec]) -> list[str]:
    """Return the columns a working copy's rows are sorted by.

    Boolean and category columns, fewest declared values first (declaration order
    breaks ties): the columns filters and group-bys use. Sorted, their values come
    in long runs, so DuckDB stores them run-length encoded and skips whole row
    groups that a filter excludes; a filtered count over 1M rows then costs less
    than half. Answers never depend on row order.
    """
    sizes = {
        name: 2 if column.type == "boolean" else len(column.categories)
        for name, column in columns.items()
        if column.type == "boolean" or (column.type == "category" and column.categories)
    }
    return sorted(sizes, key=lambda name: sizes[name])


class SourceError(Exception):
    """A source cannot be opened or does not match its declared columns."""


class DataSource(abc.ABC):
    """Where a dataset's rows live; runs aggregate statements there."""

    def __init__(self, dataset: DatasetSpec) -> None:
        self.dataset = dataset

    @abc.abstractmethod
    def table(self) -> TableClause:
        """Return the table to select from, with the declared columns."""

    @abc.abstractmethod
    def run(self, statement: sa.Select[Any]) -> list[tuple[Any, ...]]:
        """Execute ``statement`` and return all rows."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


@dataclass(frozen=True)
class WorkingCopies:
    """Where, with how much memory and how many threads DuckDB serves file datasets.

    ``settle_seconds``: a file modified more recently than this may still be being
    written; queries meanwhile use the copy of the previous file.
    """

    folder: Path
    memory_mb: int = 128
    threads: int | None = None  # DuckDB's default: one per core
    settle_seconds: float = 1.0


class DuckDbFileSource(DataSource):
    """A CSV or Parquet file, queried by DuckDB with the declared types.

    With ``copies`` (and the source's ``working_copy`` on), the file is loaded into
    a DuckDB database file of its own under ``copies.folder`` (mode 0600): queries
    then read DuckDB's columnar storage instead of parsing the file again, and
    DuckDB's memory stays under ``copies.memory_mb`` whatever the number of rows.
    Each node process has its own copy (``<dataset>.<pid>.duckdb``), rebuilt when
    the file's size or modification time changes and deleted when the source
    closes; copies left by processes that are gone (a crash) are deleted at
    start-up. Without ``copies``, a view reads the file at every query.
    """

    TABLE = "dataset"

    def __init__(
        self,
        dataset: DatasetSpec,
        source: FileSource,
        copies: WorkingCopies | None = None,
    ) -> None:
        super().__init__(dataset)
        if not source.path.is_file():
            raise SourceError(f"dataset {dataset.id!r}: file not found: {source.path}")
        self._source = source
        self._lock = threading.Lock()
        self._copy: Path | None = None
        self._settle = copies.settle_seconds if copies is not None else 0.0
        threads: dict[str, str | bool | int | float | list[str]] = (
            {"threads": copies.threads} if copies and copies.threads else {}
        )
        if copies is not None and source.working_copy:
            copies.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            _remove_stale_copies(copies.folder, dataset.id)
            self._copy = copies.folder / f"{dataset.id}.{os.getpid()}.duckdb"
            try:
                self._con = duckdb.connect(
                    str(self._copy),
                    config={
                        "memory_limit": f"{copies.memory_mb}MB",
                        "temp_directory": str(self._copy.with_suffix(".tmp")),
                        **threads,
                    },
                )
            except duckdb.Error as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise SourceError(
                    f"dataset {dataset.id!r}: cannot create its working copy "
                    f"{self._copy} ({type(exc).__name__}: {reason})"
                ) from None
            self._copy.chmod(0o600)
        else:
            self._con = duckdb.connect(":memory:", config=threads)
        self._stamp: tuple[int, int] | None = None
        self._table = sa.table(self.TABLE, *(sa.column(n) for n in dataset.columns))
        self._compiled: OrderedDict[int, tuple[sa.Select[Any], str, list[str]]] = (
            OrderedDict()
        )
        try:
            self._load()
        except SourceError:
            self.close()
            raise

    def _file_stamp(self) -> tuple[int, int] | None:
        """Return the file's modification time and size (``None``: unreadable)."""
        try:
            info = self._source.path.stat()
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def _load(self) -> None:
        """Create the view, or (re)build the working copy, and check every column."""
        source, dataset = self._source, self.dataset
        names = list(dataset.columns)
        try:
            stamp = self._file_stamp()
            if stamp is None:
                source.path.stat()  # raises the reason
            if source.kind == "csv":
                header = self._con.read_csv(
                    str(source.path), header=True, delimiter=source.delimiter
                ).columns
                _require(dataset, source.path, names, header)
                rel = self._con.read_csv(
                    str(source.path),
                    header=True,
                    delimiter=source.delimiter,
                    dtype={n: _DUCK_TYPES[c.type] for n, c in dataset.columns.items()},
                )
            else:
                rel = self._con.read_parquet(str(source.path))
                _require(dataset, source.path, names, rel.columns)
            casts = ", ".join(
                typed_column(n, c, enum=self._copy is not None)
                for n, c in dataset.columns.items()
            )
            typed = rel.project(casts)
            if self._copy is None:
                typed.create_view(self.TABLE)
            else:
                typed.create_view("accord_file")
                order = ", ".join(f'"{n}"' for n in cluster_order(dataset.columns))
                self._con.execute(
                    f'CREATE OR REPLACE TABLE "{self.TABLE}" AS '
                    "SELECT * FROM accord_file"
                    + (f" ORDER BY {order}" if order else "")
                )
                self._con.execute("DROP VIEW accord_file")
                self._con.execute("CHECKPOINT")
            # Read every declared column once, so a type mismatch shows now.
            checks = ", ".join(f'count("{n}")' for n in names)
            self._con.execute(f'SELECT {checks} FROM "{self.TABLE}"').fetchall()
        except OSError as exc:
            raise SourceError(
                f"dataset {dataset.id!r}: cannot read {source.path}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        except duckdb.Error as exc:
            raise SourceError(
                f"dataset {dataset.id!r}: {source.path} does not match the declared "
                f"columns: {type(exc).__name__}"
            ) from None
        self._stamp = stamp

    def _fresh(self) -> None:
        """Rebuild the working copy if the file changed since it was made.

        A file still settling (just modified) is not read yet; one that changes
        while it is read is read again at the next query. Both times the previous
        copy answers. A file that stays unreadable fails its queries.
        """
        if self._copy is None:
            return
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        if stamp is not None and time.time() - stamp[0] / 1e9 < self._settle:
            return
        with self._lock:  # one thread rebuilds; the others then find it done
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            try:
                self._load()
            except SourceError:
                if self._file_stamp() != stamp:
                    return  # replaced while being read: the next query retries
                raise

    def table(self) -> TableClause:
        """Return the working copy (or the view over the file)."""
        return self._table

    def _compile(self, statement: sa.Select[Any]) -> tuple[str, list[Any]]:
        """Return the SQL text and positional parameters, compiled once per statement.

        Statements are immutable; the last 256 compiled are kept.
        """
        with self._lock:
            found = self._compiled.get(id(statement))
            if found is not None and found[0] is statement:
                self._compiled.move_to_end(id(statement))
                return found[1], list(found[2])
        compiled = statement.compile(
            dialect=sqlite.dialect(paramstyle="qmark"),
            compile_kwargs={"render_postcompile": True},
        )
        params = [compiled.params[name] for name in compiled.positiontup or ()]
        with self._lock:
            self._compiled[id(statement)] = (statement, str(compiled), params)
            while len(self._compiled) > 256:
                self._compiled.popitem(last=False)
        return str(compiled), params

    def run(self, statement: sa.Select[Any]) -> list[tuple[Any, ...]]:
        """Run the statement with positional bound parameters."""
        self._fresh()
        sql, params = self._compile(statement)
        with self._lock:  # the connection itself is not for concurrent use
            cursor = self._con.cursor()
        try:
            return [tuple(r) for r in cursor.execute(sql, params).fetchall()]
        finally:
            cursor.close()

    def close(self) -> None:
        """Close DuckDB and delete the working copy."""
        self._con.close()
        if self._copy is not None:
            _remove_copy(self._copy)


def _remove_stale_copies(folder: Path, dataset_id: str) -> None:
    """Delete the working copies of ``dataset_id`` whose node process is gone."""
    for path in folder.glob(f"{dataset_id}.*.duckdb"):
        pid = path.suffixes[-2].lstrip(".") if len(path.suffixes) >= 2 else ""
        if pid.isdigit() and not _alive(int(pid)):
            _remove_copy(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_copy(path: Path) -> None:
    """Delete a working copy, its write-ahead log and its spill folder."""
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(path.with_suffix(".tmp"), ignore_errors=True)


class SqlAlchemySource(DataSource):
    """A table in SQLite or PostgreSQL, queried through SQLAlchemy."""

    def __init__(self, dataset: DatasetSpec, source: SqlSource) -> None:
        super().__init__(dataset)
        url = source.url
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        try:
            self._engine = sa.create_engine(url, pool_pre_ping=True)
            inspector = sa.inspect(self._engine)
            present = {
                c["name"]
                for c in inspector.get_columns(source.table, schema=source.db_schema)
            }
        except sa.exc.NoSuchTableError:
            raise SourceError(
                f"dataset {dataset.id!r}: table {source.table!r} not found at "
                f"{_redact(url)}"
            ) from None
        except (sa.exc.SQLAlchemyError, ImportError) as exc:
            raise SourceError(
                f"dataset {dataset.id!r}: cannot open {_redact(url)}: {type(exc).__name__}"
            ) from None
        missing = [n for n in dataset.columns if n not in present]
        if missing:
            raise SourceError(
                f"dataset {dataset.id!r}: table {source.table!r} lacks declared column(s) "
                + ", ".join(missing)
            )
        self._table = sa.table(
            source.table,
            *(sa.column(n) for n in dataset.columns),
            schema=source.db_schema,
        )

    def table(self) -> TableClause:
        """Return the declared table."""
        return self._table

    def run(self, statement: sa.Select[Any]) -> list[tuple[Any, ...]]:
        """Run the statement on a pooled connection."""
        with self._engine.connect() as conn:
            return [tuple(r) for r in conn.execute(statement).all()]

    def close(self) -> None:
        """Dispose of the connection pool."""
        self._engine.dispose()


def _require(
    dataset: DatasetSpec, path: object, declared: list[str], present: list[str]
) -> None:
    missing = [n for n in declared if n not in present]
    if missing:
        raise SourceError(
            f"dataset {dataset.id!r}: {path} lacks declared column(s) "
            + ", ".join(missing)
        )


def open_source(
    dataset: DatasetSpec, copies: WorkingCopies | None = None
) -> DataSource:
    """Open the source declared for ``dataset``.

    File datasets get a DuckDB working copy under ``copies`` (if given and not
    turned off for the dataset); without, they are read in place.

    Raises
    ------
    SourceError
        If it cannot be opened or lacks a declared column.
    """
    if isinstance(dataset.source, FileSource):
        return DuckDbFileSource(dataset, dataset.source, copies)
    return SqlAlchemySource(dataset, dataset.source)


def _redact(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)
