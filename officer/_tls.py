"""The web side's TLS: the browser's officer certificate, checked on every request.

Uvicorn verifies the client certificate against the federation CA
(``ssl_cert_reqs=CERT_REQUIRED``, ``ssl_ca_certs``) but does not pass it to the
application, so :class:`PeerCertH11Protocol` (uvicorn's h11 protocol, one hook
added) copies the DER certificate of each connection into the ASGI scope's
``state``; :class:`OfficerOnly` then reads its SAN identity and lets through only
officers of the workbench's own federation and agency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol

import pki

__all__ = ["BROWSER_IDENTITY", "PEER_CERT", "OfficerOnly", "PeerCertH11Protocol"]

PEER_CERT = "accord.peer_cert_der"
"""Key of the client certificate (DER bytes, or ``None``) in ``scope["state"]``."""

BROWSER_IDENTITY = "accord.browser_identity"
"""Key of the checked officer identity (SAN URI) in ``scope["state"]``."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class PeerCertH11Protocol(H11Protocol):
    """Uvicorn's h11 protocol, with the peer certificate in each request's state."""

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        """Record the client certificate of the new connection, if any."""
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = None if ssl_object is None else ssl_object.getpeercert(binary_form=True)
        self.app_state = {**self.app_state, PEER_CERT: der}


def check_officer(der: bytes | None, federation: str, agency: str) -> str:
    """Return the officer identity in a client certificate, or raise.

    Parameters
    ----------
    der : bytes or None
        The certificate the TLS layer verified.
    federation, agency : str
        Whose officers may use the workbench.

    Returns
    -------
    str
        The officer's SAN URI.

    Raises
    ------
    PermissionError
        Without a certificate, or with one of another role, federation or agency.
    """
    if der is None:
        raise PermissionError("an officer's client certificate is required")
    try:
        identity = pki.identity_of(x509.load_der_x509_certificate(der))
    except (ValueError, pki.PkiError):
        raise PermissionError("the client certificate carries no identity") from None
    if identity.role != "officer":
        raise PermissionError(f"role {identity.role} may not use the workbench")
    if identity.federation != federation or identity.agency != agency:
        raise PermissionError(
            f"only officers of agency {agency} may use this workbench"
        )
    return identity.uri


class OfficerOnly:
    """ASGI middleware: only requests over a connection with an officer's certificate.

    Parameters
    ----------
    app : ASGIApp
        The application.
    federation, agency : str
        Whose officers are let through.
    """

    def __init__(self, app: ASGIApp, *, federation: str, agency: str) -> None:
        self._app = app
        self._federation = federation
        self._agency = agency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the connection's certificate, then pass the request on."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        try:
            state[BROWSER_IDENTITY] = check_officer(
                state.get(PEER_CERT), self._federation, self._agency
            )
        except PermissionError as exc:
            body = f"403 Forbidden: {exc}\n".encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self._app(scope, receive, send)
