"""The federation CA: creating it, loading it, and reading its federation back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki._clock import check_lifetime, resolve_now
from pki._errors import CertificateFileError, InvalidIdentity
from pki._files import (
    CA_CERT,
    CA_KEY,
    KEY_MODE,
    NewFile,
    load_certificate,
    load_private_key,
    make_dir,
    private_key_pem,
    write_new_files,
)
from pki._identity import check_label, describe, san_uris

CLOCK_SKEW: Final = timedelta(minutes=5)
_CN_PREFIX: Final = "Accord federation CA "


@dataclass(frozen=True)
class CaPaths:
    """The files of a federation CA.

    Parameters
    ----------
    cert
        ``ca.crt``: the CA certificate, to be given to every member.
    key
        ``ca.key``: the CA private key (mode 0600), to be kept offline.
    """

    cert: Path
    key: Path


@dataclass(frozen=True)
class FederationCa:
    """A loaded CA: certificate, private key, federation, and where it came from."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    federation: str
    cert_path: Path


def init_ca(
    federation: str,
    out_dir: Path,
    *,
    lifetime_days: int = 3650,
    now: datetime | None = None,
) -> CaPaths:
    """Create a federation CA: an ECDSA P-256 key and a self-signed certificate.

    The federation is stored in the certificate itself, as subject CN
    ``Accord federation CA <federation>`` and SAN URI ``spiffe://<federation>``.

    Parameters
    ----------
    federation
        The federation's name (the SPIFFE trust domain).
    out_dir
        Where to write ``ca.crt`` and ``ca.key``; created if needed.
    lifetime_days
        How long the CA certificate is valid, from ``now``.
    now
        The time of creation (timezone-aware); default: the current time.

    Returns
    -------
    CaPaths
        The files written.

    Raises
    ------
    InvalidIdentity
        If ``federation`` is malformed.
    AlreadyExists
        If ``ca.crt`` or ``ca.key`` exists in ``out_dir``; nothing is written.
    CertificateFileError
        If ``out_dir`` or a file cannot be created.
    """
    check_label("federation", federation)
    check_lifetime(lifetime_days)
    when = resolve_now(now)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Accord"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{_CN_PREFIX}{federation}"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(when - CLOCK_SKEW)
        .not_valid_after(when + timedelta(days=lifetime_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{federation}")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    make_dir(out_dir)
    paths = CaPaths(cert=out_dir / CA_CERT, key=out_dir / CA_KEY)
    write_new_files(
        [
            NewFile(paths.key, private_key_pem(key), KEY_MODE),
            NewFile(paths.cert, cert.public_bytes(serialization.Encoding.PEM)),
        ]
    )
    return paths


def ca_federation(cert: x509.Certificate) -> str:
    """Return the federation of a CA certificate made by `init_ca`.

    Parameters
    ----------
    cert
        The CA certificate.

    Returns
    -------
    str
        The federation in its SAN URI ``spiffe://<federation>``.

    Raises
    ------
    InvalidIdentity
        If the certificate has no single ``spiffe://<federation>`` URI SAN.
    """
    uris = san_uris(cert)
    if len(uris) != 1 or not uris[0].startswith("spiffe://") or "/" in uris[0][9:]:
        found = "none" if not uris else ", ".join(uris)
        raise InvalidIdentity(
            f"certificate {describe(cert)} is not an Accord federation CA: "
            f"expected one URI SAN spiffe://<federation>, found {found}"
        )
    return check_label("federation", uris[0][len("spiffe://") :])


def load_ca(ca_dir: Path) -> FederationCa:
    """Load the CA in ``ca_dir`` (``ca.crt`` and ``ca.key``) and check they match.

    Raises
    ------
    CertificateFileError
        If a file is missing or invalid, or the key is not the certificate's.
    InvalidIdentity
        If ``ca.crt`` is not a federation CA certificate.
    """
    cert_path = ca_dir / CA_CERT
    cert = load_certificate(cert_path)
    key = load_private_key(ca_dir / CA_KEY)
    if key.public_key() != cert.public_key():
        raise CertificateFileError(
            f"CA key {ca_dir / CA_KEY} does not belong to the CA certificate "
            f"{cert_path}"
        )
    return FederationCa(cert, key, ca_federation(cert), cert_path)
