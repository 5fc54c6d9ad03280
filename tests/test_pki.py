"""Tests of the ``pki`` package: CA, issuing, CSRs, checks, TLS kits and real mTLS."""

from __future__ import annotations

import ipaddress
import os
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

import pki
from pki import (
    AlreadyExists,
    CertificateExpired,
    CertificateFileError,
    CertificateNotYetValid,
    CertificateProblem,
    FederationMismatch,
    Identity,
    InvalidCsr,
    InvalidHost,
    InvalidIdentity,
    PkiError,
    TlsFiles,
    TlsMaterial,
    WrongCa,
    WrongPurpose,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
FED = "eu-justice"
ALPHA = Identity(FED, "police", "node", "alpha")
COORD = Identity(FED, "europol", "coordinator", "hub")
OFFICER = Identity(FED, "police", "officer", "jane.doe")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def ext(
    cert: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


def sans(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    value = ext(cert, x509.SubjectAlternativeName).value
    assert isinstance(value, x509.SubjectAlternativeName)
    return value


def usages(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    value = ext(cert, x509.ExtendedKeyUsage).value
    assert isinstance(value, x509.ExtendedKeyUsage)
    return list(value)


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    pki.init_ca(FED, tmp_path / "ca", now=NOW)
    return tmp_path / "ca"


@pytest.fixture
def ca_cert(ca_dir: Path) -> x509.Certificate:
    return pki.load_certificate(ca_dir / "ca.crt")


# --- public surface ----------------------------------------------------------------


def test_exported_members() -> None:
    assert sorted(pki.__all__) == sorted(
        [
            "EXIT_ALREADY_EXISTS",
            "EXIT_CODES",
            "EXIT_PKI_ERROR",
            "ROLES",
            "AlreadyExists",
            "CaPaths",
            "CertificateExpired",
            "CertificateFileError",
            "CertificateNotYetValid",
            "CertificateProblem",
            "CsrPaths",
            "FederationMismatch",
            "Identity",
            "InvalidCsr",
            "InvalidHost",
            "InvalidIdentity",
            "LeafPaths",
            "PkiError",
            "Purpose",
            "Role",
            "TlsFiles",
            "TlsMaterial",
            "WrongCa",
            "WrongPurpose",
            "ca_federation",
            "channel_credentials",
            "check_certificate",
            "cli",
            "identity_from_pem",
            "identity_of",
            "init_ca",
            "issue",
            "load_certificate",
            "make_csr",
            "peer_identity",
            "server_credentials",
            "sign_csr",
        ]
    )
    cli_names = {"EXIT_ALREADY_EXISTS", "EXIT_CODES", "EXIT_PKI_ERROR", "cli"}
    for name in set(pki.__all__) - cli_names:  # the CLI names: test_pki_cli.py
        assert getattr(pki, name) is not None


def test_importing_pki_does_not_load_the_cli() -> None:
    code = "import sys, pki; assert 'typer' not in sys.modules, 'typer loaded'"
    env = {**os.environ, "PYTHONPATH": str(Path(pki.__file__).parent.parent)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=30)


def test_exception_tree() -> None:
    for error in (
        AlreadyExists,
        InvalidIdentity,
        InvalidHost,
        FederationMismatch,
        InvalidCsr,
        CertificateFileError,
        CertificateProblem,
    ):
        assert issubclass(error, PkiError)
    for problem in (CertificateExpired, CertificateNotYetValid, WrongCa, WrongPurpose):
        assert issubclass(problem, CertificateProblem)


# --- Identity ----------------------------------------------------------------------


def test_identity_uri_and_parse_round_trip() -> None:
    assert ALPHA.uri == "spiffe://eu-justice/agency/police/node/alpha"
    assert str(ALPHA) == ALPHA.uri
    for identity in (ALPHA, COORD, OFFICER):
        assert Identity.parse(identity.uri) == identity


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((FED, "Police", "node", "a"), "agency 'Police' is invalid"),
        (("", "police", "node", "a"), "federation '' is invalid"),
        (
            (FED, "police", "admin", "a"),
            "role 'admin' is invalid: expected one of node",
        ),
        ((FED, "police", "node", "a" * 64), "name 'aaaa"),
        ((FED, "police", "node", "-x"), "name '-x' is invalid"),
        ((FED, "police", "node", "a/b"), "name 'a/b' is invalid"),
        ((FED, "police", "node", ".."), "name '..' is invalid"),
    ],
)
def test_identity_rejects_bad_fields(
    fields: tuple[str, str, str, str], message: str
) -> None:
    with pytest.raises(InvalidIdentity, match=None) as info:
        Identity(*fields)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_identity_accepts_63_characters() -> None:
    assert Identity(FED, "police", "node", "a" * 63).name == "a" * 63


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "https://eu-justice/agency/police/node/alpha",
            "expected spiffe://<federation>",
        ),
        ("spiffe://eu-justice/police/node/alpha", "expected spiffe://<federation>"),
        ("spiffe://eu-justice/agency/police/node/alpha/x", "expected spiffe://"),
        ("spiffe://eu-justice/agency/police/node", "expected spiffe://"),
        ("spiffe://eu-justice", "expected spiffe://"),
        (
            "spiffe://eu-justice/agency/police/janitor/alpha",
            "role 'janitor' is invalid",
        ),
        ("spiffe://EU/agency/police/node/alpha", "federation 'EU' is invalid"),
        ("spiffe://eu:443/agency/police/node/alpha", "federation 'eu:443' is invalid"),
        ("spiffe://eu-justice/agency/police/node/alpha?x=1", "name 'alpha?x=1'"),
    ],
)
def test_identity_parse_rejects(uri: str, message: str) -> None:
    with pytest.raises(InvalidIdentity) as info:
        Identity.parse(uri)
    assert message in str(info.value)
    assert repr(uri) in str(info.value)


# --- init_ca -----------------------------------------------------------------------


def test_init_ca_writes_ca_with_its_federation(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    paths = pki.init_ca(FED, out, lifetime_days=10, now=NOW)
    assert paths == pki.CaPaths(cert=out / "ca.crt", key=out / "ca.key")
    assert mode(paths.key) == 0o600
    assert b"BEGIN PRIVATE KEY" in paths.key.read_bytes()  # PKCS#8, unencrypted
    cert = pki.load_certificate(paths.cert)
    assert pki.ca_federation(cert) == FED
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        f"Accord federation CA {FED}"
    )
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)
    basic = ext(cert, x509.BasicConstraints)
    assert basic.critical
    assert basic.value == x509.BasicConstraints(ca=True, path_length=0)
    key_usage = ext(cert, x509.KeyUsage)
    assert key_usage.critical
    assert isinstance(key_usage.value, x509.KeyUsage)
    assert key_usage.value.key_cert_sign
    assert key_usage.value.crl_sign
    assert key_usage.value.digital_signature
    ski = ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + timedelta(days=10)


@pytest.mark.parametrize("existing", ["ca.crt", "ca.key"])
def test_init_ca_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_bytes(b"precious")
    with pytest.raises(AlreadyExists, match=f"existing file .*{existing}"):
        pki.init_ca(FED, tmp_path, now=NOW)
    assert (tmp_path / existing).read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_init_ca_rejects_bad_federation(tmp_path: Path) -> None:
    with pytest.raises(InvalidIdentity, match="federation 'EU Justice' is invalid"):
        pki.init_ca("EU Justice", tmp_path, now=NOW)
    assert list(tmp_path.iterdir()) == []


def test_init_ca_out_dir_blocked_by_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(CertificateFileError, match="cannot create directory"):
        pki.init_ca(FED, tmp_path / "file" / "ca", now=NOW)


def test_naive_now_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        pki.init_ca(FED, tmp_path, now=datetime(2030, 1, 1))


def test_ca_federation_rejects_a_leaf(ca_dir: Path, tmp_path: Path) -> None:
    leaf = pki.load_certificate(pki.issue(ca_dir, ALPHA, tmp_path / "k", now=NOW).cert)
    with pytest.raises(InvalidIdentity, match="not an Accord federation CA"):
        pki.ca_federation(leaf)


# --- issue -------------------------------------------------------------------------


def test_issue_writes_a_self_contained_kit(ca_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "kit"
    paths = pki.issue(ca_dir, ALPHA, out, now=NOW)
    assert paths == pki.LeafPaths(
        key=out / "alpha.key", cert=out / "alpha.crt", ca=out / "ca.crt"
    )
    assert mode(paths.key) == 0o600
    assert paths.ca.read_bytes() == (ca_dir / "ca.crt").read_bytes()
    material = paths.tls_files().read()
    assert material.cert == paths.cert.read_bytes()
    assert TlsFiles.from_kit(out, "alpha") == paths.tls_files()


def test_issue_leaf_shape(
    ca_dir: Path, ca_cert: x509.Certificate, tmp_path: Path
) -> None:
    cert = pki.load_certificate(
        pki.issue(ca_dir, ALPHA, tmp_path, lifetime_days=30, now=NOW).cert
    )
    cert.verify_directly_issued_by(ca_cert)
    assert pki.identity_of(cert) == ALPHA
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alpha"
    basic = ext(cert, x509.BasicConstraints)
    assert basic.critical
    assert basic.value == x509.BasicConstraints(ca=False, path_length=None)
    key_usage = ext(cert, x509.KeyUsage)
    assert key_usage.critical
    assert isinstance(key_usage.value, x509.KeyUsage)
    assert key_usage.value.digital_signature
    assert not key_usage.value.key_cert_sign
    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    ca_ski = ext(ca_cert, x509.SubjectKeyIdentifier).value
    assert isinstance(ca_ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ca_ski.digest
    assert ext(cert, x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    )
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + timedelta(days=30)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        (ALPHA, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
        (COORD, [ExtendedKeyUsageOID.CLIENT_AUTH]),
        (OFFICER, [ExtendedKeyUsageOID.CLIENT_AUTH]),
    ],
)
def test_issue_extended_key_usage_by_role(
    ca_dir: Path,
    tmp_path: Path,
    identity: Identity,
    expected: list[x509.ObjectIdentifier],
) -> None:
    cert = pki.load_certificate(pki.issue(ca_dir, identity, tmp_path, now=NOW).cert)
    assert usages(cert) == expected


def test_issue_node_defaults_to_localhost(ca_dir: Path, tmp_path: Path) -> None:
    cert = pki.load_certificate(pki.issue(ca_dir, ALPHA, tmp_path, now=NOW).cert)
    names = sans(cert)
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [ALPHA.uri]
    assert names.get_values_for_type(x509.DNSName) == [ALPHA.tls_name, "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1")
    ]


def test_issue_hosts_become_dns_and_ip_sans(ca_dir: Path, tmp_path: Path) -> None:
    hosts = [
        "Node.Police.example",
        "10.1.2.3",
        "::1",
        "node.police.example",
        "10.1.2.3",
    ]
    cert = pki.load_certificate(
        pki.issue(ca_dir, ALPHA, tmp_path, hosts=hosts, now=NOW).cert
    )
    names = sans(cert)
    assert names.get_values_for_type(x509.DNSName) == [
        ALPHA.tls_name,
        "node.police.example",
    ]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.1.2.3"),
        ipaddress.ip_address("::1"),
    ]
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [ALPHA.uri]


def test_issue_client_roles_get_only_the_uri(ca_dir: Path, tmp_path: Path) -> None:
    cert = pki.load_certificate(pki.issue(ca_dir, OFFICER, tmp_path, now=NOW).cert)
    assert [str(n.value) for n in sans(cert)] == [OFFICER.uri]


@pytest.mark.parametrize(
    "host", ["", "bad host", "a..b", "-a.example", "x" * 64, "köln.de", "10.0.0.0/8"]
)
def test_issue_rejects_bad_hosts(ca_dir: Path, tmp_path: Path, host: str) -> None:
    with pytest.raises(InvalidHost, match="expected an IP address or a DNS name"):
        pki.issue(ca_dir, ALPHA, tmp_path / "k", hosts=[host], now=NOW)
    assert not (tmp_path / "k").exists()


def test_issue_uses_random_serials(ca_dir: Path, tmp_path: Path) -> None:
    one = pki.load_certificate(pki.issue(ca_dir, ALPHA, tmp_path / "1", now=NOW).cert)
    two = pki.load_certificate(pki.issue(ca_dir, ALPHA, tmp_path / "2", now=NOW).cert)
    assert one.serial_number != two.serial_number
    assert one.public_key() != two.public_key()


def test_issue_caps_lifetime_at_ca_expiry(tmp_path: Path) -> None:
    pki.init_ca(FED, tmp_path / "ca", lifetime_days=10, now=NOW)
    cert = pki.load_certificate(
        pki.issue(tmp_path / "ca", ALPHA, tmp_path, lifetime_days=90, now=NOW).cert
    )
    assert cert.not_valid_after_utc == NOW + timedelta(days=10)


def test_issue_refuses_an_expired_ca(ca_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(
        CertificateExpired,
        match=(
            r"^the federation CA certificate .*ca\.crt "
            r"expired on 2039-12-30 12:00:00 UTC$"
        ),
    ):
        pki.issue(ca_dir, ALPHA, tmp_path, now=NOW + timedelta(days=4000))


def test_issue_refuses_another_federation(ca_dir: Path, tmp_path: Path) -> None:
    stranger = Identity("other-fed", "police", "node", "alpha")
    with pytest.raises(
        FederationMismatch,
        match=r"is of federation 'other-fed', but the CA .* 'eu-justice'",
    ):
        pki.issue(ca_dir, stranger, tmp_path / "k", now=NOW)
    assert not (tmp_path / "k").exists()


def test_issue_refuses_to_overwrite(ca_dir: Path, tmp_path: Path) -> None:
    paths = pki.issue(ca_dir, ALPHA, tmp_path, now=NOW)
    before = {p: p.read_bytes() for p in (paths.key, paths.cert, paths.ca)}
    with pytest.raises(
        AlreadyExists, match=r"refusing to overwrite existing file .*alpha\.key"
    ):
        pki.issue(ca_dir, ALPHA, tmp_path, now=NOW)
    assert {p: p.read_bytes() for p in before} == before


def test_issue_refuses_a_partial_existing_kit(ca_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "alpha.crt").write_text("old")
    with pytest.raises(AlreadyExists, match=r"alpha\.crt"):
        pki.issue(ca_dir, ALPHA, tmp_path, now=NOW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alpha.crt", "ca"]


def test_issue_several_members_into_one_kit_and_into_the_ca_dir(
    ca_dir: Path, tmp_path: Path
) -> None:
    pki.issue(ca_dir, ALPHA, tmp_path / "kit", now=NOW)
    pki.issue(ca_dir, OFFICER, tmp_path / "kit", now=NOW)
    assert sorted(p.name for p in (tmp_path / "kit").iterdir()) == [
        "alpha.crt",
        "alpha.key",
        "ca.crt",
        "jane.doe.crt",
        "jane.doe.key",
    ]
    paths = pki.issue(ca_dir, COORD, ca_dir, now=NOW)
    assert paths.ca == ca_dir / "ca.crt"
    assert pki.ca_federation(pki.load_certificate(paths.ca)) == FED


def test_issue_refuses_a_kit_of_another_ca(ca_dir: Path, tmp_path: Path) -> None:
    pki.init_ca(FED, tmp_path / "kit", now=NOW)  # another CA's ca.crt in the kit
    with pytest.raises(AlreadyExists, match="holds another CA certificate"):
        pki.issue(ca_dir, ALPHA, tmp_path / "kit", now=NOW)
    assert not (tmp_path / "kit" / "alpha.key").exists()


def test_issue_reserves_the_name_ca(ca_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidIdentity, match="name 'ca' is reserved"):
        pki.issue(ca_dir, Identity(FED, "police", "node", "ca"), tmp_path, now=NOW)


def test_issue_with_missing_or_broken_ca(tmp_path: Path) -> None:
    with pytest.raises(
        CertificateFileError, match=r"certificate file .*ca\.crt does not exist"
    ):
        pki.issue(tmp_path, ALPHA, tmp_path / "k", now=NOW)
    pki.init_ca(FED, tmp_path / "a", now=NOW)
    pki.init_ca(FED, tmp_path / "b", now=NOW)
    (tmp_path / "a" / "ca.key").unlink()
    with pytest.raises(
        CertificateFileError, match=r"private key file .*ca\.key does not exist"
    ):
        pki.issue(tmp_path / "a", ALPHA, tmp_path / "k", now=NOW)
    (tmp_path / "a" / "ca.key").write_bytes((tmp_path / "b" / "ca.key").read_bytes())
    with pytest.raises(
        CertificateFileError, match="does not belong to the CA certificate"
    ):
        pki.issue(tmp_path / "a", ALPHA, tmp_path / "k", now=NOW)
    (tmp_path / "b" / "ca.key").write_bytes(b"garbage")
    with pytest.raises(CertificateFileError, match="does not hold a PEM private key"):
        pki.issue(tmp_path / "b", ALPHA, tmp_path / "k", now=NOW)


# --- CSR ---------------------------------------------------------------------------


def write_csr(
    path: Path,
    names: Sequence[x509.GeneralName] | None,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
) -> Path:
    signer = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    )
    if names is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(names), critical=False
        )
    path.write_bytes(
        builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )
    return path


def test_make_csr_writes_key_and_request(tmp_path: Path) -> None:
    paths = pki.make_csr(ALPHA, tmp_path / "req", hosts=["node.example", "10.0.0.7"])
    assert paths == pki.CsrPaths(
        key=tmp_path / "req" / "alpha.key", csr=tmp_path / "req" / "alpha.csr"
    )
    assert mode(paths.key) == 0o600
    csr = x509.load_pem_x509_csr(paths.csr.read_bytes())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alpha"
    requested = csr.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value
    assert requested.get_values_for_type(x509.UniformResourceIdentifier) == [ALPHA.uri]
    assert requested.get_values_for_type(x509.DNSName) == ["node.example"]
    assert requested.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.7")
    ]
    with pytest.raises(AlreadyExists):
        pki.make_csr(ALPHA, tmp_path / "req")


def test_csr_round_trip_matches_issue(
    ca_dir: Path, ca_cert: x509.Certificate, tmp_path: Path
) -> None:
    request = pki.make_csr(ALPHA, tmp_path / "req", hosts=["node.example", "10.0.0.7"])
    signed = pki.sign_csr(ca_dir, request.csr, lifetime_days=30, now=NOW)
    assert signed == tmp_path / "req" / "alpha.crt"
    cert = pki.load_certificate(signed)
    key = serialization.load_pem_private_key(request.key.read_bytes(), password=None)
    assert cert.public_key() == key.public_key()
    pki.check_certificate(cert, ca_cert, now=NOW, purpose="server")
    issued = pki.load_certificate(
        pki.issue(
            ca_dir,
            ALPHA,
            tmp_path / "kit",
            hosts=["node.example", "10.0.0.7"],
            lifetime_days=30,
            now=NOW,
        ).cert
    )
    skip = (x509.SubjectKeyIdentifier,)
    assert [e for e in cert.extensions if not isinstance(e.value, skip)] == [
        e for e in issued.extensions if not isinstance(e.value, skip)
    ]
    assert cert.subject == issued.subject
    assert cert.not_valid_after_utc == issued.not_valid_after_utc
    with pytest.raises(AlreadyExists):
        pki.sign_csr(ca_dir, request.csr, now=NOW)


def test_sign_csr_node_without_hosts_gets_defaults(
    ca_dir: Path, tmp_path: Path
) -> None:
    request = pki.make_csr(ALPHA, tmp_path)
    out = tmp_path / "elsewhere" / "signed.pem"
    assert pki.sign_csr(ca_dir, request.csr, out, now=NOW) == out
    names = sans(pki.load_certificate(out))
    assert names.get_values_for_type(x509.DNSName) == [ALPHA.tls_name, "localhost"]


@pytest.mark.parametrize(
    ("names", "error", "message"),
    [
        (None, InvalidCsr, "requests no subject alternative names"),
        ([x509.DNSName("node.example")], InvalidCsr, "exactly one URI SAN, found none"),
        (
            [
                x509.UniformResourceIdentifier(ALPHA.uri),
                x509.UniformResourceIdentifier(OFFICER.uri),
            ],
            InvalidCsr,
            f"exactly one URI SAN, found {ALPHA.uri}, {OFFICER.uri}",
        ),
        (
            [
                x509.UniformResourceIdentifier(
                    "spiffe://eu-justice/agency/POLICE/node/a"
                )
            ],
            InvalidCsr,
            "agency 'POLICE' is invalid",
        ),
        (
            [x509.UniformResourceIdentifier(ALPHA.uri), x509.RFC822Name("a@b.example")],
            InvalidCsr,
            "SANs other than a URI, DNS names and IP addresses",
        ),
        (
            [x509.UniformResourceIdentifier(ALPHA.uri), x509.DNSName("bad host")],
            InvalidCsr,
            "host 'bad host' is invalid",
        ),
        (
            [
                x509.UniformResourceIdentifier(
                    "spiffe://other-fed/agency/police/node/alpha"
                )
            ],
            FederationMismatch,
            "of federation 'other-fed', but the CA",
        ),
    ],
)
def test_sign_csr_rejects_bad_names(
    ca_dir: Path,
    tmp_path: Path,
    names: list[x509.GeneralName] | None,
    error: type[PkiError],
    message: str,
) -> None:
    csr = write_csr(tmp_path / "x.csr", names)
    with pytest.raises(error) as info:
        pki.sign_csr(ca_dir, csr, now=NOW)
    assert message in str(info.value)
    assert str(csr) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca", "x.csr"]


@pytest.mark.parametrize(
    ("key", "described"),
    [
        (ec.generate_private_key(ec.SECP384R1()), "ECDSA secp384r1"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSA-2048"),
    ],
)
def test_sign_csr_rejects_other_keys(
    ca_dir: Path,
    tmp_path: Path,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    described: str,
) -> None:
    csr = write_csr(
        tmp_path / "x.csr", [x509.UniformResourceIdentifier(ALPHA.uri)], key
    )
    with pytest.raises(
        InvalidCsr, match=f"has a {described} key; expected ECDSA P-256"
    ):
        pki.sign_csr(ca_dir, csr, now=NOW)


def test_sign_csr_rejects_a_bad_signature(ca_dir: Path, tmp_path: Path) -> None:
    good = x509.load_pem_x509_csr(pki.make_csr(ALPHA, tmp_path).csr.read_bytes())
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the signature's s
    tampered = x509.load_der_x509_csr(bytes(der))
    (tmp_path / "bad.csr").write_bytes(
        tampered.public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(InvalidCsr, match=r"bad\.csr has a bad signature"):
        pki.sign_csr(ca_dir, tmp_path / "bad.csr", now=NOW)


def test_sign_csr_file_errors(ca_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(
        CertificateFileError, match=r"CSR file .*missing\.csr does not exist"
    ):
        pki.sign_csr(ca_dir, tmp_path / "missing.csr", now=NOW)
    (tmp_path / "junk.csr").write_text("hello")
    with pytest.raises(
        InvalidCsr, match=r"junk\.csr does not hold a PEM certificate signing request"
    ):
        pki.sign_csr(ca_dir, tmp_path / "junk.csr", now=NOW)


# --- reading -----------------------------------------------------------------------


def test_load_certificate_errors(tmp_path: Path) -> None:
    with pytest.raises(
        CertificateFileError, match=r"certificate file .*nope\.crt does not exist"
    ):
        pki.load_certificate(tmp_path / "nope.crt")
    (tmp_path / "junk.crt").write_text("not a certificate")
    with pytest.raises(
        CertificateFileError, match=r"junk\.crt does not hold a PEM X\.509 certificate"
    ):
        pki.load_certificate(tmp_path / "junk.crt")
    with pytest.raises(CertificateFileError, match="cannot read certificate file"):
        pki.load_certificate(tmp_path)


def test_identity_of_and_from_pem(
    ca_dir: Path, ca_cert: x509.Certificate, tmp_path: Path
) -> None:
    paths = pki.issue(ca_dir, COORD, tmp_path, now=NOW)
    assert pki.identity_from_pem(paths.cert.read_bytes()) == COORD
    with pytest.raises(InvalidIdentity, match="expected one URI SAN, found none"):
        pki.identity_of(_no_san_cert())
    with pytest.raises(
        InvalidIdentity, match="identity URI 'spiffe://eu-justice' is invalid"
    ):
        pki.identity_of(ca_cert)
    with pytest.raises(InvalidIdentity, match=r"not a PEM X\.509 certificate"):
        pki.identity_from_pem(b"junk")


def _no_san_cert() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plain")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


# --- check_certificate -------------------------------------------------------------


def test_check_certificate_accepts_good_certificates(
    ca_dir: Path, ca_cert: x509.Certificate, tmp_path: Path
) -> None:
    node = pki.load_certificate(pki.issue(ca_dir, ALPHA, tmp_path, now=NOW).cert)
    coordinator = pki.load_certificate(pki.issue(ca_dir, COORD, tmp_path, now=NOW).cert)
    pki.check_certificate(node, ca_cert, now=NOW, purpose="server")
    pki.check_certificate(node, ca_cert, now=NOW, purpose="client")
    pki.check_certificate(
        coordinator, ca_cert, now=NOW + timedelta(days=90), purpose="client"
    )


def test_check_certificate_problems(
    ca_dir: Path, ca_cert: x509.Certificate, tmp_path: Path
) -> None:
    node = pki.load_certificate(
        pki.issue(ca_dir, ALPHA, tmp_path, lifetime_days=30, now=NOW).cert
    )
    coordinator = pki.load_certificate(pki.issue(ca_dir, COORD, tmp_path, now=NOW).cert)
    with pytest.raises(CertificateExpired) as expired:
        pki.check_certificate(
            node, ca_cert, now=NOW + timedelta(days=31), purpose="server"
        )
    assert (
        str(expired.value)
        == f"certificate {ALPHA.uri} expired on 2030-01-31 12:00:00 UTC"
    )
    with pytest.raises(
        CertificateNotYetValid, match="is not valid before 2030-01-01 11:55:00 UTC"
    ):
        pki.check_certificate(
            node, ca_cert, now=NOW - timedelta(minutes=6), purpose="server"
        )
    with pytest.raises(WrongPurpose) as purpose:
        pki.check_certificate(coordinator, ca_cert, now=NOW, purpose="server")
    assert str(purpose.value) == (
        f"certificate {COORD.uri} cannot be used as a server: "
        "its extended key usage lacks serverAuth"
    )
    with pytest.raises(WrongPurpose, match="extended key usage lacks clientAuth"):
        pki.check_certificate(
            _leaf_without_eku(ca_dir, ca_cert), ca_cert, now=NOW, purpose="client"
        )


def _leaf_without_eku(ca_dir: Path, ca_cert: x509.Certificate) -> x509.Certificate:
    ca_key = serialization.load_pem_private_key(
        (ca_dir / "ca.key").read_bytes(), password=None
    )
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plain")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(OFFICER.uri)]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def test_check_certificate_wrong_ca(
    ca_dir: Path, ca_cert: x509.Certificate, tmp_path: Path
) -> None:
    pki.init_ca(FED, tmp_path / "rogue", now=NOW)  # same federation name, other key
    rogue = pki.load_certificate(
        pki.issue(tmp_path / "rogue", ALPHA, tmp_path / "k", now=NOW).cert
    )
    with pytest.raises(WrongCa) as info:
        pki.check_certificate(rogue, ca_cert, now=NOW, purpose="server")
    assert (
        str(info.value)
        == f"certificate {ALPHA.uri} is not issued by the federation CA {FED}"
    )
    pki.init_ca("other-fed", tmp_path / "other", now=NOW)
    other_ca = pki.load_certificate(tmp_path / "other" / "ca.crt")
    with pytest.raises(WrongCa, match="not issued by the federation CA other-fed"):
        pki.check_certificate(rogue, other_ca, now=NOW, purpose="server")


def test_check_certificate_expired_ca(tmp_path: Path) -> None:
    pki.init_ca(FED, tmp_path, lifetime_days=1, now=NOW)
    ca = pki.load_certificate(tmp_path / "ca.crt")
    leaf = pki.load_certificate(
        pki.issue(tmp_path, ALPHA, tmp_path / "k", now=NOW).cert
    )
    with pytest.raises(
        CertificateExpired, match=f"the federation CA {FED} expired on 2030-01-02"
    ):
        pki.check_certificate(leaf, ca, now=NOW + timedelta(days=2), purpose="server")
    with pytest.raises(ValueError, match="timezone-aware"):
        pki.check_certificate(leaf, ca, now=datetime(2030, 1, 1), purpose="server")


# --- TLS files and peer identity ---------------------------------------------------


def test_tls_files_read_errors(ca_dir: Path, tmp_path: Path) -> None:
    alpha = pki.issue(ca_dir, ALPHA, tmp_path / "kit", now=NOW)
    officer = pki.issue(ca_dir, OFFICER, tmp_path / "kit", now=NOW)
    material = alpha.tls_files().read()
    assert material == TlsMaterial(
        ca=alpha.ca.read_bytes(),
        cert=alpha.cert.read_bytes(),
        key=alpha.key.read_bytes(),
    )
    assert "redacted" in repr(material)
    assert b"PRIVATE" not in repr(material).encode()
    mixed = TlsFiles(ca=alpha.ca, cert=alpha.cert, key=officer.key)
    with pytest.raises(
        CertificateFileError,
        match=r"jane\.doe\.key does not belong to certificate .*alpha\.crt",
    ):
        mixed.read()
    for field in ("ca", "cert", "key"):
        missing = TlsFiles(
            **{**vars(alpha.tls_files()), field: tmp_path / f"missing-{field}"}
        )
        with pytest.raises(
            CertificateFileError, match=f"missing-{field} does not exist"
        ):
            missing.read()
    swapped = TlsFiles(ca=alpha.ca, cert=alpha.key, key=alpha.cert)
    with pytest.raises(
        CertificateFileError, match=r"alpha\.key does not hold a PEM X\.509 certificate"
    ):
        swapped.read()


def test_peer_identity(ca_dir: Path, tmp_path: Path) -> None:
    pem = pki.issue(ca_dir, OFFICER, tmp_path, now=NOW).cert.read_bytes()
    assert pki.peer_identity({"x509_pem_cert": [pem]}) == OFFICER
    assert pki.peer_identity({"x509_pem_cert": pem}) == OFFICER
    assert pki.peer_identity({"transport_security_type": [b"ssl"]}) is None
    assert pki.peer_identity({"x509_pem_cert": []}) is None
    assert pki.peer_identity({"x509_pem_cert": [b"junk"]}) is None
    assert (
        pki.peer_identity({"x509_pem_cert": [(ca_dir / "ca.crt").read_bytes()]}) is None
    )


# --- real mutual TLS over 127.0.0.1 ------------------------------------------------


class RecordingHealth(health.HealthServicer):
    """The reference health servicer, recording who called."""

    def __init__(self) -> None:
        super().__init__()
        self.callers: list[Identity | None] = []

    def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        self.callers.append(pki.peer_identity(context.auth_context()))
        return super().Check(request, context)


@dataclass(frozen=True)
class Federation:
    root: Path
    ca: Path
    port: int
    servicer: RecordingHealth


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("mtls")
    started = datetime.now(UTC) - timedelta(days=30)
    pki.init_ca(FED, root / "ca", now=started)
    server_kit = pki.issue(root / "ca", ALPHA, root / "server", now=started)
    servicer = RecordingHealth()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_secure_port(
        "127.0.0.1:0", pki.server_credentials(server_kit.tls_files().read())
    )
    server.start()
    try:
        yield Federation(root, root / "ca", port, servicer)
    finally:
        server.stop(None).wait()


def health_check(
    federation: Federation, credentials: grpc.ChannelCredentials
) -> health_pb2.HealthCheckResponse:
    with grpc.secure_channel(f"127.0.0.1:{federation.port}", credentials) as channel:
        # The types-grpcio-health-checking stub declares no methods on HealthStub.
        stub: Any = health_pb2_grpc.HealthStub(channel)
        response: health_pb2.HealthCheckResponse = stub.Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        return response


def assert_refused(
    federation: Federation, credentials: grpc.ChannelCredentials
) -> None:
    calls_before = len(federation.servicer.callers)
    with pytest.raises(grpc.RpcError) as info:
        health_check(federation, credentials)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(federation.servicer.callers) == calls_before


def test_mtls_member_of_the_federation_is_identified(federation: Federation) -> None:
    kit = pki.issue(federation.ca, COORD, federation.root / "coordinator")
    response = health_check(federation, pki.channel_credentials(kit.tls_files().read()))
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert federation.servicer.callers[-1] == COORD


def test_mtls_client_without_certificate_is_refused(federation: Federation) -> None:
    ca_pem = (federation.ca / "ca.crt").read_bytes()
    assert_refused(federation, grpc.ssl_channel_credentials(root_certificates=ca_pem))


def test_mtls_client_of_another_ca_is_refused(federation: Federation) -> None:
    rogue_ca = federation.root / "rogue-ca"
    pki.init_ca(FED, rogue_ca)
    rogue = pki.issue(rogue_ca, COORD, federation.root / "rogue").tls_files().read()
    trusting_the_server = TlsMaterial(
        ca=(federation.ca / "ca.crt").read_bytes(), cert=rogue.cert, key=rogue.key
    )
    assert_refused(federation, pki.channel_credentials(trusting_the_server))


def test_mtls_expired_client_is_refused(federation: Federation) -> None:
    past = datetime.now(UTC) - timedelta(days=10)
    kit = pki.issue(
        federation.ca, OFFICER, federation.root / "expired", lifetime_days=1, now=past
    )
    assert_refused(federation, pki.channel_credentials(kit.tls_files().read()))
