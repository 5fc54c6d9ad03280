"""Start the workbench: check the officer's kit, reach the node, pin its key, serve."""

from __future__ import annotations

import logging
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime

import uvicorn

import pki
from policies.auditlog import MalformedNote, parse_verifier_key

from ._app import create_app
from ._config import Settings, is_loopback
from ._errors import OfficerError
from ._exit import ExitCode
from ._integrity import PinnedKey
from ._link import GrpcNodeLink
from ._tls import PeerCertH11Protocol
from ._workbench import Workbench

__all__ = ["StartupError", "open_workbench", "serve"]

_log = logging.getLogger("accord.officer")

PINNED_FILE = "pinned-verifier-key"


@dataclass
class StartupError(Exception):
    """The workbench cannot start; ``code`` is its exit code."""

    message: str
    code: int

    def __str__(self) -> str:
        return self.message


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _officer_identity(
    settings: Settings, now: datetime
) -> tuple[pki.Identity, pki.TlsMaterial]:
    try:
        material = settings.tls.read()
        cert = pki.load_certificate(settings.tls.cert)
        pki.check_certificate(
            cert, pki.load_certificate(settings.tls.ca), now=now, purpose="client"
        )
        identity = pki.identity_of(cert)
    except pki.PkiError as exc:
        raise StartupError(f"officer TLS kit: {exc}", ExitCode.TLS_INVALID) from None
    if identity.role != "officer":
        raise StartupError(
            f"officer TLS kit: {settings.tls.cert} is a {identity.role} certificate; "
            "the workbench reads the log with an officer certificate "
            "(accord pki issue --role officer)",
            ExitCode.TLS_INVALID,
        )
    return identity, material


def _pin(settings: Settings, stated: str) -> tuple[PinnedKey, str]:
    """Return the pinned key and where it came from; pin on first use if unset."""
    if settings.verifier_key is not None:
        return PinnedKey(settings.verifier_key), "configuration"
    path = settings.state_dir / PINNED_FILE
    if path.exists():
        text = path.read_text(encoding="utf-8").strip()
        try:
            parse_verifier_key(text)
        except MalformedNote as exc:
            raise StartupError(f"{path}: {exc}", ExitCode.CONFIG_INVALID) from None
        return PinnedKey(text), f"first use (saved in {path})"
    settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(stated + "\n", encoding="utf-8")
    _log.warning("no verifier key pinned: trusting the node's on first use: %s", stated)
    return PinnedKey(stated), f"first use (saved in {path})"


def open_workbench(settings: Settings) -> Workbench:
    """Check the officer's kit, connect to the node and build the workbench.

    Parameters
    ----------
    settings : Settings
        The resolved settings.

    Returns
    -------
    Workbench
        Ready to serve pages.

    Raises
    ------
    StartupError
        With the exit code for the problem.
    """
    identity, material = _officer_identity(settings, _utcnow())
    link = GrpcNodeLink(
        settings.address,
        material,
        server_name=settings.server_name,
        timeout=settings.timeout,
    )
    try:
        _, stated = link.log_key()
    except OfficerError as exc:
        link.close()
        raise StartupError(
            f"cannot read the node's decision log: {exc.message}",
            ExitCode.NODE_UNAVAILABLE,
        ) from None
    pinned, source = _pin(settings, stated)
    if stated != pinned.text:
        link.close()
        raise StartupError(
            f"the node at {settings.address} states log key {stated}, not the pinned "
            f"{pinned.text}: the node's log key changed, or this is another node",
            ExitCode.NODE_UNAVAILABLE,
        )
    return Workbench(
        link,
        pinned,
        state_dir=settings.state_dir,
        policy_file=settings.policy_file,
        clock=_utcnow,
        officer=identity.uri,
        pinned_source=source,
        page_size=settings.page_size,
        denial_burst=settings.denial_burst,
        denial_window=settings.denial_window,
        report_max_records=settings.report_max_records,
        witnesses=settings.witnesses,
    )


def _bind(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except (OSError, ValueError) as exc:
        sock.close()
        raise StartupError(
            f"cannot listen on {address}: {getattr(exc, 'strerror', None) or exc}",
            ExitCode.BIND_FAILED,
        ) from None
    sock.set_inheritable(True)
    return sock


def _hosts(settings: Settings) -> list[str] | None:
    host = settings.listen.rpartition(":")[0].strip("[]")
    if host in ("0.0.0.0", "::", "") and not settings.allowed_hosts:
        return None  # any name: TLS with officer certificates guards the door
    return sorted({"localhost", "127.0.0.1", "::1", host, *settings.allowed_hosts})


def serve(settings: Settings, workbench: Workbench) -> int:
    """Serve until SIGINT or SIGTERM; return the exit code.

    Parameters
    ----------
    settings : Settings
        Where to listen, and the web TLS files.
    workbench : Workbench
        What to serve.

    Returns
    -------
    int
        0 after a clean stop.

    Raises
    ------
    StartupError
        If the address cannot be bound or the web TLS files cannot be used.
    """
    settings.check_exposure()
    officer = pki.Identity.parse(workbench.officer)
    tls = settings.web_tls
    app = create_app(
        workbench,
        allowed_hosts=_hosts(settings),
        officers_of=(officer.federation, officer.agency) if tls else None,
        warm_up=True,
    )
    config = uvicorn.Config(
        app,
        http=PeerCertH11Protocol,
        ws="none",
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        ssl_certfile=str(tls.cert) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
        ssl_ca_certs=str(tls.client_ca) if tls else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if tls else ssl.CERT_NONE,
    )
    try:
        config.load()
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"web TLS: {exc}", ExitCode.TLS_INVALID) from None
    sock = _bind(settings.listen)
    scheme = "https" if tls else "http"
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    where = (
        "loopback only"
        if is_loopback(settings.listen)
        else "officer certificates required"
    )
    _log.warning(
        "officer workbench on %s://%s:%s/ (%s); node %s, log %s",
        scheme,
        shown,
        port,
        where,
        settings.address,
        workbench.pinned.name,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        workbench.close()
    return ExitCode.SUCCESS
