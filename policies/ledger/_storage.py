"""Engines for the node's state database: SQLite tuned for durability, or PostgreSQL.

The budget ledger and the decision log share the node's state database. With SQLite
only one transaction at a time may write, and a writer that finds the database
locked sleeps in SQLite's busy handler (1, 2, 5, 10... ms) before it retries; under
load those sleeps, not the work, would set the pace. :func:`begin_write` therefore
serialises the writers of one SQLite file within the process on a lock, so they
queue instead of sleeping; other processes still meet the busy handler.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

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
