"""The workbench's local copy of the node's decision log: navigation and aggregates.

Pages that show records ask the node for them (so that each view is a logged
consultation); what no single ``ListRecords`` call can answer -- how many records
match, where page 400 starts, a requester's spending over time, the policy
digests in use, bursts of denials -- is computed here, on a copy that grows by the
records the node has added since the last sync (usually one call).

The copy keeps each record's canonical JSON, byte for byte as the node served it
(``records.jsonl``, one line per record, seq 0 first), and the signed checkpoints
(``checkpoints.jsonl``), so that :func:`policies.auditlog.verify_log` can check it
against the pinned key exactly as it checks an export. Columns used for filtering
are held in memory (about 60 bytes a record). Nothing here is trusted until
verified: a record the node serves differently the second time, or a gap in the
sequence, is reported as a conflict and stops the copy from growing.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import threading
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from policies.auditlog import MAX_PAGE_SIZE, StoredCheckpoint, StoredRecord

from ._errors import NodeUnavailable, NotFound
from ._link import NodeLink
from ._query import LogFilter

__all__ = [
    "AUDIT_METHOD_PREFIX",
    "LogIndex",
    "PolicyRun",
    "RequesterActivity",
    "SyncStats",
]

AUDIT_METHOD_PREFIX = "/accord.v1.AuditService/"
"""Records of reads of the log itself carry this method prefix."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = (
    "requester",
    "purpose",
    "decision",
    "dataset",
    "operation",
    "policy_digest",
    "method",
)
IntArray = npt.NDArray[np.int64]


def _micros(text: str) -> int:
    moment = datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    """Return microseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=int(value))


def to_micros(moment: datetime) -> int:
    """Return an aware datetime as microseconds since the epoch."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class SyncStats:
    """What one sync fetched.

    Attributes
    ----------
    records, checkpoints : int
        New records and checkpoints.
    calls : int
        Calls made to the node (each one logged there).
    """

    records: int
    checkpoints: int
    calls: int


@dataclass(frozen=True, slots=True)
class RequesterActivity:
    """One requester's records in the log.

    Attributes
    ----------
    requester : str
        The SAN URI.
    records, allowed, denied, errors : int
        How many records, and by decision.
    rho_charged : float
        Rho charged by allowed requests, less those given back.
    first, last : datetime
        Their first and last record.
    consultations_only : bool
        Whether every record is a consultation (metadata, budgets, the log).
    """

    requester: str
    records: int
    allowed: int
    denied: int
    errors: int
    rho_charged: float
    first: datetime
    last: datetime
    consultations_only: bool


@dataclass(frozen=True, slots=True)
class PolicyRun:
    """A stretch of consecutive decisions taken under one policy digest.

    Attributes
    ----------
    digest : str
        SHA-256 of the policy file.
    first_seq, last_seq : int
        The first and last record of the stretch.
    first, last : datetime
        Their times.
    records : int
        Decisions in the stretch.
    """

    digest: str
    first_seq: int
    last_seq: int
    first: datetime
    last: datetime
    records: int


class _Codes:
    """Interns the values of one column as small integers."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.index: dict[str, int] = {}

    def code(self, value: str) -> int:
        found = self.index.get(value)
        if found is None:
            found = self.index[value] = len(self.values)
            self.values.append(value)
        return found


@dataclass(frozen=True)
class _Snapshot:
    size: int
    time_us: IntArray
    codes: dict[str, npt.NDArray[np.int32]]
    charged: npt.NDArray[np.float64]
    refunded: npt.NDArray[np.bool_]


class LogIndex:
    """A local, append-only copy of one node's decision log.

    Parameters
    ----------
    folder : Path, optional
        Where to keep the copy (created, mode 0700); by default a temporary folder
        removed by :meth:`close`.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self._temporary = folder is None
        self._folder = (
            Path(tempfile.mkdtemp(prefix="accord-officer-"))
            if folder is None
            else folder
        )
        self._folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._records_path = self._folder / "records.jsonl"
        self._checkpoints_path = self._folder / "checkpoints.jsonl"
        self._state_path = self._folder / "sync.json"
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._time = array("q")
        self._offsets = array("q")
        self._charged = array("d")
        self._codes = {name: _Codes() for name in _COLUMNS}
        self._columns = {name: array("i") for name in _COLUMNS}
        self._leaves = bytearray()
        self._refunded: set[int] = set()
        self._open_charges: dict[tuple[int, str], int] = {}
        self._checkpoints: list[StoredCheckpoint] = []
        self._tokens = {"records": "", "checkpoints": ""}
        self._end = 0  # byte length of records.jsonl
        self._snapshot: _Snapshot | None = None
        self.conflicts: list[str] = []
        """Contradictions between what the node served at different times."""
        self.malformed: list[int] = []
        """Seqs whose JSON could not be read (the verifier says why)."""
        self._load()

    # -- on disk ------------------------------------------------------------

    def _load(self) -> None:
        try:
            state = json.loads(self._state_path.read_text(encoding="utf-8"))
            self._tokens.update(
                {k: str(v) for k, v in state.items() if k in self._tokens}
            )
        except (OSError, ValueError):
            pass
        if self._records_path.exists():
            good = 0
            with open(self._records_path, "rb") as handle:
                for line in handle:
                    if not line.endswith(b"\n") or not self._ingest(line[:-1], good):
                        break
                    good += len(line)
            if good != self._records_path.stat().st_size:
                with open(self._records_path, "r+b") as handle:
                    handle.truncate(good)
                self._tokens["records"] = ""  # re-read from the start, skip known
            self._end = good
        if self._checkpoints_path.exists():
            with open(self._checkpoints_path, "rb") as handle:
                for line in handle:
                    try:
                        value = json.loads(line)
                        self._checkpoints.append(
                            StoredCheckpoint(
                                tree_size=int(value["tree_size"]),
                                root_hash=base64.b64decode(value["root_hash"]),
                                note=str(value["note"]),
                                time=from_micros(int(value["time_us"])),
                            )
                        )
                    except (ValueError, KeyError, TypeError):
                        break

    def _save_state(self) -> None:
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._tokens), encoding="utf-8")
        tmp.replace(self._state_path)

    def _ingest(
        self, canonical: bytes, offset: int, parsed: dict[str, Any] | None = None
    ) -> bool:
        """Add one record's line (without newline); return ``False`` on a seq gap.

        ``parsed`` is the line's JSON when the caller already read it.
        """
        seq = len(self._time)
        try:
            payload: dict[str, Any] = (
                parsed if parsed is not None else json.loads(canonical)
            )
            if not isinstance(payload, dict):
                raise TypeError("not an object")
            if payload.get("seq") != seq:
                return False
            moment = _micros(str(payload["time"]))
            charged = float(payload.get("privacy_charged") or 0.0)
            values = {name: str(payload.get(name, "")) for name in _COLUMNS}
            query_id = str(payload.get("query_id", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            self.malformed.append(seq)
            moment = self._time[-1] if seq else 0
            charged, query_id = 0.0, ""
            values = dict.fromkeys(_COLUMNS, "?")
        self._time.append(moment)
        self._offsets.append(offset)
        self._charged.append(charged)
        for name in _COLUMNS:
            self._columns[name].append(self._codes[name].code(values[name]))
        self._leaves += sha256(b"\x00" + canonical).digest()
        requester = self._columns["requester"][-1]
        if query_id:
            if values["decision"] == "allow" and charged > 0:
                self._open_charges[(requester, query_id)] = seq
            elif values["decision"] == "error":
                given_back = self._open_charges.pop((requester, query_id), None)
                if given_back is not None:
                    self._refunded.add(given_back)
        return True

    # -- syncing --------------------------------------------------------------

    @property
    def size(self) -> int:
        """How many records the copy holds."""
        return len(self._time)

    def sync(self, link: NodeLink, *, checkpoints: bool = False) -> SyncStats:
        """Fetch what the node added since the last sync.

        Parameters
        ----------
        link : NodeLink
            The node.
        checkpoints : bool, optional
            Also fetch new signed checkpoints.

        Returns
        -------
        SyncStats
            What was fetched.

        Raises
        ------
        NodeUnavailable
            If the node cannot be read.
        """
        with self._sync_lock:
            added, calls = self._sync_records(link)
            new_checkpoints = 0
            if checkpoints:
                new_checkpoints, more = self._sync_checkpoints(link)
                calls += more
            self._save_state()
            return SyncStats(added, new_checkpoints, calls)

    def _sync_records(self, link: NodeLink) -> tuple[int, int]:
        added = calls = 0
        token = self._tokens["records"]
        with open(self._records_path, "ab") as out:
            while True:
                try:
                    page = link.records(None, page_size=MAX_PAGE_SIZE, page_token=token)
                except NodeUnavailable as exc:
                    if token and "INVALID_ARGUMENT" in str(exc):
                        token = ""  # the node no longer knows the token: start over
                        calls += 1
                        continue
                    raise
                calls += 1
                fresh = self._fresh(page.records)
                if fresh:
                    out.write(b"".join(line + b"\n" for line, _ in fresh))
                    out.flush()
                    with self._lock:
                        for line, payload in fresh:
                            self._ingest(line, self._end, payload)
                            self._end += len(line) + 1
                        self._snapshot = None
                    added += len(fresh)
                if not page.next_page_token or self.conflicts:
                    break
                token = page.next_page_token
                self._tokens["records"] = token
        return added, calls

    def _fresh(
        self, records: Sequence[StoredRecord]
    ) -> list[tuple[bytes, dict[str, Any] | None]]:
        """Check served records against the copy; return the new ones, in order.

        A record served differently than before, or a gap, is a conflict: the new
        records before it are kept, the rest of the page is not.
        """
        fresh: list[tuple[bytes, dict[str, Any] | None]] = []
        with self._lock:
            size = len(self._time)
        for stored in records:
            canonical = stored.canonical_json.encode("utf-8")
            leaf = sha256(b"\x00" + canonical).digest()
            expected = size + len(fresh)
            if stored.seq < size:
                if self.leaf(stored.seq) != leaf:
                    self.conflicts.append(
                        f"seq {stored.seq}: the node now serves a different record "
                        "than it did before"
                    )
                    break
                continue
            if stored.seq != expected:
                self.conflicts.append(
                    f"seq {stored.seq}: the node skipped seq {expected}.."
                    f"{stored.seq - 1}"
                )
                break
            if stored.leaf_hash and stored.leaf_hash != leaf:
                self.conflicts.append(
                    f"seq {stored.seq}: the leaf hash the node states is not the "
                    "hash of the record"
                )
            payload: dict[str, Any] | None
            try:
                parsed = json.loads(canonical)
                payload = parsed if isinstance(parsed, dict) else None
            except ValueError:
                payload = None
            if b"\n" in canonical or (
                payload is not None and payload.get("seq") != stored.seq
            ):
                self.conflicts.append(
                    f"seq {stored.seq}: the record's JSON names another seq"
                )
                break
            fresh.append((canonical, payload))
        return fresh

    def _sync_checkpoints(self, link: NodeLink) -> tuple[int, int]:
        added = calls = 0
        token = self._tokens["checkpoints"]
        with open(self._checkpoints_path, "ab") as out:
            while True:
                page = link.checkpoints(page_size=MAX_PAGE_SIZE, page_token=token)
                calls += 1
                with self._lock:
                    last = self._checkpoints[-1].tree_size if self._checkpoints else 0
                    for checkpoint in page.checkpoints:
                        if checkpoint.tree_size <= last:
                            continue
                        self._checkpoints.append(checkpoint)
                        last = checkpoint.tree_size
                        added += 1
                        out.write(
                            json.dumps(
                                {
                                    "tree_size": checkpoint.tree_size,
                                    "root_hash": base64.b64encode(
                                        checkpoint.root_hash
                                    ).decode(),
                                    "note": checkpoint.note,
                                    "time_us": to_micros(checkpoint.time),
                                },
                                ensure_ascii=False,
                            ).encode("utf-8")
                            + b"\n"
                        )
                if not page.next_page_token:
                    break
                token = page.next_page_token
                self._tokens["checkpoints"] = token
        return added, calls

    # -- reading --------------------------------------------------------------

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Return the signed checkpoints fetched so far, by size."""
        with self._lock:
            return list(self._checkpoints)

    def line(self, seq: int) -> bytes:
        """Return record ``seq``'s canonical JSON, as served.

        Raises
        ------
        NotFound
            If the copy does not hold it.
        """
        with self._lock:
            if not 0 <= seq < len(self._offsets):
                raise NotFound(f"record {seq} is not in the log (yet)")
            start = self._offsets[seq]
            end = self._offsets[seq + 1] if seq + 1 < len(self._offsets) else self._end
        with open(self._records_path, "rb") as handle:
            handle.seek(start)
            return handle.read(end - start - 1)

    def stored(self, seq: int) -> StoredRecord:
        """Return record ``seq`` with its hashes (computed here, not served)."""
        canonical = self.line(seq)
        payload = json.loads(canonical)
        prev = str(payload.get("prev_hash", "0" * 64))
        try:
            chain = sha256(bytes.fromhex(prev) + canonical).digest()
        except ValueError:
            chain = b""
        return StoredRecord(
            seq=seq,
            time=from_micros(self._time[seq]),
            requester=str(payload.get("requester", "")),
            purpose=str(payload.get("purpose", "")),
            decision=str(payload.get("decision", "")),
            dataset=str(payload.get("dataset", "")),
            canonical_json=canonical.decode("utf-8"),
            chain_hash=chain,
            leaf_hash=bytes(self._leaves[32 * seq : 32 * seq + 32]),
        )

    def leaf(self, seq: int) -> bytes:
        """Return the leaf hash of record ``seq`` (computed here)."""
        with self._lock:
            return bytes(self._leaves[32 * seq : 32 * seq + 32])

    def iter_lines(self, stop: int | None = None) -> Iterator[bytes]:
        """Yield the records' lines (newline included), seq 0 on, up to ``stop``."""
        with self._lock:
            count = (
                len(self._offsets) if stop is None else min(stop, len(self._offsets))
            )
        with open(self._records_path, "rb") as handle:
            for index, line in enumerate(handle):
                if index >= count:
                    return
                yield line

    def _snap(self) -> _Snapshot:
        with self._lock:
            if self._snapshot is None or self._snapshot.size != len(self._time):
                size = len(self._time)
                refunded = np.zeros(size, dtype=np.bool_)
                if self._refunded:
                    refunded[np.fromiter(self._refunded, dtype=np.int64)] = True
                self._snapshot = _Snapshot(
                    size=size,
                    time_us=np.array(self._time, dtype=np.int64),
                    codes={
                        name: np.array(self._columns[name], dtype=np.int32)
                        for name in _COLUMNS
                    },
                    charged=np.array(self._charged, dtype=np.float64),
                    refunded=refunded,
                )
            return self._snapshot

    def _value(self, column: str, code: int) -> str:
        return self._codes[column].values[code]

    def matching(self, where: LogFilter) -> IntArray:
        """Return the seqs of the records that match, ascending.

        Parameters
        ----------
        where : LogFilter
            The filter.

        Returns
        -------
        numpy.ndarray
            The seqs (int64).
        """
        snap = self._snap()
        mask = np.ones(snap.size, dtype=np.bool_)
        for name in ("requester", "purpose", "decision", "dataset", "operation"):
            wanted = getattr(where, name)
            if wanted is None:
                continue
            code = self._codes[name].index.get(wanted)
            if code is None:
                return np.zeros(0, dtype=np.int64)
            mask &= snap.codes[name] == code
        if where.since is not None:
            mask &= snap.time_us >= to_micros(where.since)
        if where.until is not None:
            mask &= snap.time_us < to_micros(where.until)
        return np.flatnonzero(mask).astype(np.int64)

    def times(self, seqs: IntArray) -> IntArray:
        """Return the times (microseconds since the epoch) of ``seqs``."""
        return self._snap().time_us[seqs]

    def column(self, name: str, seqs: IntArray) -> list[str]:
        """Return the values of one column (e.g. ``operation``) for ``seqs``."""
        codes = self._snap().codes[name][seqs]
        values = self._codes[name].values
        return [values[c] for c in codes.tolist()]

    def distinct(self, name: str) -> list[str]:
        """Return the values seen in a column, sorted (for filter suggestions)."""
        with self._lock:
            return sorted(v for v in self._codes[name].values if v)

    def value_counts(self, name: str, seqs: IntArray) -> list[tuple[str, int]]:
        """Return how often each value of a column occurs among ``seqs``, most first."""
        codes = self._snap().codes[name][seqs]
        counts = np.bincount(codes, minlength=len(self._codes[name].values))
        pairs = [
            (self._value(name, i), int(n)) for i, n in enumerate(counts.tolist()) if n
        ]
        return sorted(pairs, key=lambda p: (-p[1], p[0]))

    def requesters(self) -> list[RequesterActivity]:
        """Return every requester's activity, most recently active first."""
        snap = self._snap()
        if snap.size == 0:
            return []
        req = snap.codes["requester"]
        n = len(self._codes["requester"].values)
        decisions = self._codes["decision"].index
        counts = np.bincount(req, minlength=n)

        def by(decision: str) -> npt.NDArray[np.int64]:
            code = decisions.get(decision)
            if code is None:
                return np.zeros(n, dtype=np.int64)
            return np.bincount(req[snap.codes["decision"] == code], minlength=n)

        allowed, denied, errors = by("allow"), by("deny"), by("error")
        effective = np.where(snap.refunded, 0.0, snap.charged)
        charged = np.bincount(req, weights=effective, minlength=n)
        last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(last, req, snap.time_us)
        first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, req, snap.time_us)
        consultation = self._codes["operation"].index.get("consultation", -1)
        other = np.bincount(req[snap.codes["operation"] != consultation], minlength=n)
        out = [
            RequesterActivity(
                requester=self._value("requester", i),
                records=int(counts[i]),
                allowed=int(allowed[i]),
                denied=int(denied[i]),
                errors=int(errors[i]),
                rho_charged=float(charged[i]),
                first=from_micros(int(first[i])),
                last=from_micros(int(last[i])),
                consultations_only=not other[i],
            )
            for i in range(n)
            if counts[i]
        ]
        return sorted(out, key=lambda a: (a.last, a.requester), reverse=True)

    def charges(
        self, requester: str, purpose: str | None = None
    ) -> list[tuple[datetime, float, int]]:
        """Return ``(time, rho, seq)`` of the rho a requester was charged, by time.

        Allowed requests whose computation failed (their budget was given back,
        recorded as an ``error`` with the same query id) are left out.

        Parameters
        ----------
        requester : str
            The requester.
        purpose : str, optional
            Only requests for this purpose (per-purpose budgets).

        Returns
        -------
        list[tuple[datetime, float, int]]
            The charges.
        """
        seqs = self.matching(
            LogFilter(requester=requester, purpose=purpose, decision="allow")
        )
        snap = self._snap()
        seqs = seqs[(snap.charged[seqs] > 0) & ~snap.refunded[seqs]]
        order = np.argsort(snap.time_us[seqs], kind="stable")
        seqs = seqs[order]
        return [
            (from_micros(t), float(c), int(s))
            for s, t, c in zip(
                seqs.tolist(),
                snap.time_us[seqs].tolist(),
                snap.charged[seqs].tolist(),
                strict=True,
            )
        ]

    def denials(self) -> tuple[IntArray, IntArray, list[str]]:
        """Return ``(seqs, times in µs, requesters)`` of every denial."""
        seqs = self.matching(LogFilter(decision="deny"))
        return seqs, self.times(seqs), self.column("requester", seqs)

    def policy_runs(self) -> list[PolicyRun]:
        """Return the stretches of decisions under each policy digest, oldest first.

        Reads of the log itself are decided by a rule built into the node, not by
        the policy, and are left out.
        """
        snap = self._snap()
        if snap.size == 0:
            return []
        audit = [
            code
            for value, code in self._codes["method"].index.items()
            if value.startswith(AUDIT_METHOD_PREFIX)
        ]
        mask = ~np.isin(snap.codes["method"], audit)
        seqs = np.flatnonzero(mask)
        if not len(seqs):
            return []
        digests = snap.codes["policy_digest"][seqs]
        starts = np.concatenate(([0], np.flatnonzero(digests[1:] != digests[:-1]) + 1))
        ends = np.concatenate((starts[1:], [len(seqs)]))
        runs = []
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            first, last = int(seqs[start]), int(seqs[end - 1])
            runs.append(
                PolicyRun(
                    digest=self._value("policy_digest", int(digests[start])),
                    first_seq=first,
                    last_seq=last,
                    first=from_micros(int(snap.time_us[first])),
                    last=from_micros(int(snap.time_us[last])),
                    records=end - start,
                )
            )
        return runs

    def time_range(self) -> tuple[datetime, datetime] | None:
        """Return the earliest and latest record time, or ``None`` if empty."""
        snap = self._snap()
        if snap.size == 0:
            return None
        return from_micros(int(snap.time_us.min())), from_micros(
            int(snap.time_us.max())
        )

    def close(self) -> None:
        """Forget the copy's temporary folder, if it has one."""
        if self._temporary:
            shutil.rmtree(self._folder, ignore_errors=True)


def seq_pages(
    seqs: Sequence[int] | IntArray, page: int, size: int, newest: bool
) -> IntArray:
    """Return the seqs on page ``page`` (from 1) of ``size``, in display order.

    Parameters
    ----------
    seqs : array of int
        Every matching seq, ascending.
    page : int
        The page, from 1.
    size : int
        Records per page.
    newest : bool
        Newest first (page 1 holds the latest records).

    Returns
    -------
    numpy.ndarray
        The page's seqs, newest first if ``newest``.
    """
    array_ = np.asarray(seqs, dtype=np.int64)
    start = (page - 1) * size
    if newest:
        array_ = array_[::-1]
    return array_[start : start + size]
