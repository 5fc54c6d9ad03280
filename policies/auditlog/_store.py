"""Where the decision log keeps its records and checkpoints: the storage seam.

:class:`LogStore` is what :class:`~policies.auditlog.DecisionLog` needs from a
database: write one batch of records (and perhaps a checkpoint) in one
transaction, and read them back. :class:`MemoryLogStore` is its in-memory twin
(tests, ``accord demo``); :class:`~policies.auditlog.SqlLogStore` keeps them in
SQLite or PostgreSQL.

A store holds, per record, its canonical JSON (the bytes that were hashed, the
only source of truth) next to a few columns copied out of it for filtering, and
the record's chain and leaf hashes; per checkpoint, its tree size, root hash and
signed note.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256

from ._logerrors import LogUnavailable
from ._record import DecisionRecord

__all__ = [
    "LogInfo",
    "LogStore",
    "MemoryLogStore",
    "RecordFilter",
    "StoredCheckpoint",
    "StoredRecord",
    "from_micros",
    "to_micros",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """Return an aware datetime as whole microseconds since the Unix epoch (UTC).

    Parameters
    ----------
    moment : datetime
        An aware datetime.

    Returns
    -------
    int
        Microseconds since 1970-01-01T00:00:00Z.

    Raises
    ------
    ValueError
        If ``moment`` is naive.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("expected an aware datetime")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    """Return microseconds since the Unix epoch as an aware UTC datetime.

    Parameters
    ----------
    micros : int
        Microseconds since 1970-01-01T00:00:00Z.

    Returns
    -------
    datetime
        The moment, in UTC.
    """
    return _EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True, slots=True)
class LogInfo:
    """What a store records about its log when the log is created.

    Attributes
    ----------
    origin : str
        The log's origin (its checkpoints' first line and key name).
    verifier_key : str
        The C2SP verifier key of the log's signing key.
    created : datetime
        When the log was created (UTC).
    """

    origin: str
    verifier_key: str
    created: datetime


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One record as stored: its canonical JSON, its hashes and filter columns.

    Attributes
    ----------
    seq : int
        Sequence number, from 0.
    time : datetime
        The record's time (UTC), copied from the record.
    requester, purpose, decision, dataset : str
        Copied from the record, for filtering.
    canonical_json : str
        The record's canonical JSON: exactly the bytes that were hashed.
    chain_hash : bytes
        ``SHA-256(prev_hash || canonical bytes)``, 32 bytes.
    leaf_hash : bytes
        ``SHA-256(0x00 || canonical bytes)``, 32 bytes.
    """

    seq: int
    time: datetime
    requester: str
    purpose: str
    decision: str
    dataset: str
    canonical_json: str
    chain_hash: bytes
    leaf_hash: bytes

    @classmethod
    def of(cls, record: DecisionRecord) -> StoredRecord:
        """Build the stored form of a record (hashes computed here).

        Parameters
        ----------
        record : DecisionRecord
            The record, with its seq and prev_hash.

        Returns
        -------
        StoredRecord
            Its stored form.
        """
        canonical = record.canonical_bytes()
        return cls(
            seq=record.seq,
            time=record.time,
            requester=record.requester,
            purpose=record.purpose,
            decision=record.decision,
            dataset=record.dataset,
            canonical_json=canonical.decode("utf-8"),
            chain_hash=sha256(bytes.fromhex(record.prev_hash) + canonical).digest(),
            leaf_hash=sha256(b"\x00" + canonical).digest(),
        )

    def record(self) -> DecisionRecord:
        """Parse the canonical JSON back into a record.

        Returns
        -------
        DecisionRecord
            The record.

        Raises
        ------
        MalformedRecord
            If the stored JSON is not a canonical record (it was tampered with).
        """
        return DecisionRecord.from_json(self.canonical_json)


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """One signed checkpoint as stored.

    Attributes
    ----------
    tree_size : int
        Number of records it covers.
    root_hash : bytes
        The Merkle root of those records.
    note : str
        The C2SP signed note.
    time : datetime
        When it was signed (UTC).
    """

    tree_size: int
    root_hash: bytes
    note: str
    time: datetime


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Which records to list; every field set must match (unset: any).

    Attributes
    ----------
    requester, purpose, decision, dataset : str or None
        Exact values to match.
    since : datetime or None
        Only records at or after this time.
    until : datetime or None
        Only records strictly before this time.
    """

    requester: str | None = None
    purpose: str | None = None
    decision: str | None = None
    dataset: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, record: StoredRecord) -> bool:
        """Return whether ``record`` passes the filter.

        Parameters
        ----------
        record : StoredRecord
            A stored record.

        Returns
        -------
        bool
            ``True`` if every set field matches.
        """
        for name in ("requester", "purpose", "decision", "dataset"):
            wanted = getattr(self, name)
            if wanted is not None and getattr(record, name) != wanted:
                return False
        if self.since is not None and record.time < self.since:
            return False
        return self.until is None or record.time < self.until

    def fingerprint(self) -> str:
        """Return a short digest of the filter, bound into page tokens.

        Returns
        -------
        str
            16 hex digits.
        """
        parts = [
            "" if v is None else (f"t{to_micros(v)}" if isinstance(v, datetime) else v)
            for v in (
                self.requester,
                self.purpose,
                self.decision,
                self.dataset,
                self.since,
                self.until,
            )
        ]
        text = "\x1f".join(f"{len(p)}:{p}" for p in parts)
        return sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class LogStore(abc.ABC):
    """Storage of one decision log.

    One process writes a log (its :class:`~policies.auditlog.DecisionLog`); any
    number may read it. Implementations must make :meth:`append_batch` atomic:
    after a crash, either the whole batch (and its checkpoint) is there or none of
    it is.
    """

    @abc.abstractmethod
    def read_info(self) -> LogInfo | None:
        """Return what was recorded when the log was created, or ``None`` if new."""

    @abc.abstractmethod
    def write_info(self, info: LogInfo) -> None:
        """Record the log's origin and verifier key, once, at creation."""

    @abc.abstractmethod
    def leaf_hashes(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """Yield ``(seq, leaf hash)`` of the records from ``start`` on, in order."""

    @abc.abstractmethod
    def record(self, seq: int) -> StoredRecord | None:
        """Return the record ``seq``, or ``None``."""

    @abc.abstractmethod
    def last_record(self) -> StoredRecord | None:
        """Return the record with the highest seq, or ``None`` if the log is empty."""

    @abc.abstractmethod
    def append_batch(
        self,
        records: Sequence[StoredRecord],
        checkpoint: StoredCheckpoint | None,
        *,
        expected_size: int,
    ) -> None:
        """Store records and a checkpoint in one transaction.

        Parameters
        ----------
        records : Sequence[StoredRecord]
            Records ``expected_size``, ``expected_size + 1``, ... in order.
        checkpoint : StoredCheckpoint or None
            A checkpoint to store with them.
        expected_size : int
            How many records the store must hold before the batch.

        Raises
        ------
        LogUnavailable
            If the transaction failed, or another writer changed the log; then
            nothing of the batch was stored.
        """

    @abc.abstractmethod
    def records(
        self,
        where: RecordFilter,
        *,
        after: int = -1,
        limit: int = 100,
        stop: int | None = None,
    ) -> list[StoredRecord]:
        """Return up to ``limit`` matching records with ``after < seq < stop``, by seq."""

    @abc.abstractmethod
    def checkpoints(
        self, *, after: int = -1, limit: int = 100, stop: int | None = None
    ) -> list[StoredCheckpoint]:
        """Return up to ``limit`` checkpoints with ``after < tree_size <= stop``."""

    @abc.abstractmethod
    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the checkpoint with the largest tree size, or ``None``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class MemoryLogStore(LogStore):
    """A store in memory: for tests and the demo; gone with the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._info: LogInfo | None = None
        self._records: list[StoredRecord] = []
        self._checkpoints: dict[int, StoredCheckpoint] = {}
        self.fail_next: Exception | None = None
        """Set to make the next :meth:`append_batch` fail with it (tests)."""

    def read_info(self) -> LogInfo | None:
        """Return the log's info, or ``None`` if new."""
        return self._info

    def write_info(self, info: LogInfo) -> None:
        """Record the log's info."""
        self._info = info

    def leaf_hashes(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """Yield ``(seq, leaf hash)`` from ``start`` on."""
        with self._lock:
            rows = self._records[start:]
        for row in rows:
            yield row.seq, row.leaf_hash

    def record(self, seq: int) -> StoredRecord | None:
        """Return record ``seq``, or ``None``."""
        with self._lock:
            return self._records[seq] if 0 <= seq < len(self._records) else None

    def last_record(self) -> StoredRecord | None:
        """Return the last record, or ``None``."""
        with self._lock:
            return self._records[-1] if self._records else None

    def append_batch(
        self,
        records: Sequence[StoredRecord],
        checkpoint: StoredCheckpoint | None,
        *,
        expected_size: int,
    ) -> None:
        """Store records and a checkpoint, all or nothing."""
        with self._lock:
            if self.fail_next is not None:
                exc, self.fail_next = self.fail_next, None
                raise LogUnavailable(f"cannot commit to the decision log: {exc}")
            if len(self._records) != expected_size:
                raise LogUnavailable(
                    f"the log holds {len(self._records)} records, expected "
                    f"{expected_size}: another writer changed it"
                )
            self._records.extend(records)
            if checkpoint is not None:
                self._checkpoints[checkpoint.tree_size] = checkpoint

    def records(
        self,
        where: RecordFilter,
        *,
        after: int = -1,
        limit: int = 100,
        stop: int | None = None,
    ) -> list[StoredRecord]:
        """Return up to ``limit`` matching records after ``after``."""
        with self._lock:
            rows = self._records[max(after + 1, 0) : stop]
        found: list[StoredRecord] = []
        for row in rows:
            if where.matches(row):
                found.append(row)
                if len(found) >= limit:
                    break
        return found

    def checkpoints(
        self, *, after: int = -1, limit: int = 100, stop: int | None = None
    ) -> list[StoredCheckpoint]:
        """Return up to ``limit`` checkpoints after tree size ``after``."""
        with self._lock:
            sizes = sorted(self._checkpoints)
            return [
                self._checkpoints[s]
                for s in sizes
                if s > after and (stop is None or s <= stop)
            ][:limit]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the latest checkpoint, or ``None``."""
        with self._lock:
            if not self._checkpoints:
                return None
            return self._checkpoints[max(self._checkpoints)]
