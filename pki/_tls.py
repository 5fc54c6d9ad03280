"""TLS material for gRPC: the files of a kit, credentials, and the peer's identity."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from pki._errors import CertificateFileError, InvalidIdentity
from pki._files import (
    CA_CERT,
    leaf_file,
    parse_certificate,
    parse_private_key,
    read_bytes,
)
from pki._identity import Identity, identity_from_pem


@dataclass(frozen=True)
class TlsMaterial:
    """The PEM bytes of a member's TLS kit.

    Parameters
    ----------
    ca
        The federation CA certificate.
    cert
        The member's certificate.
    key
        The member's private key.
    """

    ca: bytes
    cert: bytes
    key: bytes

    def __repr__(self) -> str:
        return (
            f"TlsMaterial(ca=<{len(self.ca)} bytes>, cert=<{len(self.cert)} bytes>, "
            "key=<redacted>)"
        )


@dataclass(frozen=True)
class TlsFiles:
    """Where a member's TLS kit lives.

    Parameters
    ----------
    ca
        The federation CA certificate (``ca.crt``).
    cert
        The member's certificate (``<name>.crt``).
    key
        The member's private key (``<name>.key``).
    """

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def from_kit(cls, directory: Path, name: str) -> TlsFiles:
        """Return the files of the kit `issue` wrote for ``name`` into ``directory``."""
        return cls(
            ca=directory / CA_CERT,
            cert=leaf_file(directory, name, ".crt"),
            key=leaf_file(directory, name, ".key"),
        )

    def read(self) -> TlsMaterial:
        """Read and check the three files.

        Returns
        -------
        TlsMaterial
            Their PEM bytes.

        Raises
        ------
        CertificateFileError
            If a file is missing, unreadable or not PEM (the message names it), or
            the key does not belong to the certificate.
        """
        ca = read_bytes(self.ca, "CA certificate")
        cert = read_bytes(self.cert, "certificate")
        key = read_bytes(self.key, "private key")
        parse_certificate(ca, self.ca)
        public_key = parse_certificate(cert, self.cert).public_key()
        if parse_private_key(key, self.key).public_key() != public_key:
            raise CertificateFileError(
                f"private key file {self.key} does not belong to certificate "
                f"{self.cert}"
            )
        return TlsMaterial(ca=ca, cert=cert, key=key)


def server_credentials(material: TlsMaterial) -> grpc.ServerCredentials:
    """Return gRPC server credentials that require a client certificate of the CA.

    Parameters
    ----------
    material
        The server's kit.

    Returns
    -------
    grpc.ServerCredentials
        For ``server.add_secure_port``.
    """
    return grpc.ssl_server_credentials(
        [(material.key, material.cert)],
        root_certificates=material.ca,
        require_client_auth=True,
    )


def channel_credentials(material: TlsMaterial) -> grpc.ChannelCredentials:
    """Return gRPC channel credentials trusting the CA and presenting the member's cert.

    Parameters
    ----------
    material
        The client's kit.

    Returns
    -------
    grpc.ChannelCredentials
        For ``grpc.secure_channel``.
    """
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca,
        private_key=material.key,
        certificate_chain=material.cert,
    )


def peer_identity(
    auth_context: Mapping[str, Iterable[bytes] | bytes],
) -> Identity | None:
    """Return the identity of the peer of a gRPC call, or ``None``.

    Parameters
    ----------
    auth_context
        ``ServicerContext.auth_context()``: its ``x509_pem_cert`` entry holds the
        peer's verified certificate. (grpcio returns lists of bytes; the
        ``types-grpcio`` stub says bytes, so both are accepted.)

    Returns
    -------
    Identity | None
        The identity in the peer certificate's SAN URI; ``None`` if there is no
        certificate or it carries no valid identity.
    """
    values = auth_context.get("x509_pem_cert")
    if values is None:
        return None
    pems = [values] if isinstance(values, bytes) else list(values)
    if not pems:
        return None
    return _identity_or_none(bytes(pems[0]))


@functools.lru_cache(maxsize=1024)
def _identity_or_none(pem: bytes) -> Identity | None:
    """Parse a peer certificate once: callers present the same one on every call."""
    try:
        return identity_from_pem(pem)
    except InvalidIdentity:
        return None
