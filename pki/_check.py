"""Checking a certificate against the federation CA, a time and a purpose."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID

from pki._ca import ca_federation
from pki._clock import format_time, require_aware
from pki._errors import (
    CertificateExpired,
    CertificateNotYetValid,
    InvalidIdentity,
    WrongCa,
    WrongPurpose,
)
from pki._identity import describe, identity_of

Purpose: TypeAlias = Literal["server", "client"]
_PURPOSES: Final[dict[Purpose, tuple[x509.ObjectIdentifier, str]]] = {
    "server": (ExtendedKeyUsageOID.SERVER_AUTH, "serverAuth"),
    "client": (ExtendedKeyUsageOID.CLIENT_AUTH, "clientAuth"),
}


def check_certificate(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    *,
    now: datetime,
    purpose: Purpose,
) -> None:
    """Check that a certificate is usable at ``now`` for ``purpose`` in the federation.

    The checks, in order: the CA certificate is valid at ``now``; ``cert`` is signed
    by it; ``cert`` is valid at ``now``; its extended key usage allows ``purpose``.

    Parameters
    ----------
    cert
        The certificate to check (a leaf issued by ``pki``).
    ca_cert
        The federation CA certificate.
    now
        The time of the check (timezone-aware).
    purpose
        ``"server"`` (needs serverAuth) or ``"client"`` (needs clientAuth).

    Raises
    ------
    WrongCa
        If ``cert`` is not signed by ``ca_cert``.
    CertificateExpired
        If ``cert`` or ``ca_cert`` expired before ``now``.
    CertificateNotYetValid
        If ``cert`` or ``ca_cert`` becomes valid after ``now``.
    WrongPurpose
        If the extended key usage of ``cert`` lacks the purpose.
    InvalidIdentity
        If ``ca_cert`` is not a federation CA certificate.
    """
    when = require_aware(now)
    federation = ca_federation(ca_cert)
    check_validity(ca_cert, when, f"the federation CA {federation}")
    who = _who(cert)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise WrongCa(
            f"certificate {who} is not issued by the federation CA {federation}"
        ) from None
    check_validity(cert, when, f"certificate {who}")
    oid, oid_name = _PURPOSES[purpose]
    try:
        usages = list(
            cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        )
    except x509.ExtensionNotFound:
        usages = []
    if oid not in usages:
        raise WrongPurpose(
            f"certificate {who} cannot be used as a {purpose}: "
            f"its extended key usage lacks {oid_name}"
        )


def check_validity(cert: x509.Certificate, now: datetime, who: str) -> None:
    """Check that ``now`` lies within a certificate's validity (bounds included).

    Parameters
    ----------
    cert
        The certificate.
    now
        The time of the check (timezone-aware).
    who
        How to name the certificate in messages.

    Raises
    ------
    CertificateExpired
        If its validity ended before ``now``.
    CertificateNotYetValid
        If its validity starts after ``now``.
    """
    when = require_aware(now)
    if when > cert.not_valid_after_utc:
        raise CertificateExpired(
            f"{who} expired on {format_time(cert.not_valid_after_utc)}"
        )
    if when < cert.not_valid_before_utc:
        raise CertificateNotYetValid(
            f"{who} is not valid before {format_time(cert.not_valid_before_utc)}"
        )


def _who(cert: x509.Certificate) -> str:
    try:
        return identity_of(cert).uri
    except InvalidIdentity:
        return describe(cert)
