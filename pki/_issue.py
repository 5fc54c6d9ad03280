"""Issuing leaf certificates: the one builder shared by `issue` and `sign_csr`."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki._ca import CLOCK_SKEW, FederationCa, load_ca
from pki._check import check_validity
from pki._clock import check_lifetime, resolve_now
from pki._errors import AlreadyExists, FederationMismatch, InvalidHost
from pki._files import (
    CA_CERT,
    KEY_MODE,
    NewFile,
    leaf_file,
    make_dir,
    private_key_pem,
    read_bytes,
    write_new_files,
)
from pki._identity import Identity, Role
from pki._tls import TlsFiles

DEFAULT_NODE_HOSTS: Final = ("localhost", "127.0.0.1")
_DNS_LABEL: Final = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_USAGES: Final[dict[Role, list[x509.ObjectIdentifier]]] = {
    "node": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    "coordinator": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "officer": [ExtendedKeyUsageOID.CLIENT_AUTH],
}


@dataclass(frozen=True)
class LeafPaths:
    """The files of an issued member certificate: a self-contained TLS kit.

    Parameters
    ----------
    key
        ``<name>.key``: the private key (mode 0600).
    cert
        ``<name>.crt``: the certificate.
    ca
        ``ca.crt``: the federation CA certificate.
    """

    key: Path
    cert: Path
    ca: Path

    def tls_files(self) -> TlsFiles:
        """Return the kit as `TlsFiles`, ready to `TlsFiles.read`."""
        return TlsFiles(ca=self.ca, cert=self.cert, key=self.key)


def issue(
    ca_dir: Path,
    identity: Identity,
    out_dir: Path,
    *,
    hosts: Sequence[str] = (),
    lifetime_days: int = 90,
    now: datetime | None = None,
) -> LeafPaths:
    """Generate a key here and issue a certificate for it, signed by the CA.

    Writes ``<name>.key`` (mode 0600), ``<name>.crt`` and a copy of ``ca.crt`` into
    ``out_dir``. An identical ``ca.crt`` already there (e.g. ``out_dir == ca_dir``,
    or a second member in the same kit) is kept.

    Parameters
    ----------
    ca_dir
        The CA directory (``ca.crt`` and ``ca.key``).
    identity
        Whom the certificate is for; must be of the CA's federation.
    out_dir
        Where to write the kit; created if needed.
    hosts
        DNS names and IP addresses the member serves on (SANs); a node without
        hosts gets ``localhost`` and ``127.0.0.1``.
    lifetime_days
        How long the certificate is valid (capped at the CA's expiry).
    now
        The time of issue (timezone-aware); default: the current time.

    Returns
    -------
    LeafPaths
        The files of the kit.

    Raises
    ------
    FederationMismatch
        If ``identity`` is of another federation than the CA.
    AlreadyExists
        If the key or certificate exists, or ``ca.crt`` differs; nothing is written.
    InvalidHost
        If a host is neither an IP address nor a DNS name.
    CertificateFileError
        If the CA files are missing or invalid, or a file cannot be written.
    CertificateExpired, CertificateNotYetValid
        If the CA certificate is not valid at ``now``.
    """
    check_lifetime(lifetime_days)
    paths = LeafPaths(
        key=leaf_file(out_dir, identity.name, ".key"),
        cert=leaf_file(out_dir, identity.name, ".crt"),
        ca=out_dir / CA_CERT,
    )
    ca = load_ca(ca_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build_leaf(
        ca, identity, key.public_key(), hosts, lifetime_days, resolve_now(now)
    )
    files = [
        NewFile(paths.key, private_key_pem(key), KEY_MODE),
        NewFile(paths.cert, cert.public_bytes(serialization.Encoding.PEM)),
    ]
    ca_pem = ca.cert.public_bytes(serialization.Encoding.PEM)
    if not paths.ca.exists():
        files.append(NewFile(paths.ca, ca_pem))
    elif read_bytes(paths.ca, "CA certificate") != ca_pem:
        raise AlreadyExists(
            f"refusing to overwrite {paths.ca}: it holds another CA certificate "
            f"than {ca.cert_path}"
        )
    make_dir(out_dir)
    write_new_files(files)
    return paths


def build_leaf(
    ca: FederationCa,
    identity: Identity,
    public_key: ec.EllipticCurvePublicKey,
    hosts: Sequence[str],
    lifetime_days: int,
    now: datetime,
) -> x509.Certificate:
    """Build and sign a member certificate; the single place a leaf takes its shape.

    Parameters
    ----------
    ca
        The loaded CA.
    identity
        Whom the certificate is for.
    public_key
        The member's ECDSA P-256 public key.
    hosts
        DNS names and IP addresses (a node without hosts gets the defaults).
    lifetime_days
        Validity from ``now``, capped at the CA's expiry.
    now
        The time of issue (timezone-aware UTC).

    Returns
    -------
    x509.Certificate
        The signed certificate.

    Raises
    ------
    FederationMismatch
        If ``identity`` is of another federation than the CA.
    InvalidHost
        If a host is invalid.
    CertificateExpired, CertificateNotYetValid
        If the CA certificate is not valid at ``now``.
    """
    if identity.federation != ca.federation:
        raise FederationMismatch(
            f"identity {identity.uri} is of federation {identity.federation!r}, "
            f"but the CA {ca.cert_path} is of federation {ca.federation!r}"
        )
    check_validity(ca.cert, now, f"the federation CA certificate {ca.cert_path}")
    if not hosts and identity.role == "node":
        hosts = DEFAULT_NODE_HOSTS
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
    if identity.role == "node":
        names.append(x509.DNSName(identity.tls_name))
    names += host_names(hosts)
    try:
        ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
    except x509.ExtensionNotFound:  # a CA not made by init_ca
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())
    not_after = min(now + timedelta(days=lifetime_days), ca.cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, identity.agency),
                    x509.NameAttribute(NameOID.COMMON_NAME, identity.name),
                ]
            )
        )
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(_USAGES[identity.role]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(aki, critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )


def host_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """Turn hosts into SANs: IP addresses as IPAddress, others as DNSName.

    Parameters
    ----------
    hosts
        IP addresses and DNS names; duplicates are dropped, DNS names lowercased.

    Returns
    -------
    list[x509.GeneralName]
        The SANs, in the order given.

    Raises
    ------
    InvalidHost
        If a host is neither an IP address nor a valid DNS name.
    """
    names: list[x509.GeneralName] = []
    for host in hosts:
        name: x509.GeneralName
        try:
            name = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            name = x509.DNSName(_dns_name(host))
        if name not in names:
            names.append(name)
    return names


def _dns_name(host: str) -> str:
    lowered = host.lower()
    labels = lowered.split(".")
    if (
        not host.isascii()
        or len(lowered) > 253
        or not all(_DNS_LABEL.fullmatch(x) for x in labels)
    ):
        raise InvalidHost(
            f"host {host!r} is invalid: expected an IP address or a DNS name "
            "(labels of a-z, 0-9 and '-', separated by '.')"
        )
    return lowered
