"""The decision log: durable group-committed appends, signed checkpoints, proofs.

:class:`DecisionLog` writes; :class:`~policies.auditlog.DecisionLogReader` (its
base, in ``_reader``) reads. Writing works like this:

* :meth:`DecisionLog.append` checks the record's fields in the caller's thread,
  queues it and blocks until the record is committed (or the commit failed).
* One writer thread takes everything queued (at most ``batch_size`` records; it
  waits at most ``max_delay`` for more, 0 by default: a record never waits for
  company, and records arriving during a commit form the next batch), assigns
  sequence numbers, links the hash chain, and stores the batch in **one
  transaction**; when due, a signed checkpoint goes in the same transaction.
  Only then are the waiting callers released, so a decision's answer can leave
  only after its record is durable.
* A checkpoint is due when ``checkpoint_every`` records are unsigned, or records
  have been unsigned for ``checkpoint_interval`` seconds (the writer wakes up for
  it), and at open and close while any record is unsigned.

At open, the writer rebuilds the Merkle tree from the stored leaf hashes and
refuses a log with a gap, a chain head that does not hash, or a latest checkpoint
that is not signed by its key or does not match the records
(:class:`~policies.auditlog.LogCorrupted`). If a commit fails, the waiting
callers get :class:`~policies.auditlog.LogUnavailable` and the writer reloads its
state from the store before the next batch.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import TypedDict

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ._errors import AuditLogError, MalformedNote, MalformedRecord, SignatureInvalid
from ._logerrors import LogClosed, LogCorrupted, LogKeyError, LogUnavailable
from ._merkle import MerkleTree, leaf_hash
from ._note import Checkpoint, encode_verifier_key, sign_checkpoint, verify_note
from ._reader import Clock, DecisionLogReader, utcnow
from ._record import GENESIS_PREV_HASH, DecisionRecord
from ._sqlstore import SqlLogStore
from ._store import LogInfo, LogStore, MemoryLogStore, StoredCheckpoint, StoredRecord

__all__ = [
    "DecisionFields",
    "DecisionLog",
    "MemoryDecisionLog",
    "SqlDecisionLog",
]

_log = logging.getLogger("accord.auditlog")

_ASSIGNED = ("seq", "prev_hash")
_FIELDS = frozenset(f.name for f in dataclasses.fields(DecisionRecord)) - set(_ASSIGNED)
_TUPLES = ("columns", "matched_rules", "recipients")


class DecisionFields(TypedDict, total=False):
    """The fields a caller passes to :meth:`DecisionLog.append`.

    Every field of :class:`~policies.auditlog.DecisionRecord` but ``seq`` and
    ``prev_hash``, which the log assigns; ``time`` defaults to the log's clock.
    Tuple fields may be given as lists.
    """

    time: datetime
    operation: str
    requester: str
    on_behalf_of: str
    purpose: str
    legal_basis: str
    justification: str
    dataset: str
    columns: tuple[str, ...] | list[str]
    request_hash: str
    policy_digest: str
    decision: str
    matched_rules: tuple[str, ...] | list[str]
    reason: str
    privacy_charged: float
    privacy_remaining: float | None
    recipients: tuple[str, ...] | list[str]
    query_id: str
    method: str


class _Pending:
    """One queued append: its record template and the caller's wake-up.

    The wake-up is a lock held from the start and released once, when the writer
    settles the append: cheaper than an Event, which wraps a lock in a Condition.
    """

    __slots__ = ("_wake", "error", "queued_at", "record", "settled", "template")

    def __init__(self, template: DecisionRecord) -> None:
        self.template = template
        self.queued_at = time.monotonic()
        self._wake = threading.Lock()
        self._wake.acquire()
        self.record: DecisionRecord | None = None
        self.error: str | None = None
        self.settled = False  # set by the writer thread only, before the wake-up

    def wait(self, timeout: float | None) -> bool:
        """Wait until settled; ``False`` if ``timeout`` seconds passed first."""
        if timeout is None:
            self._wake.acquire()
        elif not self._wake.acquire(timeout=max(0.0, timeout)):
            return False
        self._wake.release()
        return True

    def succeed(self, record: DecisionRecord) -> None:
        if not self.settled:  # settled once: a later failure cannot undo a commit
            self.record, self.settled = record, True
            self._wake.release()

    def fail(self, message: str) -> None:
        if not self.settled:
            self.error, self.settled = message, True
            self._wake.release()


@dataclass
class _State:
    """What the writer knows about the stored log."""

    tree: MerkleTree
    size: int
    head: str  # chain hash of the last record, hex; GENESIS_PREV_HASH if empty
    signed_size: int


def _load_state(store: LogStore, origin: str, public_key: Ed25519PublicKey) -> _State:
    """Rebuild the tree from the store and check the head and latest checkpoint."""
    tree = MerkleTree()
    for seq, value in store.leaf_hashes(0):
        if seq != tree.size:
            raise LogCorrupted(
                f"record seq {tree.size} is missing (the next stored record is seq {seq})"
            )
        tree.append(value)
    size = tree.size
    head = GENESIS_PREV_HASH
    last = store.last_record()
    if (last is None) != (size == 0) or (last is not None and last.seq != size - 1):
        raise LogCorrupted("the records changed while the log was being opened")
    if last is not None:
        _check_head(store, last)
        head = last.chain_hash.hex()
    latest = store.latest_checkpoint()
    signed = 0
    if latest is not None:
        where = f"checkpoint of size {latest.tree_size}"
        if latest.tree_size > size:
            raise LogCorrupted(
                f"{where} is beyond the {size} stored records: records were removed"
            )
        try:
            checkpoint = verify_note(latest.note, origin, public_key)
        except (MalformedNote, SignatureInvalid) as exc:
            raise LogCorrupted(f"{where}: {exc}") from None
        if (
            checkpoint.size != latest.tree_size
            or checkpoint.root_hash != latest.root_hash
        ):
            raise LogCorrupted(f"{where}: its note does not match its columns")
        if tree.root_at(latest.tree_size) != latest.root_hash:
            raise LogCorrupted(
                f"{where}: the stored records do not hash to its signed root; "
                f"a record in seq 0..{latest.tree_size - 1} was altered"
            )
        signed = latest.tree_size
    return _State(tree, size, head, signed)


def _check_head(store: LogStore, last: StoredRecord) -> None:
    """Check that the last record hashes to its stored hashes and links back."""
    where = f"record seq {last.seq}"
    try:
        record = last.record()
    except MalformedRecord as exc:
        raise LogCorrupted(f"{where}: {exc}") from None
    canonical = last.canonical_json.encode("utf-8")
    if record.seq != last.seq or leaf_hash(canonical) != last.leaf_hash:
        raise LogCorrupted(f"{where}: its JSON does not match its stored hashes")
    chain = sha256(bytes.fromhex(record.prev_hash) + canonical).digest()
    if chain != last.chain_hash:
        raise LogCorrupted(f"{where}: its chain hash does not match")
    if last.seq == 0:
        expected = GENESIS_PREV_HASH
    else:
        before = store.record(last.seq - 1)
        if before is None:
            raise LogCorrupted(f"record seq {last.seq - 1} is missing")
        expected = before.chain_hash.hex()
    if record.prev_hash != expected:
        raise LogCorrupted(f"{where}: prev_hash does not link to record {last.seq - 1}")


class DecisionLog(DecisionLogReader):
    """The node's decision log: append durably, read, prove, sign checkpoints.

    One process (one :class:`DecisionLog`) writes a log; a second writer on the
    same store makes commits fail rather than fork the log.

    Parameters
    ----------
    store : LogStore
        Where the log is kept.
    origin : str
        The log's origin, ``audit.<agency>.<federation>`` (see
        :func:`~policies.auditlog.log_origin`); also the signing key's name.
    signing_key : Ed25519PrivateKey
        The log's key (see :func:`~policies.auditlog.load_or_create_log_key`).
    checkpoint_every : int, optional
        Sign a checkpoint once this many records are unsigned (default 256).
    checkpoint_interval : float, optional
        ... or once records have been unsigned this many seconds (default 10).
    batch_size : int, optional
        Most records per transaction (default 256).
    max_delay : float, optional
        Longest the writer holds a record back waiting for more to batch with it,
        in seconds (default 0; at most 0.01 is sensible).
    clock : Clock, optional
        The time stamped on records without one and on checkpoints.

    Raises
    ------
    LogKeyError
        If the stored log has another origin or verifier key.
    LogCorrupted
        If the stored log fails its checks.
    LogUnavailable
        If the store cannot be read or the first checkpoint not written.
    """

    def __init__(
        self,
        store: LogStore,
        *,
        origin: str,
        signing_key: Ed25519PrivateKey,
        checkpoint_every: int = 256,
        checkpoint_interval: float = 10.0,
        batch_size: int = 256,
        max_delay: float = 0.0,
        clock: Clock = utcnow,
    ) -> None:
        if not isinstance(signing_key, Ed25519PrivateKey):
            raise TypeError("signing_key must be an Ed25519PrivateKey")
        if checkpoint_every < 1 or batch_size < 1:
            raise ValueError("checkpoint_every and batch_size must be at least 1")
        if checkpoint_interval <= 0 or max_delay < 0:
            raise ValueError("checkpoint_interval must be > 0 and max_delay >= 0")
        try:
            verifier_key = encode_verifier_key(origin, signing_key.public_key())
        except MalformedNote as exc:
            raise LogKeyError(f"origin {origin!r}: {exc}") from None
        info = store.read_info()
        if info is None:
            info = LogInfo(origin, verifier_key, clock())
            store.write_info(info)
        elif info.origin != origin:
            raise LogKeyError(
                f"the stored log has origin {info.origin!r}, not {origin!r}; "
                "open it with its own origin"
            )
        elif info.verifier_key != verifier_key:
            raise LogKeyError(
                f"the stored log was created with another key ({info.verifier_key}); "
                "open it with that key"
            )
        super().__init__(store, info)
        self._key = signing_key
        self._every = checkpoint_every
        self._interval = checkpoint_interval
        self._batch_size = batch_size
        self._max_delay = max_delay
        self._clock = clock
        self._queue: list[_Pending] = []
        self._wake = threading.Condition(threading.Lock())
        self._closing = False
        self._dirty = False
        self._retry_at = 0.0  # after a failed commit, no timed retry before this
        self._install(_load_state(store, origin, self.public_key))
        self._commit([], force=True)  # sign an unsigned tail left by a crash
        if self._dirty or self._committed != self._signed_size:
            raise LogUnavailable("cannot write a checkpoint to the decision log")
        self._thread = threading.Thread(
            target=self._run, name=f"decision-log {origin}", daemon=True
        )
        self._thread.start()

    def _install(self, state: _State) -> None:
        with self._tree_lock:
            self._tree = state.tree
        self._committed = state.size
        self._head = state.head
        self._signed_size = state.signed_size
        self._signed_at = time.monotonic()

    def size(self) -> int:
        """Return how many records are committed."""
        return self._committed

    def _refresh(self) -> int:
        return self._committed  # the writer keeps the tree up to date

    def append(
        self,
        fields: DecisionFields | Mapping[str, object],
        *,
        timeout: float | None = None,
    ) -> DecisionRecord:
        """Append a record and return it once it is durably committed.

        Parameters
        ----------
        fields : DecisionFields or Mapping[str, object]
            Every record field but ``seq`` and ``prev_hash``; ``time`` defaults
            to the clock.
        timeout : float, optional
            Give up waiting after this many seconds (the record may still be
            committed later; the caller must treat it as not logged).

        Returns
        -------
        DecisionRecord
            The stored record, with its seq and prev_hash.

        Raises
        ------
        MalformedRecord
            If a field is missing, unknown or invalid (nothing is queued).
        LogClosed
            If the log is closed.
        LogUnavailable
            If the commit failed or timed out: the decision is not logged and
            its answer must not leave.
        """
        pending = _Pending(self._template(fields))
        with self._wake:
            if self._closing:
                raise LogClosed("the decision log is closed")
            self._queue.append(pending)
            self._wake.notify()
        if not pending.wait(timeout):
            raise LogUnavailable(f"the decision log did not commit within {timeout} s")
        if pending.error is not None:
            raise LogUnavailable(pending.error)
        assert pending.record is not None
        return pending.record

    def _template(self, fields: Mapping[str, object]) -> DecisionRecord:
        values = dict(fields)
        for name in _ASSIGNED:
            if name in values:
                raise MalformedRecord(f"{name}: assigned by the log; do not pass it")
        moment = values.setdefault("time", self._clock())
        if isinstance(moment, datetime) and moment.tzinfo is not None:
            values["time"] = moment.astimezone(UTC)
        missing = sorted(_FIELDS - values.keys())
        unknown = sorted(values.keys() - _FIELDS)
        if missing or unknown:
            parts = [f"missing fields {missing}"] if missing else []
            parts += [f"unknown fields {unknown}"] if unknown else []
            raise MalformedRecord(", ".join(parts))
        for name in _TUPLES:
            value = values[name]
            if isinstance(value, list):
                values[name] = tuple(value)
        template = DecisionRecord(seq=0, prev_hash=GENESIS_PREV_HASH, **values)  # type: ignore[arg-type]
        template.canonical_bytes()  # a lone surrogate fails here, not in the writer
        return template

    def _deadline(self) -> float | None:
        """When the next timed checkpoint is due (monotonic), or ``None``."""
        if self._committed == self._signed_size and not self._dirty:
            return None
        return max(self._signed_at + self._interval, self._retry_at)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closing:
                    due = self._deadline()
                    if due is None:
                        self._wake.wait()
                        continue
                    remaining = due - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                if self._queue and self._max_delay > 0:
                    until = self._queue[0].queued_at + self._max_delay
                    while len(self._queue) < self._batch_size and not self._closing:
                        remaining = until - time.monotonic()
                        if remaining <= 0:
                            break
                        self._wake.wait(remaining)
                batch = self._queue[: self._batch_size]
                del self._queue[: len(batch)]
                stopping = self._closing and not self._queue
            try:
                self._commit(batch, force=stopping)
            except Exception:  # pragma: no cover - a bug; keep callers from hanging
                _log.exception("decision log writer failed")
                for pending in batch:
                    if not pending.settled:
                        pending.fail("the decision log's writer failed")
            if stopping:
                return

    def _commit(self, batch: list[_Pending], *, force: bool = False) -> None:
        """Store a batch (and a checkpoint if due) in one transaction."""
        if self._dirty and not self._reload():
            for pending in batch:
                pending.fail("the decision log's store is unavailable")
            return
        rows: list[StoredRecord] = []
        done: list[tuple[_Pending, DecisionRecord]] = []
        seq, head = self._committed, self._head
        for pending in batch:
            record = pending.template.placed(seq, head)
            stored = StoredRecord.of(record)
            rows.append(stored)
            done.append((pending, record))
            head = stored.chain_hash.hex()
            seq += 1
        size = seq
        checkpoint: StoredCheckpoint | None = None
        with self._tree_lock:
            for stored in rows:
                self._tree.append(stored.leaf_hash)
            due = size > self._signed_size and (
                force
                or size - self._signed_size >= self._every
                or time.monotonic() - self._signed_at >= self._interval
            )
            root_hash = self._tree.root() if due else b""
        if due:
            note = sign_checkpoint(
                Checkpoint(self.origin, size, root_hash), self.origin, self._key
            )
            checkpoint = StoredCheckpoint(size, root_hash, note, self._clock())
        if not rows and checkpoint is None:
            return
        try:
            self._store.append_batch(rows, checkpoint, expected_size=self._committed)
        except Exception as exc:
            message = (
                str(exc)
                if isinstance(exc, AuditLogError)
                else f"cannot commit to the decision log: {type(exc).__name__}"
            )
            _log.error("decision log commit failed: %s", message)
            self._dirty = True
            self._retry_at = time.monotonic() + 1.0
            for pending, _ in done:
                pending.fail(message)
            self._reload()
            return
        self._committed, self._head = size, head
        if checkpoint is not None:
            self._signed_size, self._signed_at = size, time.monotonic()
        for pending, record in done:
            pending.succeed(record)

    def _reload(self) -> bool:
        """Reload the writer's state from the store after a failed commit."""
        try:
            state = _load_state(self._store, self.origin, self.public_key)
        except AuditLogError as exc:
            _log.error("decision log cannot reload its state: %s", exc)
            self._retry_at = time.monotonic() + 1.0
            return False
        self._install(state)
        self._dirty = False
        return True

    def close(self) -> None:
        """Commit what is queued, sign a last checkpoint, release the store.

        Idempotent. Appends after (or racing with) ``close`` raise
        :class:`~policies.auditlog.LogClosed`.
        """
        with self._wake:
            if self._closing:
                already = True
            else:
                already = False
                self._closing = True
                self._wake.notify()
        self._thread.join()
        if not already:
            if self._committed > self._signed_size:
                _log.warning(
                    "decision log closed with %d unsigned records; they are signed at "
                    "the next open",
                    self._committed - self._signed_size,
                )
            super().close()

    def __enter__(self) -> DecisionLog:
        return self


class SqlDecisionLog(DecisionLog):
    """A :class:`DecisionLog` kept in SQLite (WAL, ``synchronous=FULL``) or PostgreSQL.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:///var/lib/accord/audit.db`` or
        ``postgresql://accord@db/accord``; tables are created if missing.
    origin : str
        The log's origin, ``audit.<agency>.<federation>``.
    signing_key : Ed25519PrivateKey
        The log's signing key.
    checkpoint_every : int, optional
        Sign once this many records are unsigned (default 256).
    checkpoint_interval : float, optional
        ... or once records have been unsigned this many seconds (default 10).
    batch_size : int, optional
        Most records per transaction (default 256).
    max_delay : float, optional
        Longest a record waits for company before its batch commits (default 0).
    clock : Clock, optional
        The time stamped on records without one and on checkpoints.

    Raises
    ------
    LogKeyError, LogCorrupted, LogUnavailable
        As :class:`DecisionLog`.
    """

    def __init__(
        self,
        url: str,
        *,
        origin: str,
        signing_key: Ed25519PrivateKey,
        checkpoint_every: int = 256,
        checkpoint_interval: float = 10.0,
        batch_size: int = 256,
        max_delay: float = 0.0,
        clock: Clock = utcnow,
    ) -> None:
        store = SqlLogStore(url)
        try:
            super().__init__(
                store,
                origin=origin,
                signing_key=signing_key,
                checkpoint_every=checkpoint_every,
                checkpoint_interval=checkpoint_interval,
                batch_size=batch_size,
                max_delay=max_delay,
                clock=clock,
            )
        except BaseException:
            store.close()
            raise


class MemoryDecisionLog(DecisionLog):
    """A :class:`DecisionLog` in memory, for tests and the demo.

    Parameters
    ----------
    origin : str
        The log's origin.
    signing_key : Ed25519PrivateKey
        The log's signing key.
    store : MemoryLogStore, optional
        The store to use (tests reach into it); a new one by default.
    checkpoint_every, checkpoint_interval, batch_size, max_delay, clock
        As :class:`DecisionLog`.
    """

    def __init__(
        self,
        *,
        origin: str,
        signing_key: Ed25519PrivateKey,
        store: MemoryLogStore | None = None,
        checkpoint_every: int = 256,
        checkpoint_interval: float = 10.0,
        batch_size: int = 256,
        max_delay: float = 0.0,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store or MemoryLogStore()
        super().__init__(
            self.store,
            origin=origin,
            signing_key=signing_key,
            checkpoint_every=checkpoint_every,
            checkpoint_interval=checkpoint_interval,
            batch_size=batch_size,
            max_delay=max_delay,
            clock=clock,
        )
