"""Offline verification of an exported decision log against its signed checkpoints.

The verifier replays the records in the order given and checks that

1. sequence numbers run 0, 1, 2, ... without gaps, repeats or reordering;
2. every record's ``prev_hash`` is the chain hash of the record before it (64
   zeros for record 0);
3. every checkpoint note is signed by the pinned log key and names one origin;
4. the RFC 6962 tree rebuilt from the records has, at each checkpoint's size,
   exactly the checkpoint's root;
5. no checkpoint is beyond the last record (the tail was not cut off after it
   was signed), and an earlier saved checkpoint (``since``) is a prefix of the
   records, which proves the log was not rewritten since it was saved.

Where a problem can be pinned to one record (a broken link, a gap, a malformed
record), ``first_bad_seq`` names it; a broken link between records k and k+1
names k, the earlier. A record rewritten together with every later link is
caught only by the checkpoints: then ``first_bad_seq`` is the first record after
the last checkpoint that still matches. If the records match one signed
checkpoint but not an earlier one (or the saved ``since`` one), the log key has
signed two different histories, and ``first_bad_seq`` is 0. Records after the
last checkpoint are protected by the hash chain only; ``attested_size`` says how
many are covered.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from hashlib import sha256

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._errors import MalformedNote, MalformedRecord, SignatureInvalid
from ._merkle import MerkleTree
from ._note import parse_note, verify_note
from ._record import DecisionRecord, check_payload, encode_payload, scan_line

__all__ = ["VerificationReport", "verify_log"]

_LEAF = b"\x00"
_raw_decode = json.JSONDecoder().raw_decode


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """The outcome of :func:`verify_log`.

    Attributes
    ----------
    ok : bool
        ``True`` if no problem was found.
    records : int
        Number of records read.
    checkpoints : int
        Number of checkpoint notes examined (``since`` not included).
    first_bad_seq : int or None
        Lowest sequence number from which the log cannot be trusted, or ``None``
        if no record is implicated (a problem may still concern a checkpoint).
    problems : list[str]
        One line per problem, each naming the seq or checkpoint concerned.
    attested_size : int
        Number of leading records covered by a matching signed checkpoint.
    """

    ok: bool
    records: int
    checkpoints: int
    first_bad_seq: int | None
    problems: list[str]
    attested_size: int = 0


class _Findings:
    """Collects problems (capped) and the sequence numbers they implicate."""

    def __init__(self, max_problems: int) -> None:
        self.problems: list[str] = []
        self.dropped = 0
        self.max_problems = max_problems
        self.blamed: list[int] = []  # seqs implicated by record-level problems
        self.first_bad: int | None = None

    def add(self, message: str, seq: int | None = None) -> None:
        if len(self.problems) < self.max_problems:
            self.problems.append(message)
        else:
            self.dropped += 1
        if seq is not None:
            self.blamed.append(seq)
            if self.first_bad is None or seq < self.first_bad:
                self.first_bad = seq

    def add_blame(self, seq: int) -> None:
        if self.first_bad is None or seq < self.first_bad:
            self.first_bad = seq

    def listing(self) -> list[str]:
        if self.dropped:
            return [*self.problems, f"... and {self.dropped} more problems"]
        return list(self.problems)


def _load_checkpoints(
    notes: Iterable[tuple[str, str | bytes]],
    key_name: str,
    public_key: Ed25519PublicKey,
    origin: str | None,
    findings: _Findings,
) -> dict[int, list[tuple[str, bytes]]]:
    """Verify the notes; return the good ones as size -> [(label, root)]."""
    pending: dict[int, list[tuple[str, bytes]]] = {}
    for label, note in notes:
        try:
            claimed, _ = parse_note(note)
        except MalformedNote as exc:
            findings.add(f"{label}: malformed: {exc}")
            continue
        label = f"{label} (size {claimed.size})"
        try:
            checkpoint = verify_note(note, key_name, public_key)
        except SignatureInvalid as exc:
            findings.add(f"{label}: {exc}")
            continue
        if origin is not None and checkpoint.origin != origin:
            findings.add(
                f"{label}: origin {checkpoint.origin!r} is not the log's {origin!r}"
            )
            continue
        pending.setdefault(checkpoint.size, []).append((label, checkpoint.root_hash))
    return pending


def verify_log(
    records: Iterable[DecisionRecord | Mapping[str, object] | str | bytes],
    checkpoints: Iterable[str | bytes],
    key_name: str,
    public_key: Ed25519PublicKey,
    *,
    since: str | bytes | None = None,
    origin: str | None = None,
    max_problems: int = 100,
) -> VerificationReport:
    """Verify exported decision records against the log's signed checkpoints.

    Parameters
    ----------
    records : Iterable[DecisionRecord | Mapping[str, object] | str | bytes]
        Every record from seq 0 on, in log order, read once (streaming). Each is a
        record, a payload parsed from JSON (see :meth:`DecisionRecord.to_dict`), or
        one line of an export (its canonical JSON, a trailing newline allowed).
        An export line is hashed as given, so it must be byte-identical to what
        the log wrote; this is also the fastest form, as nothing is re-encoded.
    checkpoints : Iterable[str | bytes]
        Signed checkpoint notes published by the log, in any order.
    key_name : str
        The log's pinned key name.
    public_key : Ed25519PublicKey
        The log's pinned public key.
    since : str or bytes, optional
        A checkpoint note saved earlier by the verifier; the records must extend it.
    origin : str, optional
        The log's origin; by default, that of the first valid checkpoint.
    max_problems : int, optional
        Problems listed before the rest are only counted (default 100).

    Returns
    -------
    VerificationReport
        The findings; ``ok`` is ``False`` on any problem, including records that
        no valid checkpoint covers at all.
    """
    findings = _Findings(max_problems)
    notes = [(f"checkpoint {i}", note) for i, note in enumerate(checkpoints)]
    if origin is None:
        origin = _first_origin(notes, key_name, public_key)
    if since is not None:
        notes.append(("since checkpoint", since))
    pending = _load_checkpoints(notes, key_name, public_key, origin, findings)
    signed = bool(pending)

    tree = MerkleTree()
    attested = 0  # size of the largest checkpoint matched so far
    mismatches: list[tuple[int, int, str]] = []  # (attested then, size, label)

    def check_roots(size: int) -> None:
        nonlocal attested
        actual = tree.root()
        for label, root_hash in pending.pop(size):
            if root_hash == actual:
                attested = max(attested, size)
            else:
                mismatches.append((attested, size, label))
                findings.add(
                    f"{label}: signed root does not match the records; a record in "
                    f"seq {attested}..{size - 1} was altered, inserted, removed or "
                    "reordered"
                )

    if 0 in pending:
        check_roots(0)
    prev_seq = -1
    prev_chain: bytes | None = bytes(32)  # None: the previous record was malformed
    append = tree.append
    for item in records:
        expected = prev_seq + 1
        try:
            canonical, seq, prev_hex = _read_record(item)
        except MalformedRecord as exc:
            findings.add(f"seq {expected}: malformed record: {exc}", expected)
            if append(sha256(_LEAF + _best_effort_bytes(item)).digest()) + 1 in pending:
                check_roots(tree.size)
            prev_seq, prev_chain = expected, None
            continue

        prev_hash = bytes.fromhex(prev_hex)
        if seq == expected:
            blame = prev_seq  # a broken link implicates the earlier record
        elif seq > expected:
            blame = expected
            missing = f"seq {expected}" + (f"..{seq - 1}" if seq > expected + 1 else "")
            findings.add(f"seq {seq}: follows seq {prev_seq}; {missing} missing", blame)
        else:
            blame = seq
            findings.add(
                f"seq {seq}: out of order or repeated (follows seq {prev_seq})", blame
            )
        if prev_hash != prev_chain and prev_chain is not None:
            if prev_seq < 0:
                findings.add(f"seq {seq}: first record's prev_hash is not zero", seq)
            else:
                findings.add(
                    f"seq {seq}: prev_hash is not the chain hash of the record "
                    f"before it (seq {prev_seq}); one of the two was altered",
                    blame,
                )
        prev_chain = sha256(prev_hash + canonical).digest()
        if seq > prev_seq:
            prev_seq = seq
        if append(sha256(_LEAF + canonical).digest()) + 1 in pending:
            check_roots(tree.size)

    size = tree.size
    for beyond in sorted(pending):
        for label, _ in pending[beyond]:
            findings.add(
                f"{label}: beyond the last record; seq {size}..{beyond - 1} missing "
                "(log truncated after it was signed)",
                size,
            )
    located = sorted(findings.blamed)
    for start, end, label in mismatches:
        if attested >= end:
            # A later signed root matches these very records, so the log key
            # signed two different histories: nothing from seq 0 on is settled.
            findings.add(
                f"{label}: inconsistent with the checkpoint of size {attested} that "
                "matches the records; the log signed two different histories",
                0,
            )
        elif not _any_between(located, start, end):
            # Otherwise the mismatch implicates its whole batch, unless a
            # record-level problem inside the batch already pins it down.
            findings.add_blame(start)
    if size and not signed:
        findings.add(
            f"no valid checkpoint signed by {key_name} covers the {size} records"
        )
    problems = findings.listing()
    return VerificationReport(
        ok=not problems,
        records=size,
        checkpoints=len(notes) - (since is not None),
        first_bad_seq=findings.first_bad,
        problems=problems,
        attested_size=attested,
    )


def _any_between(ordered: list[int], start: int, end: int) -> bool:
    """Return whether the sorted list holds a value in ``start..end-1``."""
    i = bisect_left(ordered, start)
    return i < len(ordered) and ordered[i] < end


def _first_origin(
    notes: list[tuple[str, str | bytes]], key_name: str, public_key: Ed25519PublicKey
) -> str | None:
    for _, note in notes:
        try:
            return verify_note(note, key_name, public_key).origin
        except (MalformedNote, SignatureInvalid):
            continue
    return None


def _read_record(item: object) -> tuple[bytes, int, str]:
    """Return a record's canonical bytes, its seq and its prev_hash (checked)."""
    if isinstance(item, (str, bytes)):
        return _read_line(item)
    payload: Mapping[str, object]
    if isinstance(item, DecisionRecord):
        payload = item.to_dict()
    elif isinstance(item, Mapping):
        check_payload(item)
        payload = item
    else:
        raise MalformedRecord(
            f"expected a record, payload or JSON line, not {type(item).__name__}"
        )
    return (encode_payload(payload), *_seq_and_prev_hash(payload))


def _read_line(line: str | bytes) -> tuple[bytes, int, str]:
    """Read one export line; its bytes are what the log hashed."""
    try:
        if isinstance(line, str):
            text, data = line, line.encode("utf-8")
        else:
            text, data = line.decode("utf-8"), line
    except UnicodeError:
        raise MalformedRecord("line is not valid UTF-8") from None
    if text.endswith("\n"):
        text, data = text[:-1], data[:-1]
    scanned = scan_line(text)
    if scanned is not None:
        return (data, *scanned)
    try:
        payload, end = _raw_decode(text)
    except ValueError as exc:
        raise MalformedRecord(f"line is not valid JSON: {exc}") from None
    if end != len(text):
        raise MalformedRecord(f"line has trailing text at character {end}")
    if not isinstance(payload, dict):
        raise MalformedRecord(
            f"line holds a JSON {type(payload).__name__}, not an object"
        )
    check_payload(payload)
    return (data, *_seq_and_prev_hash(payload))


def _seq_and_prev_hash(payload: Mapping[str, object]) -> tuple[int, str]:
    seq, prev_hash = payload["seq"], payload["prev_hash"]
    assert isinstance(seq, int) and isinstance(prev_hash, str)  # checked
    return seq, prev_hash


def _best_effort_bytes(item: object) -> bytes:
    """Bytes to hash for a malformed record, so later checkpoints still line up."""
    if isinstance(item, bytes):
        return item[:-1] if item.endswith(b"\n") else item
    if isinstance(item, str):
        item = item.encode("utf-8", "surrogatepass")
        return _best_effort_bytes(item)
    try:
        return encode_payload(item)  # type: ignore[arg-type]
    except (MalformedRecord, TypeError, ValueError):
        return b""
