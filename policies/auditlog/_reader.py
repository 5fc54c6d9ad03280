"""Reading a decision log: records, checkpoints, Merkle proofs, in pages.

:class:`DecisionLogReader` serves reads from a :class:`~policies.auditlog.LogStore`;
:class:`~policies.auditlog.DecisionLog` extends it with the writer.
:func:`open_log_reader` opens a log's database read-only (``accord audit --db``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._logerrors import LogMissing, OutOfRange
from ._merkle import MerkleTree
from ._note import parse_verifier_key
from ._pages import decode_token, encode_token
from ._pages import page_size as _page_size
from ._sqlstore import SqlLogStore
from ._store import LogInfo, LogStore, RecordFilter, StoredCheckpoint, StoredRecord

__all__ = [
    "CheckpointPage",
    "Clock",
    "ConsistencyProof",
    "DecisionLogReader",
    "InclusionProof",
    "RecordPage",
    "open_log_reader",
]

_NO_FILTER = RecordFilter()


class Clock(Protocol):
    """Returns the current time, aware and in UTC."""

    def __call__(self) -> datetime:
        """Return the current time."""
        ...


def utcnow() -> datetime:
    """Return the current time in UTC (the default :class:`Clock`)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RecordPage:
    """One page of records.

    Attributes
    ----------
    records : list[StoredRecord]
        The records, by seq.
    next_page_token : str
        Token of the next page; empty on the last page.
    tree_size : int
        How many records the log held when the page was read.
    """

    records: list[StoredRecord]
    next_page_token: str
    tree_size: int


@dataclass(frozen=True, slots=True)
class CheckpointPage:
    """One page of checkpoints.

    Attributes
    ----------
    checkpoints : list[StoredCheckpoint]
        The checkpoints, by tree size.
    next_page_token : str
        Token of the next page; empty on the last page.
    """

    checkpoints: list[StoredCheckpoint]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """A record and its Merkle audit path in the tree of ``tree_size`` records.

    Attributes
    ----------
    record : StoredRecord
        The record.
    tree_size : int
        The tree size proven against.
    hashes : list[bytes]
        The audit path, leaf to root.
    root_hash : bytes
        The root of the tree of ``tree_size`` records.
    """

    record: StoredRecord
    tree_size: int
    hashes: list[bytes]
    root_hash: bytes


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """Proof that the tree of ``first_size`` records prefixes that of ``second_size``.

    Attributes
    ----------
    first_size, second_size : int
        The two tree sizes.
    hashes : list[bytes]
        The proof hashes.
    first_root, second_root : bytes
        The roots at both sizes.
    """

    first_size: int
    second_size: int
    hashes: list[bytes]
    first_root: bytes
    second_root: bytes


class DecisionLogReader:
    """Reads a decision log: records, checkpoints and Merkle proofs.

    A reader opened on a log another process writes sees each commit as it
    lands; its Merkle tree catches up on the next proof. Use
    :func:`open_log_reader` to open one on a database.

    Parameters
    ----------
    store : LogStore
        Where the log is kept.
    info : LogInfo
        The log's origin and verifier key, as stored.
    """

    def __init__(self, store: LogStore, info: LogInfo) -> None:
        self._store = store
        self._info = info
        self._tree = MerkleTree()
        self._tree_lock = threading.Lock()

    @property
    def origin(self) -> str:
        """The log's origin: the first line of its checkpoints and its key name."""
        return self._info.origin

    @property
    def verifier_key(self) -> str:
        """The C2SP verifier key officers pin: ``<origin>+<key ID>+<key>``."""
        return self._info.verifier_key

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The log's public key."""
        return parse_verifier_key(self._info.verifier_key)[1]

    def size(self) -> int:
        """Return how many records the log holds (committed).

        Returns
        -------
        int
            The number of committed records.
        """
        last = self._store.last_record()
        return 0 if last is None else last.seq + 1

    def _refresh(self) -> int:
        """Bring the tree up to the store; return the committed size."""
        with self._tree_lock:
            for _, value in self._store.leaf_hashes(self._tree.size):
                self._tree.append(value)
            return self._tree.size

    def records(
        self,
        where: RecordFilter | None = None,
        *,
        page_size: int = 100,
        page_token: str = "",
    ) -> RecordPage:
        """List records, oldest first, that match a filter.

        Parameters
        ----------
        where : RecordFilter, optional
            Which records; all by default.
        page_size : int, optional
            At most this many (0 or less: 100; more than 1000: 1000).
        page_token : str, optional
            A previous page's ``next_page_token``, with the same filter.

        Returns
        -------
        RecordPage
            The page.

        Raises
        ------
        InvalidPageToken
            If the token was not issued for this filter.
        LogUnavailable
            If the store cannot be read.
        """
        where = where or _NO_FILTER
        fingerprint = where.fingerprint()
        after = decode_token(page_token, "r", fingerprint)
        limit = _page_size(page_size)
        tree_size = self.size()
        rows = self._store.records(where, after=after, limit=limit + 1, stop=tree_size)
        token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            token = encode_token("r", rows[-1].seq, fingerprint)
        return RecordPage(rows, token, tree_size)

    def iter_records(
        self, where: RecordFilter | None = None, *, stop: int | None = None
    ) -> Iterator[StoredRecord]:
        """Yield every matching record with ``seq < stop``, oldest first.

        Parameters
        ----------
        where : RecordFilter, optional
            Which records; all by default.
        stop : int, optional
            Stop before this seq; by default at the end of the log.

        Yields
        ------
        StoredRecord
            The records, read a thousand at a time.
        """
        where = where or _NO_FILTER
        after = -1
        while True:
            rows = self._store.records(where, after=after, limit=1000, stop=stop)
            yield from rows
            if len(rows) < 1000:
                return
            after = rows[-1].seq

    def checkpoints(
        self, *, page_size: int = 100, page_token: str = ""
    ) -> CheckpointPage:
        """List signed checkpoints, oldest first.

        Parameters
        ----------
        page_size : int, optional
            At most this many (0 or less: 100; more than 1000: 1000).
        page_token : str, optional
            A previous page's ``next_page_token``.

        Returns
        -------
        CheckpointPage
            The page.

        Raises
        ------
        InvalidPageToken
            If the token is not one of this listing.
        """
        after = decode_token(page_token, "c", _CHECKPOINT_FINGERPRINT)
        limit = _page_size(page_size)
        rows = self._store.checkpoints(after=after, limit=limit + 1)
        token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            token = encode_token("c", rows[-1].tree_size, _CHECKPOINT_FINGERPRINT)
        return CheckpointPage(rows, token)

    def iter_checkpoints(
        self, *, stop: int | None = None
    ) -> Iterator[StoredCheckpoint]:
        """Yield every checkpoint with ``tree_size <= stop``, oldest first.

        Parameters
        ----------
        stop : int, optional
            The largest tree size wanted; by default all.

        Yields
        ------
        StoredCheckpoint
            The checkpoints.
        """
        after = -1
        while True:
            rows = self._store.checkpoints(after=after, limit=1000, stop=stop)
            yield from rows
            if len(rows) < 1000:
                return
            after = rows[-1].tree_size

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the latest signed checkpoint, or ``None`` if there is none yet.

        Returns
        -------
        StoredCheckpoint or None
            The checkpoint with the largest tree size.
        """
        return self._store.latest_checkpoint()

    def _proof_size(self, tree_size: int | None, what: str) -> int:
        if tree_size is None or tree_size == 0:
            latest = self._store.latest_checkpoint()
            if latest is None:
                raise OutOfRange(f"{what}: the log has no signed checkpoint yet")
            return latest.tree_size
        return tree_size

    def inclusion_proof(self, seq: int, tree_size: int | None = None) -> InclusionProof:
        """Prove that record ``seq`` is in the tree of ``tree_size`` records.

        Parameters
        ----------
        seq : int
            The record.
        tree_size : int, optional
            The tree size to prove against, usually a checkpoint's; by default
            (or 0) that of the latest checkpoint.

        Returns
        -------
        InclusionProof
            The record, its audit path and the root at ``tree_size``.

        Raises
        ------
        OutOfRange
            If there is no checkpoint yet, ``tree_size`` is beyond the log, or
            ``seq`` is not below ``tree_size``.
        """
        size = self._proof_size(tree_size, "tree_size")
        committed = self._refresh()
        if not 0 < size <= committed:
            raise OutOfRange(
                f"tree_size: {size} is not between 1 and the log's size {committed}"
            )
        if not 0 <= seq < size:
            raise OutOfRange(f"seq: {seq} is not in a tree of {size} records")
        record = self._store.record(seq)
        if record is None:
            raise OutOfRange(f"seq: record {seq} is not in the log")
        with self._tree_lock:
            hashes = self._tree.inclusion_proof(seq, size)
            root_hash = self._tree.root_at(size)
        return InclusionProof(record, size, hashes, root_hash)

    def consistency_proof(
        self, first_size: int, second_size: int | None = None
    ) -> ConsistencyProof:
        """Prove that the tree of ``first_size`` records prefixes a later one.

        Parameters
        ----------
        first_size : int
            The earlier tree size (e.g. of a checkpoint an officer saved).
        second_size : int, optional
            The later size; by default (or 0) that of the latest checkpoint.

        Returns
        -------
        ConsistencyProof
            The proof and both roots.

        Raises
        ------
        OutOfRange
            If there is no checkpoint yet, or the sizes are not
            ``0 <= first_size <= second_size <= size``.
        """
        second = self._proof_size(second_size, "second_size")
        committed = self._refresh()
        if not 0 <= second <= committed:
            raise OutOfRange(
                f"second_size: {second} is not between 0 and the log's size {committed}"
            )
        if not 0 <= first_size <= second:
            raise OutOfRange(
                f"first_size: {first_size} is not between 0 and second_size {second}"
            )
        with self._tree_lock:
            hashes = self._tree.consistency_proof(first_size, second)
            first_root = self._tree.root_at(first_size)
            second_root = self._tree.root_at(second)
        return ConsistencyProof(first_size, second, hashes, first_root, second_root)

    def close(self) -> None:
        """Release the store."""
        self._store.close()

    def __enter__(self) -> DecisionLogReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


_CHECKPOINT_FINGERPRINT = "0" * 16


def open_log_reader(url: str) -> DecisionLogReader:
    """Open a decision log read-only, e.g. at the node's host while it runs.

    Nothing is created or written, and no key is needed. The stored log is not
    checked here: export it and verify the export.

    Parameters
    ----------
    url : str
        The log's SQLAlchemy URL.

    Returns
    -------
    DecisionLogReader
        The reader; close it when done.

    Raises
    ------
    LogMissing
        If there is no decision log at ``url`` (a kind of ``LogUnavailable``).
    LogUnavailable
        If it cannot be read.
    """
    store = SqlLogStore(url, create=False)
    try:
        info = store.read_info()
        if info is None:
            raise LogMissing("the database holds no decision log (no audit_log row)")
        return DecisionLogReader(store, info)
    except BaseException:
        store.close()
        raise
