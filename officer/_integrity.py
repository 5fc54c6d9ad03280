"""Checks the officer can trust: signatures, inclusion, consistency, the whole log.

Everything is checked against the **pinned** verifier key, never against the key
the node states: a node that swapped its key fails here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from policies.auditlog import (
    Checkpoint,
    InclusionProof,
    MalformedNote,
    SignatureInvalid,
    StoredCheckpoint,
    key_id,
    leaf_hash,
    parse_note,
    parse_verifier_key,
    verify_consistency,
    verify_inclusion,
    verify_log,
    verify_note,
)

from ._index import LogIndex

__all__ = [
    "CheckpointCheck",
    "Cosignature",
    "InclusionCheck",
    "LogVerification",
    "PinnedKey",
    "Verifier",
    "check_checkpoint",
    "check_inclusion",
]


@dataclass(frozen=True)
class PinnedKey:
    """The log's verifier key as the officer pinned it.

    Parameters
    ----------
    text : str
        ``<origin>+<key ID>+<key>``.
    """

    text: str

    @property
    def name(self) -> str:
        """The key name (the log's origin)."""
        return parse_verifier_key(self.text)[0]

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The Ed25519 public key."""
        return parse_verifier_key(self.text)[1]

    @property
    def key_id(self) -> str:
        """The 4-byte key ID, hex."""
        return key_id(self.name, self.public_key).hex()


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A signature on a checkpoint by another key than the log's (a witness).

    Attributes
    ----------
    key_name : str
        The signer's key name.
    key_id : str
        Its key ID, hex.
    status : str
        ``verified`` (by a pinned witness key), ``invalid``, or ``unknown key``.
    """

    key_name: str
    key_id: str
    status: str


@dataclass(frozen=True, slots=True)
class CheckpointCheck:
    """A signed checkpoint and what its signatures show.

    Attributes
    ----------
    stored : StoredCheckpoint
        The checkpoint as served.
    checkpoint : Checkpoint or None
        Its content, if the log's signature verifies with the pinned key.
    problem : str
        Why it does not verify ("" if it does).
    cosignatures : tuple[Cosignature, ...]
        Other signatures on it.
    """

    stored: StoredCheckpoint
    checkpoint: Checkpoint | None
    problem: str
    cosignatures: tuple[Cosignature, ...]

    @property
    def ok(self) -> bool:
        """Whether the log's signature verifies and the content matches."""
        return self.checkpoint is not None and not self.problem


def check_checkpoint(
    stored: StoredCheckpoint, pinned: PinnedKey, witnesses: Sequence[str] = ()
) -> CheckpointCheck:
    """Verify a checkpoint's signature with the pinned key, and list cosignatures.

    Parameters
    ----------
    stored : StoredCheckpoint
        The checkpoint as the node served it.
    pinned : PinnedKey
        The log's pinned key.
    witnesses : Sequence[str]
        Verifier keys of witnesses whose cosignatures can be checked.

    Returns
    -------
    CheckpointCheck
        The outcome.
    """
    try:
        _, signatures = parse_note(stored.note)
    except MalformedNote as exc:
        return CheckpointCheck(stored, None, f"malformed note: {exc}", ())
    problem = ""
    checkpoint: Checkpoint | None = None
    try:
        checkpoint = verify_note(stored.note, pinned.name, pinned.public_key)
    except (SignatureInvalid, MalformedNote) as exc:
        problem = str(exc)
    if checkpoint is not None:
        if checkpoint.origin != pinned.name:
            problem = f"origin {checkpoint.origin!r} is not {pinned.name!r}"
        elif (checkpoint.size, checkpoint.root_hash) != (
            stored.tree_size,
            stored.root_hash,
        ):
            problem = "the signed size or root differs from the one served beside it"
    known = {}
    for text in witnesses:
        name, key = parse_verifier_key(text)
        known[(name, key_id(name, key))] = key
    own = (pinned.name, bytes.fromhex(pinned.key_id))
    cosignatures = []
    for signature in signatures:
        ident = (signature.key_name, signature.key_id)
        if ident == own:
            continue
        witness = known.get(ident)
        if witness is None:
            status = "unknown key"
        else:
            try:
                verify_note(stored.note, signature.key_name, witness)
                status = "verified"
            except (SignatureInvalid, MalformedNote):
                status = "invalid"
        cosignatures.append(
            Cosignature(signature.key_name, signature.key_id.hex(), status)
        )
    return CheckpointCheck(stored, checkpoint, problem, tuple(cosignatures))


@dataclass(frozen=True, slots=True)
class InclusionCheck:
    """Whether a record is in the signed tree.

    Attributes
    ----------
    ok : bool
        ``True`` if the audit path leads from the record to the signed root.
    leaf_hash : bytes
        The record's leaf hash, computed here from its canonical JSON.
    problems : tuple[str, ...]
        What failed.
    """

    ok: bool
    leaf_hash: bytes
    problems: tuple[str, ...]


def check_inclusion(
    proof: InclusionProof, seq: int, signed: CheckpointCheck
) -> InclusionCheck:
    """Check a record's inclusion proof against a verified signed checkpoint.

    Parameters
    ----------
    proof : InclusionProof
        The record and its audit path, as served.
    seq : int
        The record asked for.
    signed : CheckpointCheck
        The checkpoint the proof is for, checked with the pinned key.

    Returns
    -------
    InclusionCheck
        The outcome; the leaf hash is computed from the record's JSON.
    """
    leaf = leaf_hash(proof.record.canonical_json.encode("utf-8"))
    problems = []
    if not signed.ok or signed.checkpoint is None:
        problems.append(f"the checkpoint does not verify: {signed.problem}")
        return InclusionCheck(False, leaf, tuple(problems))
    checkpoint = signed.checkpoint
    if proof.record.seq != seq:
        problems.append(f"the node sent record {proof.record.seq}, not {seq}")
    if proof.tree_size != checkpoint.size:
        problems.append(
            f"the proof is for tree size {proof.tree_size}, not {checkpoint.size}"
        )
    if not verify_inclusion(
        leaf, seq, checkpoint.size, proof.hashes, checkpoint.root_hash
    ):
        problems.append(
            "the audit path does not lead from the record to the signed root"
        )
    return InclusionCheck(not problems, leaf, tuple(problems))


def check_consistency(
    older: Checkpoint, newer: Checkpoint, proof: Sequence[bytes]
) -> bool:
    """Check that ``newer`` extends ``older`` (both verified checkpoints).

    Parameters
    ----------
    older, newer : Checkpoint
        Two checkpoints signed by the pinned key.
    proof : Sequence[bytes]
        The node's consistency proof between their sizes.

    Returns
    -------
    bool
        ``True`` if the newer tree contains the older one unchanged.
    """
    return verify_consistency(
        older.size, newer.size, older.root_hash, newer.root_hash, list(proof)
    )


@dataclass(frozen=True, slots=True)
class LogVerification:
    """The outcome of verifying the local copy of the whole log.

    Attributes
    ----------
    tree_size : int
        Records verified: seq 0 up to the latest signed checkpoint.
    ok : bool
        No problem found.
    checkpoints : int
        Signed checkpoints examined.
    attested_size : int
        Leading records covered by a matching signed checkpoint.
    first_bad_seq : int or None
        Where trust ends, if somewhere.
    problems : tuple[str, ...]
        Every problem found.
    seconds : float
        How long verification took.
    verified_at : datetime
        When.
    extends_saved : bool
        Whether a checkpoint saved by an earlier verification was checked too.
    """

    tree_size: int
    ok: bool
    checkpoints: int
    attested_size: int
    first_bad_seq: int | None
    problems: tuple[str, ...]
    seconds: float
    verified_at: datetime
    extends_saved: bool


class Verifier:
    """Verifies the whole local copy with ``verify_log``; caches by signed tree size.

    After each successful verification the latest checkpoint is saved (in
    ``folder``), and the next verification requires the log to extend it, so a
    history rewritten since -- even one that would verify on its own -- is caught.

    Parameters
    ----------
    pinned : PinnedKey
        The log's pinned key.
    folder : Path, optional
        Where to keep the last verified checkpoint note.
    clock : Callable[[], datetime]
        The time stamped on results.
    """

    def __init__(
        self,
        pinned: PinnedKey,
        folder: Path | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._pinned = pinned
        self._clock = clock
        self._saved_path = (
            None if folder is None else folder / f"verified-{pinned.key_id}.note"
        )
        self._lock = threading.Lock()
        self._cache: LogVerification | None = None

    @property
    def cached(self) -> LogVerification | None:
        """The last result, if any."""
        return self._cache

    def saved_note(self) -> str | None:
        """Return the checkpoint saved by the last successful verification."""
        if self._saved_path is None or not self._saved_path.exists():
            return None
        try:
            return self._saved_path.read_text(encoding="utf-8")
        except OSError:
            return None

    def verify(self, index: LogIndex) -> LogVerification:
        """Verify the copy up to its latest checkpoint (cached by that size).

        Parameters
        ----------
        index : LogIndex
            The copy, synced with checkpoints.

        Returns
        -------
        LogVerification
            The findings.
        """
        with self._lock:
            checkpoints = index.checkpoints()
            covered = [c for c in checkpoints if c.tree_size <= index.size]
            size = covered[-1].tree_size if covered else 0
            if self._cache is not None and self._cache.tree_size == size:
                return self._cache
            since = self.saved_note()
            started = time.perf_counter()
            report = verify_log(
                index.iter_lines(size),
                [c.note for c in covered],
                self._pinned.name,
                self._pinned.public_key,
                since=since,
                origin=self._pinned.name,
            )
            problems = list(report.problems)
            problems += [f"local copy: {c}" for c in index.conflicts]
            result = LogVerification(
                tree_size=size,
                ok=report.ok and not index.conflicts,
                checkpoints=report.checkpoints,
                attested_size=report.attested_size,
                first_bad_seq=report.first_bad_seq,
                problems=tuple(problems),
                seconds=time.perf_counter() - started,
                verified_at=self._clock(),
                extends_saved=since is not None,
            )
            if result.ok and covered and self._saved_path is not None:
                tmp = self._saved_path.with_suffix(".tmp")
                tmp.write_text(covered[-1].note, encoding="utf-8")
                tmp.replace(self._saved_path)
            self._cache = result
            return result
