"""``accord audit``: show, export and verify a node's decision log; print its key.

Reads a log either from a node over gRPC, with an officer's TLS kit (``--node
HOST:PORT --ca --cert --key``; the node logs each call), or locally at the node's
host from its database (``--db URL``, read-only, no key needed). Verification
(``accord audit verify``) needs neither: only the export and the pinned key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn, Protocol

import typer
from rich.console import Console
from rich.table import Table

from ._errors import AuditLogError, MalformedNote
from ._export import export_log, read_note_file, record_payload, verify_export
from ._logerrors import ExportInvalid
from ._reader import RecordPage, open_log_reader
from ._record import DECISIONS
from ._store import RecordFilter, StoredCheckpoint, StoredRecord

__all__ = ["EXIT_CODES", "cli"]

EXIT_NOT_VERIFIED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNAVAILABLE: Final = 3
EXIT_CODES: Final[dict[int, str]] = {
    EXIT_NOT_VERIFIED: (
        "The log did not verify: a record was altered, inserted, removed or "
        "reordered, a signature failed, or the log does not extend the saved "
        "checkpoint. The first bad sequence number and every problem are printed."
    ),
    EXIT_USAGE: (
        "The command was used wrongly: a missing or unreadable file, a bad option "
        "value, or a file that is not a decision-log export."
    ),
    EXIT_UNAVAILABLE: (
        "The log could not be read: the node is unreachable or refused the "
        "certificate (only officers of the node's agency may read its log), or "
        "the database holds no decision log."
    ),
}

cli = typer.Typer(
    name="audit",
    help="Show, export and verify a node's tamper-evident decision log.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class OutputFormat(StrEnum):
    """How a command prints its result."""

    table = "table"
    json = "json"


FormatOption = Annotated[
    OutputFormat, typer.Option("--format", help="table (for people) or json.")
]
NodeOption = Annotated[
    str | None,
    typer.Option(
        "--node",
        help="Read from this node (HOST:PORT) with an officer's TLS kit.",
        show_default=False,
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Read the log's database directly (at the node's host), e.g. "
        "sqlite:///var/lib/accord/audit.db.",
        show_default=False,
    ),
]
CaOption = Annotated[
    Path | None,
    typer.Option("--ca", help="The federation CA certificate.", show_default=False),
]
CertOption = Annotated[
    Path | None,
    typer.Option("--cert", help="The officer's certificate.", show_default=False),
]
KeyOption = Annotated[
    Path | None,
    typer.Option("--key", help="The officer's private key.", show_default=False),
]
ServerNameOption = Annotated[
    str | None,
    typer.Option(
        "--server-name",
        help="Check the node's certificate against this name instead of the host.",
        show_default=False,
    ),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Deadline of each call to the node, in s.")
]


class _Source(Protocol):
    """What the commands need from a log, local or remote."""

    @property
    def origin(self) -> str: ...

    @property
    def verifier_key(self) -> str: ...

    def records(
        self,
        where: RecordFilter | None = None,
        *,
        page_size: int = 100,
        page_token: str = "",
    ) -> RecordPage: ...

    def latest_checkpoint(self) -> StoredCheckpoint | None: ...

    def iter_records(
        self, where: RecordFilter | None = None, *, stop: int | None = None
    ) -> Iterator[StoredRecord]: ...

    def iter_checkpoints(
        self, *, stop: int | None = None
    ) -> Iterator[StoredCheckpoint]: ...

    def close(self) -> None: ...


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int) -> NoReturn:
    """Print one line on stderr and exit with ``code``."""
    _err().print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


@contextmanager
def _source(
    node: str | None,
    db: str | None,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    server_name: str | None,
    timeout: float,
) -> Iterator[_Source]:
    """Open the log the options name; map failures to one line and an exit code."""
    if (node is None) == (db is None):
        _fail("give exactly one of --node HOST:PORT or --db URL", EXIT_USAGE)
    source: _Source
    if db is not None:
        if any(v is not None for v in (ca, cert, key, server_name)):
            _fail(
                "--ca, --cert, --key and --server-name go with --node, not --db",
                EXIT_USAGE,
            )
        try:
            source = open_log_reader(db)
        except AuditLogError as exc:
            _fail(str(exc), EXIT_UNAVAILABLE)
    else:
        assert node is not None
        missing = [
            n for n, v in (("--ca", ca), ("--cert", cert), ("--key", key)) if v is None
        ]
        if missing:
            _fail(
                f"--node needs the officer's TLS kit: {', '.join(missing)} missing",
                EXIT_USAGE,
            )
        assert ca is not None and cert is not None and key is not None
        import pki

        from ._remote import RemoteLog

        try:
            material = pki.TlsFiles(ca=ca, cert=cert, key=key).read()
        except pki.PkiError as exc:
            _fail(str(exc), EXIT_USAGE)
        source = RemoteLog(node, material, server_name=server_name, timeout=timeout)
    try:
        yield source
    except AuditLogError as exc:
        _fail(str(exc), EXIT_UNAVAILABLE)
    finally:
        source.close()


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        _fail(
            f"{option}: {value!r} is not an ISO 8601 time (e.g. 2025-03-01T08:30:00Z)",
            EXIT_USAGE,
        )
    return (
        moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    )


def _short_requester(uri: str) -> str:
    """``spiffe://<federation>/agency/a/role/name`` -> ``a/role/name`` (tables only)."""
    _, sep, rest = uri.partition("/agency/")
    return rest if sep and uri.startswith("spiffe://") else uri


def _short_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


@cli.command("show")
def show_command(
    node: NodeOption = None,
    db: DbOption = None,
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    server_name: ServerNameOption = None,
    requester: Annotated[
        str | None, typer.Option("--requester", help="Only this requester (SAN URI).")
    ] = None,
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="Only this purpose.")
    ] = None,
    decision: Annotated[
        str | None, typer.Option("--decision", help="Only allow, deny or error.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Only this dataset.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only records at or after this time (ISO 8601; UTC if no offset).",
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only records before this time.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Show at most this many records.")
    ] = 100,
    fmt: FormatOption = OutputFormat.table,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Show decision records, oldest first, that match the filters."""
    if decision is not None and decision not in DECISIONS:
        _fail(
            f"--decision: {decision!r} is not one of {', '.join(sorted(DECISIONS))}",
            EXIT_USAGE,
        )
    where = RecordFilter(
        requester=requester,
        purpose=purpose,
        decision=decision,
        dataset=dataset,
        since=_parse_time(since, "--since"),
        until=_parse_time(until, "--until"),
    )
    found: list[StoredRecord] = []
    more = False
    tree_size = 0
    with _source(node, db, ca, cert, key, server_name, timeout) as source:
        token = ""
        while True:
            page = source.records(
                where, page_size=min(limit + 1 - len(found), 1000), page_token=token
            )
            tree_size = max(tree_size, page.tree_size)
            found.extend(page.records)
            token = page.next_page_token
            if len(found) > limit:
                more = True
                del found[limit:]
                break
            if not token:
                break
        origin = source.origin
    if fmt is OutputFormat.json:
        _print_json(
            {
                "origin": origin,
                "tree_size": tree_size,
                "records": [record_payload(r) for r in found],
                "more": more or bool(token),
            }
        )
        return
    table = Table(title=f"{origin}: {len(found)} records (log size {tree_size})")
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    for name in ("requester", "operation", "purpose", "dataset"):
        table.add_column(name, overflow="fold")
    table.add_column("decision", no_wrap=True)
    table.add_column("reason", overflow="fold")
    table.add_column("method", no_wrap=True)
    for stored in found:
        payload = record_payload(stored)
        table.add_row(
            str(stored.seq),
            _short_time(stored.time),
            _short_requester(stored.requester),
            str(payload.get("operation", "?")),
            stored.purpose,
            stored.dataset,
            stored.decision,
            str(payload.get("reason", payload.get("malformed", ""))),
            str(payload.get("method", "")).rsplit("/", 1)[-1],
        )
    Console(highlight=False).print(table)
    if more or token:
        _err().print(
            "more records match; narrow the filters or raise --limit", markup=False
        )


@cli.command("export")
def export_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Write the verifiable JSONL export here.", show_default=False
        ),
    ],
    node: NodeOption = None,
    db: DbOption = None,
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    server_name: ServerNameOption = None,
    csv_out: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Also write the records as CSV (for spreadsheets).",
            show_default=False,
        ),
    ] = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Export the log up to its latest signed checkpoint: records, checkpoints, key."""
    with _source(node, db, ca, cert, key, server_name, timeout) as source:
        try:
            summary = export_log(source, out, csv_out=csv_out, now=datetime.now(UTC))
        except OSError as exc:
            _fail(
                f"cannot write {exc.filename or out}: {exc.strerror or exc}", EXIT_USAGE
            )
    where = f" and {csv_out}" if csv_out else ""
    _err().print(
        f"exported {summary.records} records and {summary.checkpoints} checkpoints of "
        f"{summary.origin} (signed tree size {summary.tree_size}) to {out}{where}",
        markup=False,
    )


def _read_key(value: str) -> str:
    path = Path(value)
    try:
        if path.is_file():
            return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"--public-key: cannot read {value}: {exc}", EXIT_USAGE)
    return value.strip()


@cli.command("verify")
def verify_command(
    export: Annotated[
        Path, typer.Argument(help="The JSONL export to verify.", show_default=False)
    ],
    public_key: Annotated[
        str,
        typer.Option(
            "--public-key",
            help="The log's pinned verifier key (origin+keyid+key), or a file holding it.",
            show_default=False,
        ),
    ],
    since: Annotated[
        Path | None,
        typer.Option(
            "--since",
            help="A checkpoint saved earlier (signed note): the log must extend it.",
            show_default=False,
        ),
    ] = None,
    save_checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--save-checkpoint",
            help="If the log verifies, save its latest checkpoint here (for --since next time).",
            show_default=False,
        ),
    ] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Verify an export offline: signatures, chain, Merkle roots, consistency."""
    key_text = _read_key(public_key)
    since_note = None
    try:
        if since is not None:
            since_note = read_note_file(since)
        result = verify_export(export, key_text, since=since_note)
    except MalformedNote as exc:
        _fail(f"--public-key: {exc}", EXIT_USAGE)
    except ExportInvalid as exc:
        _fail(str(exc), EXIT_USAGE)
    report = result.report
    if result.ok and save_checkpoint is not None and result.latest_note is not None:
        try:
            save_checkpoint.write_text(result.latest_note, encoding="utf-8")
        except OSError as exc:
            _fail(
                f"--save-checkpoint: cannot write {save_checkpoint}: {exc.strerror}",
                EXIT_USAGE,
            )
    if fmt is OutputFormat.json:
        _print_json(
            {
                "ok": result.ok,
                "origin": result.origin,
                "records": report.records,
                "checkpoints": report.checkpoints,
                "attested_size": report.attested_size,
                "first_bad_seq": result.first_bad_seq,
                "problems": result.problems,
            }
        )
    else:
        out = Console(highlight=False, soft_wrap=True)
        if result.ok:
            extended = " and extends the saved checkpoint" if since_note else ""
            out.print(
                f"verified: {report.records} records and {report.checkpoints} signed "
                f"checkpoints of {result.origin}; signed up to tree size "
                f"{report.attested_size}{extended}",
                markup=False,
            )
        else:
            bad = result.first_bad_seq
            first = "none" if bad is None else str(bad)
            out.print(f"NOT VERIFIED: first bad seq {first}", markup=False)
            for problem in result.problems:
                out.print(f"  {problem}", markup=False)
    if not result.ok:
        raise typer.Exit(EXIT_NOT_VERIFIED)


@cli.command("key")
def key_command(
    node: NodeOption = None,
    db: DbOption = None,
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    server_name: ServerNameOption = None,
    fmt: FormatOption = OutputFormat.table,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Print the log's verifier key, for officers to pin."""
    with _source(node, db, ca, cert, key, server_name, timeout) as source:
        origin, verifier_key = source.origin, source.verifier_key
    if fmt is OutputFormat.json:
        _print_json({"origin": origin, "verifier_key": verifier_key})
        return
    typer.echo(verifier_key)
    if node is not None:
        _err().print(
            "compare this key with the agency's published one before pinning it",
            markup=False,
        )
