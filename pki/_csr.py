"""Certificate signing requests: keys stay on the machine that generated them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki._ca import load_ca
from pki._clock import check_lifetime, resolve_now
from pki._errors import FederationMismatch, InvalidCsr, InvalidHost, InvalidIdentity
from pki._files import (
    KEY_MODE,
    NewFile,
    key_description,
    leaf_file,
    make_dir,
    private_key_pem,
    read_bytes,
    write_new_files,
)
from pki._identity import Identity
from pki._issue import build_leaf, host_names


@dataclass(frozen=True)
class CsrPaths:
    """The files `make_csr` wrote.

    Parameters
    ----------
    key
        ``<name>.key``: the private key (mode 0600); it never leaves this machine.
    csr
        ``<name>.csr``: the request, to send to the CA operator.
    """

    key: Path
    csr: Path


def make_csr(
    identity: Identity, out_dir: Path, *, hosts: Sequence[str] = ()
) -> CsrPaths:
    """Generate a key and a certificate signing request for ``identity``.

    The request's subject CN is the name; it asks for SANs: the identity URI and
    ``hosts``. The CA decides the rest (usages, lifetime; a node's default hosts).

    Parameters
    ----------
    identity
        Whom the certificate is for.
    out_dir
        Where to write ``<name>.key`` and ``<name>.csr``; created if needed.
    hosts
        DNS names and IP addresses to request as SANs.

    Returns
    -------
    CsrPaths
        The files written.

    Raises
    ------
    AlreadyExists
        If a file exists; nothing is written.
    InvalidHost
        If a host is neither an IP address nor a DNS name.
    CertificateFileError
        If a file cannot be written.
    """
    paths = CsrPaths(
        key=leaf_file(out_dir, identity.name, ".key"),
        csr=leaf_file(out_dir, identity.name, ".csr"),
    )
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
    names += host_names(hosts)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.name)])
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    make_dir(out_dir)
    write_new_files(
        [
            NewFile(paths.key, private_key_pem(key), KEY_MODE),
            NewFile(paths.csr, csr.public_bytes(serialization.Encoding.PEM)),
        ]
    )
    return paths


def sign_csr(
    ca_dir: Path,
    csr_path: Path,
    out_path: Path | None = None,
    *,
    lifetime_days: int = 90,
    now: datetime | None = None,
) -> Path:
    """Issue a certificate for a CSR, shaped exactly as `issue` would.

    Parameters
    ----------
    ca_dir
        The CA directory (``ca.crt`` and ``ca.key``).
    csr_path
        The PEM request made by `make_csr`.
    out_path
        Where to write the certificate; default ``<name>.crt`` next to the CSR.
    lifetime_days
        How long the certificate is valid (capped at the CA's expiry).
    now
        The time of issue (timezone-aware); default: the current time.

    Returns
    -------
    Path
        The certificate written.

    Raises
    ------
    InvalidCsr
        If the CSR is not PEM, its signature does not verify, its key is not ECDSA
        P-256, or it requests no or several URI SANs, an invalid identity, an
        invalid host or another kind of SAN.
    FederationMismatch
        If the requested identity is of another federation than the CA.
    AlreadyExists
        If the certificate file exists.
    CertificateFileError
        If the CSR or CA files are missing, or the certificate cannot be written.
    CertificateExpired, CertificateNotYetValid
        If the CA certificate is not valid at ``now``.
    """
    check_lifetime(lifetime_days)
    csr = _load_csr(csr_path)
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidCsr(
            f"CSR {csr_path} has an unsupported key; expected ECDSA P-256"
        ) from None
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise InvalidCsr(
            f"CSR {csr_path} has a {key_description(public_key)} key; "
            "expected ECDSA P-256"
        )
    if not csr.is_signature_valid:
        raise InvalidCsr(
            f"CSR {csr_path} has a bad signature: it was altered or not signed "
            "by its own key"
        )
    identity, hosts = _requested_names(csr, csr_path)
    ca = load_ca(ca_dir)
    if identity.federation != ca.federation:
        raise FederationMismatch(
            f"CSR {csr_path} requests {identity.uri} of federation "
            f"{identity.federation!r}, but the CA {ca.cert_path} is of federation "
            f"{ca.federation!r}"
        )
    target = out_path or leaf_file(csr_path.parent, identity.name, ".crt")
    cert = build_leaf(ca, identity, public_key, hosts, lifetime_days, resolve_now(now))
    if out_path is not None:
        make_dir(out_path.parent)
    write_new_files([NewFile(target, cert.public_bytes(serialization.Encoding.PEM))])
    return target


def _load_csr(path: Path) -> x509.CertificateSigningRequest:
    data = read_bytes(path, "CSR")
    try:
        return x509.load_pem_x509_csr(data)
    except ValueError:
        raise InvalidCsr(
            f"CSR file {path} does not hold a PEM certificate signing request"
        ) from None


def _requested_names(
    csr: x509.CertificateSigningRequest, path: Path
) -> tuple[Identity, list[str]]:
    """Return the identity (from the single URI SAN) and hosts a CSR requests."""
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        raise InvalidCsr(
            f"CSR {path} requests no subject alternative names; expected one URI "
            "SAN spiffe://<federation>/agency/<agency>/<role>/<name>"
        ) from None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        found = "none" if not uris else ", ".join(uris)
        raise InvalidCsr(f"CSR {path} must request exactly one URI SAN, found {found}")
    hosts: list[str] = list(san.value.get_values_for_type(x509.DNSName))
    hosts += [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)]
    others = [
        name
        for name in san.value
        if not isinstance(
            name, x509.UniformResourceIdentifier | x509.DNSName | x509.IPAddress
        )
    ]
    if others:
        raise InvalidCsr(
            f"CSR {path} requests SANs other than a URI, DNS names and IP addresses: "
            f"{', '.join(str(name) for name in others)}"
        )
    try:
        identity = Identity.parse(uris[0])
        host_names(hosts)
    except (InvalidIdentity, InvalidHost) as exc:
        raise InvalidCsr(f"CSR {path}: {exc}") from None
    return identity, hosts
