"""The decision log in SQL: SQLite (WAL, ``synchronous=FULL``) or PostgreSQL.

Three tables: ``audit_log`` (one row: origin and verifier key), ``audit_records``
(``seq`` primary key, the canonical JSON, chain and leaf hashes, and columns copied
out of the record for filtering: ``time_us`` -- microseconds since the Unix epoch,
UTC -- ``requester``, ``purpose``, ``decision``, ``dataset``) and
``audit_checkpoints`` (``tree_size`` primary key, root hash, signed note,
``time_us``). A batch of records and its checkpoint go in one transaction
(SQLite: ``BEGIN IMMEDIATE``), so a crash leaves all of a batch or none of it.

The writer uses :func:`policies.ledger.make_engine`, and commits batches through a
:class:`policies.ledger.DirectWriter` (so it takes turns with the budget ledger on the
same SQLite file instead of sleeping in the busy handler, and skips SQLAlchemy's
per-statement machinery on the hot path); readers use a second engine
whose transactions do not take SQLite's write lock, so reading never waits for a
commit. With SQLite, the writer's connection does not checkpoint the WAL into the
database itself (that would add a second fsync to an unlucky commit, every few
hundred commits, and show in the p99 latency): a background thread runs a
``PASSIVE`` WAL checkpoint every half second after commits, beside the writer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from policies.ledger import DirectWriter, begin_write, describe_error, make_engine

from ._logerrors import LogMissing, LogUnavailable
from ._store import (
    LogInfo,
    LogStore,
    RecordFilter,
    StoredCheckpoint,
    StoredRecord,
    from_micros,
    to_micros,
)

__all__ = ["SqlLogStore"]

_log = logging.getLogger("accord.auditlog")

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: the rowid
_CHUNK = 50_000

metadata = sa.MetaData()

log_table = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("verifier_key", sa.Text, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

records_table = sa.Table(
    "audit_records",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),
    sa.Column("time_us", sa.BigInteger, nullable=False),
    sa.Column("requester", sa.Text, nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("dataset", sa.Text, nullable=False),
    sa.Column("canonical_json", sa.Text, nullable=False),
    sa.Column("chain_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
    sa.Index("ix_audit_records_time", "time_us"),
    sa.Index("ix_audit_records_requester", "requester", "seq"),
)

checkpoints_table = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("tree_size", _SEQ, primary_key=True, autoincrement=False),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("time_us", sa.BigInteger, nullable=False),
)


_LAST_SEQ = sa.select(sa.func.coalesce(sa.func.max(records_table.c.seq), -1))
_RECORD_KEYS = tuple(c.name for c in records_table.c)
_CHECKPOINT_KEYS = tuple(c.name for c in checkpoints_table.c)


def _read_engine(url: str) -> sa.Engine:
    """Return an engine for readers: SQLite without ``BEGIN IMMEDIATE``."""
    if not url.startswith("sqlite"):
        return make_engine(url)
    return sa.create_engine(
        url, connect_args={"timeout": 30, "check_same_thread": False}
    )


class _WalCheckpointer:
    """Copies SQLite's WAL into the database in the background, off the commit path."""

    def __init__(self, engine: sa.Engine, interval: float = 0.5) -> None:
        self._engine = engine
        self._interval = interval
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="decision-log WAL checkpoint", daemon=True
        )
        self._thread.start()

    def note_commit(self) -> None:
        self._dirty.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if not self._dirty.is_set():
                continue
            self._dirty.clear()
            try:
                with self._engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except sa.exc.SQLAlchemyError as exc:
                _log.warning(
                    "decision log WAL checkpoint failed: %s", describe_error(exc)
                )

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _no_autocheckpoint(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _record_row(record: StoredRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "time_us": to_micros(record.time),
        "requester": record.requester,
        "purpose": record.purpose,
        "decision": record.decision,
        "dataset": record.dataset,
        "canonical_json": record.canonical_json,
        "chain_hash": record.chain_hash,
        "leaf_hash": record.leaf_hash,
    }


def _record_of(row: sa.Row[Any]) -> StoredRecord:
    return StoredRecord(
        seq=row.seq,
        time=from_micros(row.time_us),
        requester=row.requester,
        purpose=row.purpose,
        decision=row.decision,
        dataset=row.dataset,
        canonical_json=row.canonical_json,
        chain_hash=bytes(row.chain_hash),
        leaf_hash=bytes(row.leaf_hash),
    )


def _checkpoint_of(row: sa.Row[Any]) -> StoredCheckpoint:
    return StoredCheckpoint(
        tree_size=row.tree_size,
        root_hash=bytes(row.root_hash),
        note=row.note,
        time=from_micros(row.time_us),
    )


class SqlLogStore(LogStore):
    """A decision log's storage in SQLite or PostgreSQL.

    Parameters
    ----------
    url : str
        SQLAlchemy URL: ``sqlite:///path/to/audit.db`` or ``postgresql://...``
        (driven by psycopg). In-memory SQLite is refused: use
        :class:`~policies.auditlog.MemoryLogStore`.
    create : bool, optional
        Create the tables if missing (the writer does). With ``False`` (readers),
        a missing database or tables is an error, and nothing is created.

    Raises
    ------
    LogUnavailable
        If the database cannot be opened, or (``create=False``) holds no log.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        self._url = url
        if url.startswith("sqlite"):
            database = sa.engine.make_url(url).database
            if not database or database == ":memory:":
                raise LogUnavailable(
                    "an in-memory SQLite URL would lose the log; give a file "
                    "(sqlite:///path/audit.db)"
                )
            if not create and not Path(database).is_file():
                raise LogMissing(f"no decision log database at {database}")
        try:
            self._reader = _read_engine(url)
            self._writer: sa.Engine | None = None
            self._direct: DirectWriter | None = None
            self._checkpointer: _WalCheckpointer | None = None
            if create:
                self._writer = make_engine(url)
                if url.startswith("sqlite"):
                    sa.event.listen(self._writer, "connect", _no_autocheckpoint)
                metadata.create_all(self._writer)
                self._direct = DirectWriter(self._writer)
                self._last_seq = self._direct.prepare(_LAST_SEQ)
                self._insert_record = self._direct.prepare(
                    sa.insert(records_table), _RECORD_KEYS
                )
                self._insert_checkpoint = self._direct.prepare(
                    sa.insert(checkpoints_table), _CHECKPOINT_KEYS
                )
                if url.startswith("sqlite"):
                    self._checkpointer = _WalCheckpointer(self._reader)
            elif not sa.inspect(self._reader).has_table("audit_records"):
                raise LogMissing(
                    f"{self._describe()} holds no decision log (no audit_records table)"
                )
        except sa.exc.SQLAlchemyError as exc:
            raise LogUnavailable(
                f"cannot open the decision log at {self._describe()}: {describe_error(exc)}"
            ) from None

    def _describe(self) -> str:
        return sa.engine.make_url(self._url).render_as_string(hide_password=True)

    def _write_engine(self) -> sa.Engine:
        if self._writer is None:
            raise LogUnavailable("this decision log was opened read-only")
        return self._writer

    def _read(self, stmt: sa.Executable) -> list[sa.Row[Any]]:
        try:
            with self._reader.connect() as conn:
                return list(conn.execute(stmt))
        except sa.exc.SQLAlchemyError as exc:
            raise LogUnavailable(
                f"cannot read the decision log: {describe_error(exc)}"
            ) from None

    def read_info(self) -> LogInfo | None:
        """Return the log's origin and verifier key, or ``None`` if new."""
        rows = self._read(sa.select(log_table).where(log_table.c.id == 1))
        if not rows:
            return None
        row = rows[0]
        return LogInfo(row.origin, row.verifier_key, from_micros(row.created_us))

    def write_info(self, info: LogInfo) -> None:
        """Record the log's origin and verifier key."""
        try:
            with begin_write(self._write_engine()) as conn:
                conn.execute(
                    sa.insert(log_table).values(
                        id=1,
                        origin=info.origin,
                        verifier_key=info.verifier_key,
                        created_us=to_micros(info.created),
                    )
                )
        except sa.exc.SQLAlchemyError as exc:
            raise LogUnavailable(
                f"cannot initialise the decision log: {describe_error(exc)}"
            ) from None

    def leaf_hashes(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """Yield ``(seq, leaf hash)`` from ``start`` on, in chunks."""
        after = start - 1
        t = records_table
        while True:
            rows = self._read(
                sa.select(t.c.seq, t.c.leaf_hash)
                .where(t.c.seq > after)
                .order_by(t.c.seq)
                .limit(_CHUNK)
            )
            for row in rows:
                yield row.seq, bytes(row.leaf_hash)
            if len(rows) < _CHUNK:
                return
            after = rows[-1][0]

    def record(self, seq: int) -> StoredRecord | None:
        """Return record ``seq``, or ``None``."""
        rows = self._read(sa.select(records_table).where(records_table.c.seq == seq))
        return _record_of(rows[0]) if rows else None

    def last_record(self) -> StoredRecord | None:
        """Return the record with the highest seq, or ``None``."""
        rows = self._read(
            sa.select(records_table).order_by(records_table.c.seq.desc()).limit(1)
        )
        return _record_of(rows[0]) if rows else None

    def append_batch(
        self,
        records: Sequence[StoredRecord],
        checkpoint: StoredCheckpoint | None,
        *,
        expected_size: int,
    ) -> None:
        """Store records and a checkpoint in one transaction."""
        self._write_engine()  # refuses a read-only log
        assert self._direct is not None
        try:
            with self._direct.transaction() as cursor:
                cursor.execute(self._last_seq.sql, self._last_seq.params({}))
                size = cursor.fetchone()[0]
                if size + 1 != expected_size:
                    raise LogUnavailable(
                        f"the log holds {size + 1} records, expected {expected_size}: "
                        "another process wrote to it"
                    )
                if records:
                    insert = self._insert_record
                    cursor.executemany(
                        insert.sql, [insert.params(_record_row(r)) for r in records]
                    )
                if checkpoint is not None:
                    cursor.execute(
                        self._insert_checkpoint.sql,
                        self._insert_checkpoint.params(
                            {
                                "tree_size": checkpoint.tree_size,
                                "root_hash": checkpoint.root_hash,
                                "note": checkpoint.note,
                                "time_us": to_micros(checkpoint.time),
                            }
                        ),
                    )
        except sa.exc.SQLAlchemyError as exc:
            raise LogUnavailable(
                f"cannot commit to the decision log: {describe_error(exc)}"
            ) from None
        if self._checkpointer is not None:
            self._checkpointer.note_commit()

    def records(
        self,
        where: RecordFilter,
        *,
        after: int = -1,
        limit: int = 100,
        stop: int | None = None,
    ) -> list[StoredRecord]:
        """Return up to ``limit`` matching records after ``after``, by seq."""
        t = records_table
        clauses: list[sa.ColumnElement[bool]] = [t.c.seq > after]
        if stop is not None:
            clauses.append(t.c.seq < stop)
        for name in ("requester", "purpose", "decision", "dataset"):
            value = getattr(where, name)
            if value is not None:
                clauses.append(t.c[name] == value)
        if where.since is not None:
            clauses.append(t.c.time_us >= to_micros(where.since))
        if where.until is not None:
            clauses.append(t.c.time_us < to_micros(where.until))
        rows = self._read(
            sa.select(t).where(*clauses).order_by(t.c.seq).limit(max(limit, 0))
        )
        return [_record_of(row) for row in rows]

    def checkpoints(
        self, *, after: int = -1, limit: int = 100, stop: int | None = None
    ) -> list[StoredCheckpoint]:
        """Return up to ``limit`` checkpoints after tree size ``after``."""
        t = checkpoints_table
        clauses: list[sa.ColumnElement[bool]] = [t.c.tree_size > after]
        if stop is not None:
            clauses.append(t.c.tree_size <= stop)
        rows = self._read(
            sa.select(t).where(*clauses).order_by(t.c.tree_size).limit(max(limit, 0))
        )
        return [_checkpoint_of(row) for row in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the checkpoint with the largest tree size, or ``None``."""
        t = checkpoints_table
        rows = self._read(sa.select(t).order_by(t.c.tree_size.desc()).limit(1))
        return _checkpoint_of(rows[0]) if rows else None

    def close(self) -> None:
        """Stop the WAL checkpointer and dispose of both engines."""
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        if self._direct is not None:
            self._direct.close()
        self._reader.dispose()
        if self._writer is not None:
            self._writer.dispose()
