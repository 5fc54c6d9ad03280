"""Data sources a node reads: files through DuckDB, databases through SQLAlchemy."""

from __future__ import annotations

import abc
import threading
from typing import Any

import duckdb
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.expression import TableClause

from node._config import DatasetSpec, FileSource, SqlSource

_DUCK_TYPES = {
    "integer": "BIGINT",
    "float": "DOUBLE",
    "category": "VARCHAR",
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
}


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


class DuckDbFileSource(DataSource):
    """A CSV or Parquet file, queried in place by DuckDB with the declared types."""

    VIEW = "dataset"

    def __init__(self, dataset: DatasetSpec, source: FileSource) -> None:
        super().__init__(dataset)
        if not source.path.is_file():
            raise SourceError(f"dataset {dataset.id!r}: file not found: {source.path}")
        self._con = duckdb.connect(":memory:")
        self._lock = threading.Lock()
        names = list(dataset.columns)
        try:
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
                f'CAST("{n}" AS {_DUCK_TYPES[c.type]}) AS "{n}"'
                for n, c in dataset.columns.items()
            )
            rel.project(casts).create_view(self.VIEW)
            # Read every declared column once, so a type mismatch shows at start-up.
            checks = ", ".join(f'count("{n}")' for n in names)
            self._con.execute(f'SELECT {checks} FROM "{self.VIEW}"').fetchall()
        except duckdb.Error as exc:
            self._con.close()
            raise SourceError(
                f"dataset {dataset.id!r}: {source.path} does not match the declared "
                f"columns: {type(exc).__name__}"
            ) from None
        except SourceError:
            self._con.close()
            raise

    def table(self) -> TableClause:
        """Return the DuckDB view over the file."""
        return sa.table(self.VIEW, *(sa.column(n) for n in self.dataset.columns))

    def run(self, statement: sa.Select[Any]) -> list[tuple[Any, ...]]:
        """Run the statement with positional bound parameters."""
        compiled = statement.compile(
            dialect=sqlite.dialect(paramstyle="qmark"),
            compile_kwargs={"render_postcompile": True},
        )
        params = [compiled.params[name] for name in compiled.positiontup or ()]
        cursor = self._con.cursor()
        try:
            return [tuple(r) for r in cursor.execute(str(compiled), params).fetchall()]
        finally:
            cursor.close()

    def close(self) -> None:
        """Close the DuckDB connection."""
        self._con.close()


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


def open_source(dataset: DatasetSpec) -> DataSource:
    """Open the source declared for ``dataset``.

    Raises
    ------
    SourceError
        If it cannot be opened or lacks a declared column.
    """
    if isinstance(dataset.source, FileSource):
        return DuckDbFileSource(dataset, dataset.source)
    return SqlAlchemySource(dataset, dataset.source)


def _redact(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)
