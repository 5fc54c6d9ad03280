"""Engines for the node's state database: SQLite tuned for durability, or PostgreSQL.

The budget ledger and the decision log share the node's state database. With SQLite
only one transaction at a time may write, and a writer that finds the database
locked sleeps in SQLite's busy handler (1, 2, 5, 10... ms) before it retries; under
load those sleeps, not the work, would set the pace. :func:`begin_write` therefore
serialises the writers of one SQLite file within the process on a lock, so they
queue instead of sleeping; other processes still meet the busy handler.

The hot writes -- a budget reservation, a batch of decision records -- go through a
:class:`DirectWriter` instead: the same statements, compiled by SQLAlchemy once and
run on the driver's own connection. SQLAlchemy's execution path (pool checkout,
events, transaction objects, result wrapping) costs about 0.2 ms per transaction under
the GIL, several times the statements themselves. With SQLite, the writer keeps one
connection open for its whole life, used only under the file's lock.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

_write_locks: dict[str, threading.Lock] = {}  # by real path of the SQLite file
_locks_by_name: dict[str | None, contextlib.AbstractContextManager[object]] = {}
_write_locks_guard = threading.Lock()


def _write_lock(engine: sa.Engine) -> contextlib.AbstractContextManager[object]:
    """Return the process-wide lock of a SQLite file (a no-op for other databases)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    lock = _locks_by_name.get(database)
    if lock is not None:
        return lock
    with _write_locks_guard:
        if not database or database == ":memory:":
            lock = contextlib.nullcontext()
        else:
            lock = _write_locks.setdefault(os.path.realpath(database), threading.Lock())
        _locks_by_name[database] = lock
    return lock


def describe_error(exc: sa.exc.SQLAlchemyError) -> str:
    """Describe a database error without the statement or its parameters.

    Parameters
    ----------
    exc : sqlalchemy.exc.SQLAlchemyError
        The error.

    Returns
    -------
    str
        The driver's error class and the first line of its message.
    """
    orig = getattr(exc, "orig", None)
    if orig is not None:
        first = str(orig).strip().splitlines()
        return f"{type(orig).__name__}: {first[0]}" if first else type(orig).__name__
    return type(exc).__name__


@contextlib.contextmanager
def begin_write(engine: sa.Engine) -> Iterator[sa.Connection]:
    """Open a write transaction; commit it on success, roll it back on error.

    Writers of the same SQLite file in this process take turns on a lock first.
    """
    with _write_lock(engine), engine.begin() as conn:
        yield conn


def make_engine(url: str, *, durable_commits: bool = True) -> sa.Engine:
    """Create an engine; SQLite gets WAL, synchronous=FULL and a busy timeout.

    ``postgresql://`` URLs use the psycopg (3) driver.

    Parameters
    ----------
    url : str
        SQLAlchemy URL of the state database.
    durable_commits : bool, optional
        With ``False``, a commit returns before it reaches the disk (SQLite
        ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit=off``); it becomes
        durable with the next durable commit to the same database, since both
        databases write one sequential log (SQLite's WAL, PostgreSQL's WAL) and a
        durable commit flushes all of it up to its own record. For writes that
        another durable commit always follows before anyone relies on them.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        options = {} if durable_commits else {"options": "-c synchronous_commit=off"}
        return sa.create_engine(url, pool_pre_ping=True, connect_args=options)
    synchronous = "FULL" if durable_commits else "NORMAL"
    engine = sa.create_engine(
        url, connect_args={"timeout": 30, "check_same_thread": False}
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would defer BEGIN; take control of it.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin_immediate(conn: sa.Connection) -> None:
        # Take the write lock at BEGIN, so check-and-update never interleaves.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Prepared:
    """A statement compiled once for one dialect, and its parameters in driver form.

    Parameters
    ----------
    statement : sqlalchemy.sql.ClauseElement
        The statement; its bound parameters are given by name at each execution.
    dialect : sqlalchemy.engine.Dialect
        The dialect of the engine it runs on.
    keys : sequence of str, optional
        The columns an ``INSERT`` without ``values`` sets (``column_keys``).
    """

    def __init__(
        self,
        statement: sa.ClauseElement,
        dialect: sa.Dialect,
        keys: Sequence[str] | None = None,
    ) -> None:
        compiled = cast(
            SQLCompiler,
            statement.compile(
                dialect=dialect, column_keys=list(keys) if keys is not None else None
            ),
        )
        self.sql = str(compiled)
        self._order: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if compiled.positional else None
        )
        self._process: dict[str, Any] = {}
        self._fixed: dict[str, Any] = {}  # values the statement carries (literals)
        for bind, name in compiled.bind_names.items():  # name: as written in the SQL
            if not bind.required:
                self._fixed[name] = bind.effective_value
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._process[name] = processor

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        """Return ``values`` (by bind name) as the driver expects them."""
        if self._fixed:
            values = {**self._fixed, **values}
        process = self._process
        if process:
            values = {
                k: (process[k](v) if k in process else v) for k, v in values.items()
            }
        if self._order is None:
            return values
        return tuple(values[name] for name in self._order)


class DirectWriter:
    """Write transactions on the driver's connection, for the hot writes.

    The statements are SQLAlchemy's, compiled once (:meth:`prepare`); each
    transaction takes the SQLite file's write lock like :func:`begin_write`, opens
    with ``BEGIN IMMEDIATE``, and commits or rolls back. A driver error surfaces as
    SQLAlchemy's own exception (:class:`sqlalchemy.exc.DBAPIError` and subclasses),
    so callers handle both paths alike.

    With SQLite one connection is kept open and reused; with PostgreSQL each
    transaction checks one out of the engine's pool.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        An engine from :func:`make_engine` (its connect hook sets the pragmas).
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect
        self._sqlite = engine.dialect.name == "sqlite"
        self._lock = _write_lock(engine)
        if self._sqlite and isinstance(self._lock, contextlib.nullcontext):
            # In-memory SQLite has no file lock, but the kept connection is shared.
            self._lock = threading.Lock()
        self._held: Any = None  # SQLite: the pool's connection, kept checked out

    def prepare(
        self, statement: sa.ClauseElement, keys: Sequence[str] | None = None
    ) -> Prepared:
        """Compile ``statement`` for this writer's database."""
        return Prepared(statement, self._dialect, keys)

    def _wrap(self, exc: Exception) -> sa.exc.StatementError:
        return sa.exc.DBAPIError.instance(
            None, None, exc, self._dialect.loaded_dbapi.Error
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """Yield a DBAPI cursor inside a write transaction; commit on success.

        Raises
        ------
        sqlalchemy.exc.StatementError
            If the driver fails (a :class:`~sqlalchemy.exc.DBAPIError` subclass); the
            transaction is rolled back. An exception raised by the caller's block
            rolls back too and propagates unchanged.
        """
        error = self._dialect.loaded_dbapi.Error
        with self._lock:
            conn: Any = None
            try:
                conn = self._held if self._held is not None else self._connect()
                cursor = conn.cursor()
            except error as exc:
                self._release(conn)
                raise self._wrap(exc) from exc
            try:
                if self._sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                if self._sqlite:
                    cursor.execute("COMMIT")
                else:
                    conn.commit()
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    cursor.close()
                self._abort(conn)
                if isinstance(exc, error):
                    raise self._wrap(exc) from exc
                raise
            else:
                with contextlib.suppress(Exception):
                    cursor.close()
            finally:
                self._release(conn)

    def _release(self, conn: Any) -> None:
        """PostgreSQL: give the connection back to the pool (SQLite keeps its own)."""
        if conn is not None and not self._sqlite:
            with contextlib.suppress(Exception):
                conn.close()

    def _connect(self) -> Any:
        conn = self._engine.raw_connection()
        if self._sqlite:
            self._held = conn
        return conn

    def _abort(self, conn: Any) -> None:
        """Roll back; a connection that cannot roll back is dropped."""
        try:
            if self._sqlite:
                if not conn.driver_connection.in_transaction:
                    return
                conn.driver_connection.execute("ROLLBACK")
            else:
                conn.rollback()
        except Exception:  # the connection is unusable: replace it
            if conn is self._held:
                self._held = None
            conn.invalidate()

    def close(self) -> None:
        """Return the kept connection to the pool (the writer may be used again)."""
        with self._lock:
            if self._held is not None:
                self._held.close()
                self._held = None
