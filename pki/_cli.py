"""The ``accord pki`` command group: CA, certificates, CSRs, and inspecting them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final, NoReturn

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID
from rich.console import Console
from rich.table import Table

from pki._ca import ca_federation, init_ca
from pki._clock import format_time
from pki._csr import make_csr, sign_csr
from pki._errors import AlreadyExists, InvalidIdentity, PkiError
from pki._files import CA_CERT, load_certificate
from pki._identity import Identity, identity_of
from pki._issue import issue

# Exit statuses have 8 bits, so the command-line range is 30-99 (node 100-199,
# coordinator 200-255); STYLE.md's 300-399 would reach the shell as 44-143.
EXIT_ALREADY_EXISTS: Final = 31
EXIT_PKI_ERROR: Final = 32
EXIT_CODES: Final[dict[int, str]] = {
    EXIT_ALREADY_EXISTS: (
        "A file to be written exists already; nothing was overwritten: move it away "
        "or choose another --out."
    ),
    EXIT_PKI_ERROR: (
        "A PKI operation failed (bad name, host, CSR, file or certificate); the "
        "error line says which and what was expected."
    ),
}

_EKU_NAMES: Final = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
}


class RoleChoice(StrEnum):
    """The roles a certificate can be issued for."""

    node = "node"
    coordinator = "coordinator"
    officer = "officer"


class OutputFormat(StrEnum):
    """How ``show`` prints."""

    table = "table"
    json = "json"


cli = typer.Typer(
    name="pki",
    help=(
        "Manage the federation CA and member certificates "
        "(ECDSA P-256, identities as SPIFFE URIs)."
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)

FederationOpt = Annotated[
    str, typer.Option("--federation", help="Federation name (SPIFFE trust domain).")
]
AgencyOpt = Annotated[str, typer.Option("--agency", help="Agency of the member.")]
RoleOpt = Annotated[RoleChoice, typer.Option("--role", help="Role of the member.")]
NameOpt = Annotated[str, typer.Option("--name", help="Name of the member.")]
HostOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--host",
        help="DNS name or IP address the member serves on (repeatable); "
        "a node defaults to localhost and 127.0.0.1.",
    ),
]
OutDirOpt = Annotated[
    Path, typer.Option("--out", help="Output directory (created if needed).")
]
CaDirOpt = Annotated[
    Path, typer.Option("--ca", help="CA directory holding ca.crt and ca.key.")
]


def _stdout() -> Console:
    return Console(highlight=False, emoji=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, emoji=False)


def _say(message: str) -> None:
    _stderr().print(message, markup=False, soft_wrap=True)


@contextlib.contextmanager
def _reporting_errors() -> Iterator[None]:
    """Turn a `PkiError` into one red ``error:`` line on stderr and an exit code."""
    try:
        yield
    except AlreadyExists as exc:
        _fail(exc, EXIT_ALREADY_EXISTS)
    except PkiError as exc:
        _fail(exc, EXIT_PKI_ERROR)


def _fail(exc: PkiError, code: int) -> NoReturn:
    _stderr().print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
    raise typer.Exit(code)


@cli.command("init")
def init_command(
    federation: FederationOpt,
    out: OutDirOpt,
    days: Annotated[
        int, typer.Option("--days", min=1, help="Lifetime of the CA certificate.")
    ] = 3650,
) -> None:
    """Create the federation CA: ca.crt and ca.key in --out."""
    with _reporting_errors():
        paths = init_ca(federation, out, lifetime_days=days)
        cert = load_certificate(paths.cert)
    _say(
        f"Created the CA of federation {federation!r}: {paths.cert}, {paths.key} "
        f"(keep the key offline); valid until {format_time(cert.not_valid_after_utc)}"
    )
    _say(f"SHA-256 fingerprint: {_fingerprint(cert)}")


@cli.command("issue")
def issue_command(
    ca: CaDirOpt,
    agency: AgencyOpt,
    role: RoleOpt,
    name: NameOpt,
    out: OutDirOpt,
    host: HostOpt = None,
    days: Annotated[
        int, typer.Option("--days", min=1, help="Lifetime of the certificate.")
    ] = 90,
) -> None:
    """Generate a key here and issue its certificate (writes a kit into --out)."""
    with _reporting_errors():
        federation = ca_federation(load_certificate(ca / CA_CERT))
        identity = Identity(federation, agency, role.value, name)
        paths = issue(ca, identity, out, hosts=host or (), lifetime_days=days)
        cert = load_certificate(paths.cert)
    _say(
        f"Issued {identity.uri}, valid until {format_time(cert.not_valid_after_utc)}: "
        f"{paths.cert}, {paths.key}, {paths.ca}"
    )


@cli.command("csr")
def csr_command(
    federation: FederationOpt,
    agency: AgencyOpt,
    role: RoleOpt,
    name: NameOpt,
    out: OutDirOpt,
    host: HostOpt = None,
) -> None:
    """Generate a key here and a signing request to send to the CA operator."""
    with _reporting_errors():
        identity = Identity(federation, agency, role.value, name)
        paths = make_csr(identity, out, hosts=host or ())
    _say(
        f"Wrote {paths.key} (keep it on this machine) and {paths.csr} "
        f"(send it to the CA operator) for {identity.uri}"
    )


@cli.command("sign")
def sign_command(
    ca: CaDirOpt,
    csr: Annotated[Path, typer.Argument(help="The CSR file (PEM).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Certificate file; default <name>.crt by the CSR."),
    ] = None,
    days: Annotated[
        int, typer.Option("--days", min=1, help="Lifetime of the certificate.")
    ] = 90,
) -> None:
    """Issue the certificate a CSR asks for."""
    with _reporting_errors():
        path = sign_csr(ca, csr, out, lifetime_days=days)
        cert = load_certificate(path)
        identity = identity_of(cert)
    _say(
        f"Issued {identity.uri}, valid until "
        f"{format_time(cert.not_valid_after_utc)}: {path}"
    )


@cli.command("show")
def show_command(
    cert: Annotated[Path, typer.Argument(help="The certificate file (PEM).")],
    output: Annotated[
        OutputFormat, typer.Option("--format", help="Output format.")
    ] = OutputFormat.table,
) -> None:
    """Print a certificate's identity, validity, SANs, issuer and fingerprint."""
    with _reporting_errors():
        summary = certificate_summary(load_certificate(cert), now=datetime.now(UTC))
    if output is OutputFormat.json:
        _stdout().out(json.dumps(summary, indent=2), highlight=False)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for field, value in summary.items():
        shown = _cell(value)
        table.add_row(field.replace("_", " "), shown)
    _stdout().print(table)


def _cell(value: str | bool | list[str] | None) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value) or "-"
    return value or "-"


def certificate_summary(
    cert: x509.Certificate, *, now: datetime
) -> dict[str, str | bool | list[str] | None]:
    """Describe a certificate for ``show``.

    Parameters
    ----------
    cert
        The certificate.
    now
        The time its status is given for.

    Returns
    -------
    dict[str, str | bool | list[str] | None]
        identity (URI, or ``None``), is_ca, status, subject, issuer, serial,
        validity bounds, SANs, extended key usages and SHA-256 fingerprint.
    """
    identity: str | None
    try:
        identity = identity_of(cert).uri
    except InvalidIdentity:
        try:
            identity = f"spiffe://{ca_federation(cert)}"
        except InvalidIdentity:
            identity = None
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if now > cert.not_valid_after_utc:
        status = "expired"
    elif now < cert.not_valid_before_utc:
        status = "not yet valid"
    else:
        status = "valid"
    return {
        "identity": identity,
        "is_ca": is_ca,
        "status": status,
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": f"{cert.serial_number:x}",
        "not_valid_before": cert.not_valid_before_utc.isoformat(),
        "not_valid_after": cert.not_valid_after_utc.isoformat(),
        "sans": _sans(cert),
        "extended_key_usage": _usages(cert),
        "fingerprint_sha256": _fingerprint(cert),
    }


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    shown: list[str] = []
    for name in names.value:
        if isinstance(name, x509.UniformResourceIdentifier):
            shown.append(f"URI:{name.value}")
        elif isinstance(name, x509.DNSName):
            shown.append(f"DNS:{name.value}")
        elif isinstance(name, x509.IPAddress):
            shown.append(f"IP:{name.value}")
        else:
            shown.append(str(name))
    return shown


def _usages(cert: x509.Certificate) -> list[str]:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return []
    return [_EKU_NAMES.get(oid, oid.dotted_string) for oid in usages.value]


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()
