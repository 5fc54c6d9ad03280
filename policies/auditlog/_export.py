r"""Exports of the decision log: verifiable JSON Lines, and CSV for spreadsheets.

The JSONL export (format ``accord-decision-log-export``, version 1) is UTF-8 text,
one JSON value per line, ``\n``-terminated:

1. a header line::

       {"type":"header","format":"accord-decision-log-export","version":1,
        "origin":"audit.agency-a.demo","verifier_key":"audit.agency-a.demo+…",
        "tree_size":4096,"exported_at":"2025-03-01T08:30:00.000000Z"}

2. the records, seq 0 to ``tree_size - 1`` in order, each line **exactly the
   record's canonical JSON** -- the bytes the log hashed (sorted keys, no spaces,
   so its first key is always ``"columns"``); records carry no ``type`` key;
3. the signed checkpoints with ``tree_size`` up to the header's, by size::

       {"type":"checkpoint","tree_size":4096,"root_hash":"<base64>",
        "time":"…Z","note":"audit.agency-a.demo\n4096\n<base64 root>\n\n— …\n"}

Lines that start with ``{"type":`` are header or checkpoint lines; every other
non-blank line is a record. The header's ``verifier_key`` is informative only:
verification uses the key the officer pinned (``accord audit verify
--public-key``), and a header naming another key is reported. An export always
ends at a signed checkpoint (the latest when it was made), so every record in it
is covered by a signature; newer records go into the next export.

The CSV export has one row per record with the columns of :data:`CSV_COLUMNS`;
list fields are joined with ``;``. It is for reading, not for verification. Cells
that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``, tab or carriage return) are prefixed with ``'``.
"""

from __future__ import annotations

import base64
import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from ._errors import AuditLogError, MalformedNote, MalformedRecord
from ._logerrors import ExportInvalid
from ._note import parse_note, parse_verifier_key, verify_note
from ._record import DecisionRecord
from ._store import RecordFilter, StoredCheckpoint, StoredRecord
from ._verify import VerificationReport, verify_log

__all__ = [
    "CSV_COLUMNS",
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "ExportSummary",
    "ExportVerification",
    "LogSource",
    "export_log",
    "read_note_file",
    "record_payload",
    "verify_export",
]

EXPORT_FORMAT = "accord-decision-log-export"
"""The ``format`` value of an export's header line."""

EXPORT_VERSION = 1
"""The ``version`` value of an export's header line."""

CSV_COLUMNS = (
    "seq",
    "time",
    "operation",
    "requester",
    "on_behalf_of",
    "purpose",
    "legal_basis",
    "justification",
    "dataset",
    "columns",
    "decision",
    "matched_rules",
    "reason",
    "privacy_charged",
    "privacy_remaining",
    "recipients",
    "query_id",
    "method",
    "request_hash",
    "policy_digest",
    "prev_hash",
    "chain_hash",
)
"""Columns of the CSV export, in order."""

_META = b'{"type":'
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class LogSource(Protocol):
    """Where an export reads a log: a local reader or a node over gRPC."""

    @property
    def origin(self) -> str:
        """The log's origin."""
        ...

    @property
    def verifier_key(self) -> str:
        """The log's verifier key, as the log states it."""
        ...

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the latest signed checkpoint, or ``None``."""
        ...

    def iter_records(
        self, where: RecordFilter | None = None, *, stop: int | None = None
    ) -> Iterator[StoredRecord]:
        """Yield matching records with ``seq < stop``, by seq."""
        ...

    def iter_checkpoints(
        self, *, stop: int | None = None
    ) -> Iterator[StoredCheckpoint]:
        """Yield checkpoints with ``tree_size <= stop``, by size."""
        ...


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What :func:`export_log` wrote.

    Attributes
    ----------
    origin : str
        The log's origin.
    tree_size : int
        The export covers seq 0 to ``tree_size - 1``.
    records : int
        Record lines written.
    checkpoints : int
        Checkpoint lines written.
    """

    origin: str
    tree_size: int
    records: int
    checkpoints: int


def _time(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = ";".join(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def _csv_row(stored: StoredRecord) -> list[str]:
    try:
        payload: dict[str, Any] = json.loads(stored.canonical_json)
    except ValueError:
        payload = {"seq": stored.seq}
    if not isinstance(payload, dict):
        payload = {"seq": stored.seq}
    payload["chain_hash"] = stored.chain_hash.hex()
    return [
        str(payload[name]) if name == "seq" else _csv_cell(payload.get(name))
        for name in CSV_COLUMNS
    ]


def _open_atomic(path: Path) -> tuple[IO[bytes], Path]:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    return open(tmp, "wb"), tmp


def _finish(handle: IO[bytes], tmp: Path, path: Path) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    tmp.replace(path)


def export_log(
    source: LogSource,
    out: Path,
    *,
    csv_out: Path | None = None,
    now: datetime,
) -> ExportSummary:
    """Export a log up to its latest checkpoint as JSONL (and CSV).

    Each file is written to a temporary name and renamed when complete, so a
    failed export leaves no partial file behind.

    Parameters
    ----------
    source : LogSource
        The log.
    out : Path
        The JSONL export to write.
    csv_out : Path, optional
        Also write the records as CSV here.
    now : datetime
        The export time, stamped in the header.

    Returns
    -------
    ExportSummary
        What was written.

    Raises
    ------
    LogUnavailable
        If the log cannot be read.
    OSError
        If a file cannot be written.
    """
    latest = source.latest_checkpoint()
    size = 0 if latest is None else latest.tree_size
    header = {
        "type": "header",
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "origin": source.origin,
        "verifier_key": source.verifier_key,
        "tree_size": size,
        "exported_at": _time(now),
    }
    handle, tmp = _open_atomic(out)
    csv_handle: IO[bytes] | None = None
    csv_tmp: Path | None = None
    records = checkpoints = 0
    try:
        if csv_out is not None:
            csv_handle, csv_tmp = _open_atomic(csv_out)
        text = (
            None
            if csv_handle is None
            else _TextSink(csv_handle)  # csv needs a text stream
        )
        writer = None if text is None else csv.writer(text, lineterminator="\r\n")
        if writer is not None:
            writer.writerow(CSV_COLUMNS)
        handle.write(_dumps(header))
        for stored in source.iter_records(stop=size):
            handle.write(stored.canonical_json.encode("utf-8") + b"\n")
            if writer is not None:
                writer.writerow(_csv_row(stored))
            records += 1
        for checkpoint in source.iter_checkpoints(stop=size):
            handle.write(
                _dumps(
                    {
                        "type": "checkpoint",
                        "tree_size": checkpoint.tree_size,
                        "root_hash": base64.b64encode(checkpoint.root_hash).decode(),
                        "time": _time(checkpoint.time),
                        "note": checkpoint.note,
                    }
                )
            )
            checkpoints += 1
        _finish(handle, tmp, out)
        if csv_handle is not None and csv_tmp is not None and csv_out is not None:
            _finish(csv_handle, csv_tmp, csv_out)
    except BaseException:
        for h, t in ((handle, tmp), (csv_handle, csv_tmp)):
            if h is not None:
                h.close()
            if t is not None:
                t.unlink(missing_ok=True)
        raise
    return ExportSummary(source.origin, size, records, checkpoints)


class _TextSink:
    """A minimal text stream over a binary file, for :mod:`csv` (UTF-8 with BOM)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        handle.write(b"\xef\xbb\xbf")  # spreadsheets then read UTF-8 correctly

    def write(self, text: str) -> int:
        self._handle.write(text.encode("utf-8", "surrogatepass"))
        return len(text)


def _dumps(value: dict[str, Any]) -> bytes:
    return (
        json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        + b"\n"
    )


@dataclass
class ExportVerification:
    """The outcome of :func:`verify_export`.

    Attributes
    ----------
    report : VerificationReport
        The verifier's findings on records and checkpoints.
    origin : str
        The origin the export's header names.
    header_tree_size : int
        The tree size the header claims.
    problems : list[str]
        Every problem: the report's, then those about the file itself.
    first_bad_seq : int or None
        The lowest sequence number from which the export cannot be trusted: the
        report's, or the first record no signed checkpoint covers.
    latest_note : str or None
        The signed note of the largest checkpoint that verified and matches the
        records (save it, pass it as ``--since`` next time).
    """

    report: VerificationReport
    origin: str
    header_tree_size: int
    problems: list[str] = field(default_factory=list)
    first_bad_seq: int | None = None
    latest_note: str | None = None

    @property
    def ok(self) -> bool:
        """``True`` if no problem was found."""
        return not self.problems


def read_note_file(path: Path) -> str:
    """Read a saved checkpoint: a signed note, or an export's checkpoint line.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    str
        The signed note text.

    Raises
    ------
    ExportInvalid
        If the file cannot be read or holds no signed checkpoint note.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportInvalid(f"cannot read checkpoint file {path}: {exc}") from None
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            raise ExportInvalid(f"{path}: not JSON nor a signed note") from None
        note = value.get("note") if isinstance(value, dict) else None
        if not isinstance(note, str):
            raise ExportInvalid(f"{path}: a JSON checkpoint needs a 'note' string")
        text = note
    try:
        parse_note(text)
    except MalformedNote as exc:
        raise ExportInvalid(f"{path}: not a signed checkpoint note: {exc}") from None
    return text


def _read_meta(path: Path) -> tuple[dict[str, Any], list[tuple[int, str]], list[str]]:
    """First pass: the header, the checkpoint notes (with line numbers), problems."""
    header: dict[str, Any] | None = None
    notes: list[tuple[int, str]] = []
    problems: list[str] = []
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise ExportInvalid(
            f"cannot read export {path}: {exc.strerror or exc}"
        ) from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.startswith(_META):
                if header is None and line.strip():
                    raise ExportInvalid(
                        f"{path}: line {number} comes before the header; not an "
                        f"{EXPORT_FORMAT} file"
                    )
                continue
            try:
                value = json.loads(line)
            except ValueError:
                problems.append(
                    f"export line {number}: malformed header or checkpoint line"
                )
                continue
            kind = value.get("type") if isinstance(value, dict) else None
            if kind == "header" and header is None and number == 1:
                header = value
            elif kind == "checkpoint" and isinstance(value.get("note"), str):
                notes.append((number, value["note"]))
            else:
                problems.append(f"export line {number}: unexpected {kind!r} line")
    if header is None:
        raise ExportInvalid(f"{path}: no header line; not an {EXPORT_FORMAT} file")
    if header.get("format") != EXPORT_FORMAT or header.get("version") != EXPORT_VERSION:
        raise ExportInvalid(
            f"{path}: format {header.get('format')!r} version "
            f"{header.get('version')!r}; expected {EXPORT_FORMAT} version {EXPORT_VERSION}"
        )
    return header, notes, problems


def _record_lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        for line in handle:
            if line.startswith(_META) or not line.strip():
                continue
            yield line


def verify_export(
    path: Path, verifier_key: str, *, since: str | None = None
) -> ExportVerification:
    """Verify an export offline against a pinned verifier key.

    Checks every checkpoint signature, the hash chain, that the records rebuild
    each signed root, that no signed record is missing at the end, and, with
    ``since``, that the log extends a checkpoint saved earlier.

    Parameters
    ----------
    path : Path
        The JSONL export.
    verifier_key : str
        The pinned key, ``<origin>+<key ID>+<base64 key>``.
    since : str, optional
        A signed checkpoint note saved earlier.

    Returns
    -------
    ExportVerification
        The findings.

    Raises
    ------
    ExportInvalid
        If the file is not an export, or cannot be read.
    MalformedNote
        If ``verifier_key`` is not a verifier key.
    """
    key_name, public_key = parse_verifier_key(verifier_key)
    header, notes, file_problems = _read_meta(path)
    if header.get("verifier_key") != verifier_key:
        file_problems.append(
            f"the export names verifier key {header.get('verifier_key')!r}, not the "
            "pinned one"
        )
    report = verify_log(
        _record_lines(path),
        [note for _, note in notes],
        key_name,
        public_key,
        since=since,
        origin=key_name,
    )
    header_size = header.get("tree_size")
    if not isinstance(header_size, int) or header_size != report.records:
        file_problems.append(
            f"the header announces {header_size!r} records, the export holds "
            f"{report.records}"
        )
    latest: str | None = None
    for _, note in notes:
        try:
            if (
                parse_note(note)[0].size != report.attested_size
                or not report.attested_size
            ):
                continue
            verify_note(note, key_name, public_key)
        except AuditLogError:
            continue
        latest = note
    first_bad = report.first_bad_seq
    if report.ok and report.attested_size < report.records:
        # An export ends at a signed checkpoint: records after it were added
        # (the chain needs no key, so anyone can extend it).
        file_problems.append(
            f"seq {report.attested_size}..{report.records - 1} are not covered by any "
            "signed checkpoint (an export ends at one): added after export"
        )
        first_bad = report.attested_size
    return ExportVerification(
        report=report,
        origin=str(header.get("origin", "")),
        header_tree_size=header_size if isinstance(header_size, int) else -1,
        problems=[*report.problems, *file_problems],
        first_bad_seq=first_bad,
        latest_note=latest,
    )


def record_payload(stored: StoredRecord) -> dict[str, Any]:
    """Return a stored record as a JSON-ready dict (its fields and chain hash).

    Parameters
    ----------
    stored : StoredRecord
        The record.

    Returns
    -------
    dict[str, Any]
        The record's payload plus ``chain_hash`` (hex); a record whose JSON is
        not canonical is shown raw under ``canonical_json`` with ``malformed``.
    """
    try:
        payload: dict[str, Any] = DecisionRecord.from_json(
            stored.canonical_json
        ).to_dict()
    except MalformedRecord as exc:
        return {
            "seq": stored.seq,
            "malformed": str(exc),
            "canonical_json": stored.canonical_json,
        }
    payload["chain_hash"] = stored.chain_hash.hex()
    return payload
