"""Engines for the node's state database: SQLite tuned for durability, or PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def make_engine(url: str) -> sa.Engine:
    """Create an engine; SQLite gets WAL, synchronous=FULL and a busy timeout.

    ``postgresql://`` URLs use the psycopg (3) driver.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(
        url, connect_args={"timeout": 30, "check_same_thread": False}
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would defer BEGIN; take control of it.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin_immediate(conn: sa.Connection) -> None:
        # Take the write lock at BEGIN, so check-and-update never interleaves.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
