"""Tests of the ``accord pki`` command group through typer's CliRunner."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from typer.testing import CliRunner

import pki

FED = "eu-justice"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def ca_dir(runner: CliRunner, tmp_path: Path) -> Path:
    result = runner.invoke(
        pki.cli, ["init", "--federation", FED, "--out", str(tmp_path / "ca")]
    )
    assert result.exit_code == 0, result.output
    return tmp_path / "ca"


def assert_one_error_line(stderr: str, message: str) -> None:
    assert stderr.startswith(f"error: {message}"), stderr
    assert stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr


def test_cli_group_shape_and_exit_codes(runner: CliRunner) -> None:
    assert isinstance(pki.cli, typer.Typer)
    assert pki.cli.info.name == "pki"
    assert pki.EXIT_ALREADY_EXISTS == 31
    assert pki.EXIT_PKI_ERROR == 32
    assert set(pki.EXIT_CODES) == {31, 32}
    for code, help_sentence in pki.EXIT_CODES.items():
        assert 30 <= code <= 99
        assert help_sentence.endswith(".")
    result = runner.invoke(pki.cli, [])
    assert "Usage" in result.output
    for command in ("init", "issue", "csr", "sign", "show"):
        assert command in result.output
    for args in (["-h"], ["issue", "-h"], ["show", "--help"]):
        result = runner.invoke(pki.cli, args)
        assert result.exit_code == 0
        assert "Usage" in result.stdout


def test_mounted_as_accord_pki(runner: CliRunner, ca_dir: Path) -> None:
    accord = typer.Typer()
    accord.add_typer(pki.cli)

    @accord.command()
    def version() -> None:  # a second command, so that "pki" stays a group
        """Print nothing."""

    result = runner.invoke(
        accord, ["pki", "show", str(ca_dir / "ca.crt"), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["identity"] == f"spiffe://{FED}"


def test_init(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "new" / "ca"
    result = runner.invoke(
        pki.cli, ["init", "--federation", FED, "--out", str(out), "--days", "30"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    cert = pki.load_certificate(out / "ca.crt")
    assert pki.ca_federation(cert) == FED
    assert stat.S_IMODE((out / "ca.key").stat().st_mode) == 0o600
    assert f"Created the CA of federation '{FED}'" in result.stderr
    assert cert.fingerprint(hashes.SHA256()).hex(":").upper() in result.stderr
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 30


def test_init_refuses_to_overwrite(runner: CliRunner, ca_dir: Path) -> None:
    before = (ca_dir / "ca.key").read_bytes()
    result = runner.invoke(pki.cli, ["init", "--federation", FED, "--out", str(ca_dir)])
    assert result.exit_code == pki.EXIT_ALREADY_EXISTS
    assert_one_error_line(result.stderr, "refusing to overwrite existing file")
    assert result.stdout == ""
    assert (ca_dir / "ca.key").read_bytes() == before


def test_init_rejects_bad_federation_and_days(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(
        pki.cli, ["init", "--federation", "EU", "--out", str(tmp_path)]
    )
    assert result.exit_code == pki.EXIT_PKI_ERROR
    assert_one_error_line(result.stderr, "federation 'EU' is invalid: expected 1-63")
    result = runner.invoke(
        pki.cli, ["init", "--federation", FED, "--out", str(tmp_path), "--days", "0"]
    )
    assert result.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_issue(runner: CliRunner, ca_dir: Path, tmp_path: Path) -> None:
    args = [
        "issue",
        "--ca",
        str(ca_dir),
        "--agency",
        "police",
        "--role",
        "node",
        "--name",
        "alpha",
    ]
    args += [
        "--host",
        "node.police.example",
        "--host",
        "10.0.0.5",
        "--out",
        str(tmp_path / "kit"),
    ]
    result = runner.invoke(pki.cli, [*args, "--days", "7"])
    assert result.exit_code == 0, result.output
    assert (
        "Issued spiffe://eu-justice/agency/police/node/alpha, valid until"
        in result.stderr
    )
    cert = pki.load_certificate(tmp_path / "kit" / "alpha.crt")
    assert pki.identity_of(cert) == pki.Identity(FED, "police", "node", "alpha")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "alpha.police.eu-justice.accord.invalid",
        "node.police.example",
    ]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 7
    assert stat.S_IMODE((tmp_path / "kit" / "alpha.key").stat().st_mode) == 0o600
    again = runner.invoke(pki.cli, args)
    assert again.exit_code == pki.EXIT_ALREADY_EXISTS
    assert_one_error_line(again.stderr, "refusing to overwrite existing file")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--agency": "Police"}, "agency 'Police' is invalid"),
        ({"--name": "ca"}, "name 'ca' is reserved"),
        ({"--host": "bad host"}, "host 'bad host' is invalid"),
        ({"--ca": "missing"}, "certificate file "),
    ],
)
def test_issue_errors(
    runner: CliRunner,
    ca_dir: Path,
    tmp_path: Path,
    change: dict[str, str],
    message: str,
) -> None:
    options = {
        "--ca": str(ca_dir),
        "--agency": "police",
        "--role": "officer",
        "--name": "jane",
    }
    options |= {"--out": str(tmp_path / "kit"), **change}
    if change.get("--ca") == "missing":
        options["--ca"] = str(tmp_path / "missing")
    result = runner.invoke(
        pki.cli, ["issue", *(x for item in options.items() for x in item)]
    )
    assert result.exit_code == pki.EXIT_PKI_ERROR, result.output
    assert_one_error_line(result.stderr, message)
    assert not (tmp_path / "kit").exists()


def test_issue_usage_error(runner: CliRunner, ca_dir: Path, tmp_path: Path) -> None:
    args = [
        "issue",
        "--ca",
        str(ca_dir),
        "--agency",
        "police",
        "--role",
        "boss",
        "--name",
        "x",
    ]
    result = runner.invoke(pki.cli, [*args, "--out", str(tmp_path / "kit")])
    assert result.exit_code == 2
    assert "'boss' is not one of" in result.stderr


def test_csr_and_sign(runner: CliRunner, ca_dir: Path, tmp_path: Path) -> None:
    req = tmp_path / "req"
    args = ["csr", "--federation", FED, "--agency", "europol", "--role", "coordinator"]
    result = runner.invoke(
        pki.cli, [*args, "--name", "hub", "--host", "hub.example", "--out", str(req)]
    )
    assert result.exit_code == 0, result.output
    assert "hub.key (keep it on this machine)" in result.stderr
    assert stat.S_IMODE((req / "hub.key").stat().st_mode) == 0o600

    result = runner.invoke(pki.cli, ["sign", "--ca", str(ca_dir), str(req / "hub.csr")])
    assert result.exit_code == 0, result.output
    assert "Issued spiffe://eu-justice/agency/europol/coordinator/hub" in result.stderr
    cert = pki.load_certificate(req / "hub.crt")
    pki.check_certificate(
        cert,
        pki.load_certificate(ca_dir / "ca.crt"),
        now=cert.not_valid_before_utc,
        purpose="client",
    )

    out = tmp_path / "signed" / "hub.pem"
    result = runner.invoke(
        pki.cli,
        [
            "sign",
            "--ca",
            str(ca_dir),
            str(req / "hub.csr"),
            "--out",
            str(out),
            "--days",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    signed = pki.load_certificate(out)
    assert (signed.not_valid_after_utc - signed.not_valid_before_utc).days == 3

    again = runner.invoke(pki.cli, ["sign", "--ca", str(ca_dir), str(req / "hub.csr")])
    assert again.exit_code == pki.EXIT_ALREADY_EXISTS
    assert_one_error_line(again.stderr, "refusing to overwrite existing file")


def test_csr_and_sign_errors(runner: CliRunner, ca_dir: Path, tmp_path: Path) -> None:
    args = [
        "csr",
        "--federation",
        "other-fed",
        "--agency",
        "police",
        "--role",
        "node",
        "--name",
        "n",
    ]
    result = runner.invoke(pki.cli, [*args, "--out", str(tmp_path / "req")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        pki.cli, ["sign", "--ca", str(ca_dir), str(tmp_path / "req" / "n.csr")]
    )
    assert result.exit_code == pki.EXIT_PKI_ERROR
    assert_one_error_line(result.stderr, f"CSR {tmp_path / 'req' / 'n.csr'} requests")
    assert "federation 'other-fed', but the CA" in result.stderr
    (tmp_path / "junk.csr").write_text("junk")
    result = runner.invoke(
        pki.cli, ["sign", "--ca", str(ca_dir), str(tmp_path / "junk.csr")]
    )
    assert result.exit_code == pki.EXIT_PKI_ERROR
    assert_one_error_line(
        result.stderr, f"CSR file {tmp_path / 'junk.csr'} does not hold a PEM"
    )
    result = runner.invoke(pki.cli, [*args[:-1], "N!", "--out", str(tmp_path / "req2")])
    assert result.exit_code == pki.EXIT_PKI_ERROR
    assert_one_error_line(result.stderr, "name 'N!' is invalid")


def test_show(runner: CliRunner, ca_dir: Path, tmp_path: Path) -> None:
    kit = pki.issue(
        ca_dir, pki.Identity(FED, "police", "node", "alpha"), tmp_path / "kit"
    )
    cert = pki.load_certificate(kit.cert)
    fingerprint = cert.fingerprint(hashes.SHA256()).hex(":").upper()

    result = runner.invoke(pki.cli, ["show", str(kit.cert), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    shown = json.loads(result.stdout)
    assert shown == {
        "identity": "spiffe://eu-justice/agency/police/node/alpha",
        "is_ca": False,
        "status": "valid",
        "subject": "CN=alpha,O=police",
        "issuer": f"CN=Accord federation CA {FED},O=Accord",
        "serial": f"{cert.serial_number:x}",
        "not_valid_before": cert.not_valid_before_utc.isoformat(),
        "not_valid_after": cert.not_valid_after_utc.isoformat(),
        "sans": [
            "URI:spiffe://eu-justice/agency/police/node/alpha",
            "DNS:alpha.police.eu-justice.accord.invalid",
            "DNS:localhost",
            "IP:127.0.0.1",
        ],
        "extended_key_usage": ["serverAuth", "clientAuth"],
        "fingerprint_sha256": fingerprint,
    }

    table = runner.invoke(pki.cli, ["show", str(kit.cert)])
    assert table.exit_code == 0, table.output
    for text in (
        "spiffe://eu-justice/agency/police/node/alpha",
        "DNS:localhost",
        "serverAuth",
        "valid",
    ):
        assert text in table.stdout
    assert fingerprint[:20] in table.stdout

    ca = json.loads(
        runner.invoke(
            pki.cli, ["show", str(ca_dir / "ca.crt"), "--format", "json"]
        ).stdout
    )
    assert ca["is_ca"] is True
    assert ca["identity"] == f"spiffe://{FED}"


def test_show_errors(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(pki.cli, ["show", str(tmp_path / "nope.crt")])
    assert result.exit_code == pki.EXIT_PKI_ERROR
    assert result.stdout == ""
    assert_one_error_line(
        result.stderr, f"certificate file {tmp_path / 'nope.crt'} does not exist"
    )
    (tmp_path / "junk.crt").write_text("junk")
    result = runner.invoke(pki.cli, ["show", str(tmp_path / "junk.crt")])
    assert result.exit_code == pki.EXIT_PKI_ERROR
    assert_one_error_line(result.stderr, "certificate file")
    result = runner.invoke(
        pki.cli, ["show", str(tmp_path / "junk.crt"), "--format", "xml"]
    )
    assert result.exit_code == 2
