"""Only holders of a valid certificate from the federation CA get through."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

import coordinator
import pki
from accord.v1 import node_service_pb2 as pb
from accord.v1 import node_service_pb2_grpc as pb_grpc
from accord_cli import app
from tests.conftest import RunningFederation


def call_info(
    address: str, credentials: grpc.ChannelCredentials
) -> pb.GetNodeInfoResponse:
    channel = grpc.secure_channel(address, credentials)
    try:
        return pb_grpc.NodeServiceStub(channel).GetNodeInfo(
            pb.GetNodeInfoRequest(), timeout=5
        )
    finally:
        channel.close()


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    ca = tmp_path / "rogue-ca"
    pki.init_ca("demo", ca)
    return ca


def test_a_federation_member_gets_through(federation: RunningFederation) -> None:
    material = federation.fed.coordinator_tls.read()
    info = call_info(federation.address("agency-b"), pki.channel_credentials(material))
    assert info.agency == "agency-b"


def test_no_client_certificate_is_refused_at_the_handshake(
    federation: RunningFederation,
) -> None:
    ca = federation.fed.coordinator_tls.read().ca
    with pytest.raises(grpc.RpcError) as info:
        call_info(
            federation.address("agency-a"),
            grpc.ssl_channel_credentials(root_certificates=ca),
        )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_a_certificate_from_another_ca_is_refused(
    federation: RunningFederation, other_ca: Path, tmp_path: Path
) -> None:
    leaf = pki.issue(
        other_ca, pki.Identity("demo", "hub", "coordinator", "mallory"), tmp_path / "m"
    )
    rogue = leaf.tls_files().read()
    # Trust the real CA for the server, present the rogue certificate.
    real_ca = federation.fed.coordinator_tls.read().ca
    creds = grpc.ssl_channel_credentials(real_ca, rogue.key, rogue.cert)
    with pytest.raises(grpc.RpcError) as info:
        call_info(federation.address("agency-a"), creds)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_an_expired_certificate_is_refused(
    federation: RunningFederation, tmp_path: Path
) -> None:
    past = datetime.now(UTC) - timedelta(days=30)
    leaf = pki.issue(
        federation.fed.ca_dir,
        pki.Identity("demo", "hub", "coordinator", "old"),
        tmp_path / "old",
        lifetime_days=1,
        now=past,
    )
    creds = pki.channel_credentials(leaf.tls_files().read())
    with pytest.raises(grpc.RpcError) as info:
        call_info(federation.address("agency-a"), creds)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def _federation_file(
    federation: RunningFederation, tmp_path: Path, kit: pki.TlsFiles
) -> Path:
    config = coordinator.load_federation(federation.federation_file)
    lines = [
        "[federation]",
        f'name = "{config.federation.name}"',
        "[coordinator]",
        f'ca = "{kit.ca}"',
        f'cert = "{kit.cert}"',
        f'key = "{kit.key}"',
    ]
    for n in config.nodes:
        lines += ["[[nodes]]", f'agency = "{n.agency}"', f'address = "{n.address}"']
    path = tmp_path / "federation.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_cli_says_our_certificate_expired(
    federation: RunningFederation, tmp_path: Path
) -> None:
    past = datetime.now(UTC) - timedelta(days=30)
    leaf = pki.issue(
        federation.fed.ca_dir,
        pki.Identity("demo", "hub", "coordinator", "old"),
        tmp_path / "old",
        lifetime_days=1,
        now=past,
    )
    path = _federation_file(federation, tmp_path, leaf.tls_files())
    result = CliRunner().invoke(app, ["query", "-f", str(path), "-d", "incidents"])
    assert result.exit_code == coordinator.ExitCode.TLS_SETUP
    assert "expired" in result.output
    assert "Traceback" not in result.output


def test_the_cli_says_our_certificate_is_from_another_ca(
    federation: RunningFederation, other_ca: Path, tmp_path: Path
) -> None:
    leaf = pki.issue(
        other_ca, pki.Identity("demo", "hub", "coordinator", "m"), tmp_path / "m"
    )
    files = leaf.tls_files()
    kit = pki.TlsFiles(
        ca=federation.fed.coordinator_tls.ca, cert=files.cert, key=files.key
    )
    path = _federation_file(federation, tmp_path, kit)
    result = CliRunner().invoke(app, ["query", "-f", str(path), "-d", "incidents"])
    assert result.exit_code == coordinator.ExitCode.TLS_SETUP
    assert "not issued by the federation CA" in result.output


def test_the_cli_says_when_the_node_is_not_from_our_ca(
    federation: RunningFederation, other_ca: Path, tmp_path: Path
) -> None:
    # Our kit is self-consistent but from another federation CA: the node's
    # certificate is not trusted, and the node would not trust us either.
    leaf = pki.issue(
        other_ca, pki.Identity("demo", "hub", "coordinator", "m"), tmp_path / "m"
    )
    path = _federation_file(federation, tmp_path, leaf.tls_files())
    result = CliRunner().invoke(
        app, ["query", "-f", str(path), "-d", "incidents", "--format", "json"]
    )
    assert result.exit_code == coordinator.ExitCode.NO_NODE_ANSWERED
    assert "TLS handshake failed" in result.output


def test_query_cli_json_names_contributors(federation: RunningFederation) -> None:
    result = CliRunner().invoke(
        app,
        [
            "query",
            "-f",
            str(federation.federation_file),
            "-d",
            "incidents",
            "-a",
            "count",
            "-a",
            "mean:severity",
            "-g",
            "region",
            "-w",
            "cross_border=true",
            "--format",
            "json",
            "--exact",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["contributors"] == ["agency-a/node", "agency-b/node", "agency-c/node"]
    assert data["aggregations"] == ["count", "mean(severity)"]
    assert len(data["groups"]) == 5
    assert {n["status"] for n in data["nodes"]} == {"ok"}
    total = sum(g["values"]["count"]["value"] for g in data["groups"])
    expected = sum(
        sum(site.table.column("cross_border").to_pylist())
        for site in federation.fed.sites
    )
    assert total == expected


def test_query_cli_table_and_status(federation: RunningFederation) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "query",
            "-f",
            str(federation.federation_file),
            "-d",
            "incidents",
            "-g",
            "offence",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "smuggling" in result.stdout and "participation" in result.stdout
    status = runner.invoke(
        app, ["status", "-f", str(federation.federation_file), "--format", "json"]
    )
    assert status.exit_code == 0, status.output
    rows = json.loads(status.stdout)
    assert [r["identity"] for r in rows] == [
        f"spiffe://demo/agency/{a}/node/node"
        for a in ("agency-a", "agency-b", "agency-c")
    ]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["-a", "median:severity"], "--aggregate"),
        (["-a", "sum"], "--aggregate"),
        (["-w", "severity ~ 3"], "--where"),
        (["-w", "age=3"], "filters[0].column"),
        (["-w", "severity=high"], "filters[0].values[0]"),
        (["-a", "mean:weight"], "aggregations[0].column"),
    ],
)
def test_query_cli_spec_errors_name_the_field(
    federation: RunningFederation, args: list[str], field: str
) -> None:
    result = CliRunner().invoke(
        app, ["query", "-f", str(federation.federation_file), "-d", "incidents", *args]
    )
    assert result.exit_code == coordinator.ExitCode.SPEC_INVALID, result.output
    assert field in result.output
    assert "Traceback" not in result.output


def test_a_node_answering_under_another_agencys_name_is_refused(
    federation: RunningFederation, tmp_path: Path
) -> None:
    # The federation file says agency-c listens where agency-a's node does: the
    # certificate presented there is agency-a's, so the coordinator refuses it.
    path = federation.fed.write_federation_file(
        {"agency-c": federation.address("agency-a")}, path=tmp_path / "swapped.toml"
    )
    with coordinator.Coordinator.from_config(coordinator.load_federation(path)) as hub:
        [outcome] = hub.node_info()
    assert outcome.status == "unreachable"
    assert "TLS handshake failed" in outcome.message


def test_budget_cli_shows_what_queries_spent(federation: RunningFederation) -> None:
    runner = CliRunner()
    before = runner.invoke(
        app, ["budget", "-f", str(federation.federation_file), "--format", "json"]
    )
    assert before.exit_code == 0, before.output
    rows = {
        (r["agency"], r["budget"], r["scope"], r["purpose"]): r
        for r in json.loads(before.stdout)
    }
    assert rows, before.stdout
    spec = coordinator.QuerySpec(
        "incidents", (coordinator.Aggregation("count"),), purpose="statistics"
    )
    with federation.coordinator() as hub:
        result = hub.query(spec)
    after = runner.invoke(
        app, ["budget", "-f", str(federation.federation_file), "--format", "json"]
    )
    rows_after = {
        (r["agency"], r["budget"], r["scope"], r["purpose"]): r
        for r in json.loads(after.stdout)
    }
    for o in result.outcomes:
        charged = o.response.privacy.rho_charged if o.response else 0.0
        assert charged > 0
        for key, row in rows_after.items():
            if key[0] == o.agency and key[3] in ("", "statistics"):
                assert row["rho_spent"] == pytest.approx(
                    rows[key]["rho_spent"] + charged
                )
                assert row["rho_remaining"] == pytest.approx(
                    o.response.privacy.rho_remaining
                ) or (row["rho_remaining"] >= o.response.privacy.rho_remaining)
