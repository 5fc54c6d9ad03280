"""The ``AuditService`` over real mutual TLS: officers only, and every call logged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from typer.testing import CliRunner

import pki
from accord.v1 import audit_service_pb2 as pb
from accord.v1 import audit_service_pb2_grpc as pb_grpc
from accord_cli import app
from node._audit import (
    ACCESS_RULE,
    ACCESS_RULE_DIGEST,
    AuditServicer,
    add_audit_service,
)
from policies.auditlog import (
    DecisionRecord,
    RecordFilter,
    SqlDecisionLog,
    leaf_hash,
    parse_verifier_key,
    verify_consistency,
    verify_inclusion,
    verify_note,
)
from tests.test_decision_log import KEY, ORIGIN, append_concurrently

FED = "demo"
NODE = pki.Identity(FED, "agency-a", "node", "node-1")
OFFICER = pki.Identity(FED, "agency-a", "officer", "alice")
COORDINATOR = pki.Identity(FED, "hub", "coordinator", "hub")
FOREIGN_OFFICER = pki.Identity(FED, "agency-b", "officer", "bob")


@dataclass
class Served:
    address: str
    log: SqlDecisionLog
    db: Path
    kits: dict[str, pki.LeafPaths]

    def channel(self, who: str) -> grpc.Channel:
        material = self.kits[who].tls_files().read()
        return grpc.secure_channel(self.address, pki.channel_credentials(material))

    def stub(self, who: str) -> pb_grpc.AuditServiceStub:
        return pb_grpc.AuditServiceStub(self.channel(who))

    def kit_args(self, who: str) -> list[str]:
        kit = self.kits[who]
        return [
            "--node",
            self.address,
            "--ca",
            str(kit.ca),
            "--cert",
            str(kit.cert),
            "--key",
            str(kit.key),
        ]

    def calls_by(self, identity: pki.Identity) -> list[DecisionRecord]:
        return [
            r.record()
            for r in self.log.iter_records(RecordFilter(requester=identity.uri))
        ]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("audit-service")
    pki.init_ca(FED, root / "ca")
    kits = {
        name: pki.issue(root / "ca", identity, root / name)
        for name, identity in (
            ("node", NODE),
            ("officer", OFFICER),
            ("coordinator", COORDINATOR),
            ("foreign", FOREIGN_OFFICER),
        )
    }
    db = root / "audit.db"
    log = SqlDecisionLog(
        f"sqlite:///{db}", origin=ORIGIN, signing_key=KEY, checkpoint_every=16
    )
    append_concurrently(log, threads=8, each=5)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_audit_service(server, AuditServicer(log, NODE, lambda: datetime.now(UTC)))
    port = server.add_secure_port(
        "127.0.0.1:0", pki.server_credentials(kits["node"].tls_files().read())
    )
    server.start()
    try:
        yield Served(f"127.0.0.1:{port}", log, db, kits)
    finally:
        server.stop(0)
        log.close()


def error_info(exc: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo")


def test_an_officer_lists_records_page_by_page(served: Served) -> None:
    stub = served.stub("officer")
    seqs: list[int] = []
    token = ""
    while True:
        response = stub.ListRecords(
            pb.ListRecordsRequest(page_size=7, page_token=token, decision="allow"),
            timeout=10,
        )
        for record in response.records:
            parsed = DecisionRecord.from_json(record.canonical_json)
            assert parsed.seq == record.seq and parsed.decision == "allow"
            assert record.leaf_hash == leaf_hash(record.canonical_json.encode())
            assert record.time.ToDatetime(tzinfo=UTC) == parsed.time
        seqs += [r.seq for r in response.records]
        token = response.next_page_token
        if not token:
            break
    assert seqs == sorted(seqs) and len(seqs) >= 32
    assert response.tree_size >= 40


def test_inclusion_proofs_verify_against_the_signed_checkpoint(served: Served) -> None:
    stub = served.stub("officer")
    key = stub.GetLogKey(pb.GetLogKeyRequest(), timeout=10)
    assert key.origin == ORIGIN and key.verifier_key == served.log.verifier_key
    name, public_key = parse_verifier_key(key.verifier_key)
    latest = stub.GetLatestCheckpoint(
        pb.GetLatestCheckpointRequest(), timeout=10
    ).checkpoint
    signed = verify_note(latest.note, name, public_key)
    assert (signed.size, signed.root_hash) == (latest.tree_size, latest.root_hash)
    # Each call appends a record, so later checkpoints move on: pin the size.
    for seq in (0, 17, signed.size - 1):
        proof = stub.GetInclusionProof(
            pb.GetInclusionProofRequest(seq=seq, tree_size=signed.size), timeout=10
        )
        assert proof.tree_size == signed.size and proof.root_hash == signed.root_hash
        leaf = leaf_hash(proof.record.canonical_json.encode())
        assert verify_inclusion(
            leaf, seq, signed.size, list(proof.hashes), signed.root_hash
        )
    # Without a size, the proof is against the latest checkpoint at the time.
    proof = stub.GetInclusionProof(pb.GetInclusionProofRequest(seq=3), timeout=10)
    listed = stub.ListCheckpoints(pb.ListCheckpointsRequest(page_size=1000), timeout=10)
    (note,) = [c.note for c in listed.checkpoints if c.tree_size == proof.tree_size]
    head = verify_note(note, name, public_key)
    leaf = leaf_hash(proof.record.canonical_json.encode())
    assert verify_inclusion(leaf, 3, head.size, list(proof.hashes), head.root_hash)


def test_consistency_proofs_between_signed_checkpoints(served: Served) -> None:
    stub = served.stub("officer")
    notes = stub.ListCheckpoints(
        pb.ListCheckpointsRequest(page_size=1000), timeout=10
    ).checkpoints
    public_key = KEY.public_key()
    heads = [verify_note(c.note, ORIGIN, public_key) for c in notes]
    assert len(heads) >= 2
    old = heads[0]
    proof = stub.GetConsistencyProof(
        pb.GetConsistencyProofRequest(first_size=old.size), timeout=10
    )
    # The proof is to the latest checkpoint, which this very read (logged) may
    # have completed: look it up afterwards.
    later = stub.ListCheckpoints(
        pb.ListCheckpointsRequest(page_size=1000), timeout=10
    ).checkpoints
    (note,) = [c.note for c in later if c.tree_size == proof.second_size]
    new = verify_note(note, ORIGIN, public_key)
    assert new.size >= heads[-1].size
    assert verify_consistency(
        old.size, new.size, old.root_hash, new.root_hash, list(proof.hashes)
    )


@pytest.mark.parametrize(
    ("call", "code", "field"),
    [
        (
            lambda s: s.ListRecords(
                pb.ListRecordsRequest(page_token="bogus"), timeout=10
            ),
            "INVALID_ARGUMENT",
            "page_token",
        ),
        (
            lambda s: s.ListRecords(pb.ListRecordsRequest(page_size=-1), timeout=10),
            "INVALID_ARGUMENT",
            "page_size",
        ),
        (
            lambda s: s.ListRecords(
                pb.ListRecordsRequest(decision="maybe"), timeout=10
            ),
            "INVALID_ARGUMENT",
            "decision",
        ),
        (
            lambda s: s.GetInclusionProof(
                pb.GetInclusionProofRequest(seq=10**6), timeout=10
            ),
            "OUT_OF_RANGE",
            None,
        ),
        (
            lambda s: s.GetConsistencyProof(
                pb.GetConsistencyProofRequest(first_size=10**6), timeout=10
            ),
            "OUT_OF_RANGE",
            None,
        ),
    ],
)
def test_bad_requests_are_refused_and_logged_as_errors(
    served: Served, call: object, code: str, field: str | None
) -> None:
    before = len(served.calls_by(OFFICER))
    with pytest.raises(grpc.RpcError) as info:
        call(served.stub("officer"))  # type: ignore[operator]
    assert info.value.code().name == code
    if field is not None:
        assert error_info(info.value).metadata["field"] == field
    after = served.calls_by(OFFICER)
    assert len(after) == before + 1
    assert after[-1].decision == "error"


@pytest.mark.parametrize("who", ["coordinator", "foreign"])
def test_only_officers_of_the_agency_are_served(served: Served, who: str) -> None:
    identity = {"coordinator": COORDINATOR, "foreign": FOREIGN_OFFICER}[who]
    with pytest.raises(grpc.RpcError) as info:
        served.stub(who).ListRecords(pb.ListRecordsRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    detail = error_info(info.value)
    assert detail.reason == "POLICY_DENIED" and detail.metadata["rule"] == ACCESS_RULE
    denied = served.calls_by(identity)[-1]
    assert denied.decision == "deny" and denied.operation == "consultation"
    assert denied.method == "/accord.v1.AuditService/ListRecords"
    assert denied.recipients == ()


def test_every_officer_call_is_logged(served: Served) -> None:
    stub = served.stub("officer")
    before = len(served.calls_by(OFFICER))
    stub.GetLogKey(pb.GetLogKeyRequest(), timeout=10)
    stub.ListCheckpoints(pb.ListCheckpointsRequest(), timeout=10)
    stub.ListRecords(pb.ListRecordsRequest(requester=COORDINATOR.uri), timeout=10)
    calls = served.calls_by(OFFICER)[before:]
    assert [c.method.rsplit("/", 1)[1] for c in calls] == [
        "GetLogKey",
        "ListCheckpoints",
        "ListRecords",
    ]
    for call in calls:
        assert call.decision == "allow" and call.operation == "consultation"
        assert call.matched_rules == (ACCESS_RULE,)
        assert call.policy_digest == ACCESS_RULE_DIGEST
        assert call.recipients == (OFFICER.uri,)


def test_the_cli_reads_exports_and_verifies_through_the_node(
    served: Served, tmp_path: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "audit",
            "show",
            *served.kit_args("officer"),
            "--decision",
            "deny",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert {r["decision"] for r in json.loads(result.stdout)["records"]} == {"deny"}
    result = runner.invoke(app, ["audit", "key", *served.kit_args("officer")])
    assert result.exit_code == 0 and result.stdout.strip() == served.log.verifier_key
    out = tmp_path / "log.jsonl"
    result = runner.invoke(
        app, ["audit", "export", *served.kit_args("officer"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["audit", "verify", str(out), "--public-key", served.log.verifier_key]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("verified: ")


def test_the_cli_gets_one_line_when_refused(served: Served) -> None:
    result = CliRunner().invoke(app, ["audit", "show", *served.kit_args("coordinator")])
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines() == [
        f"error: node {served.address}: PERMISSION_DENIED: only officers of agency "
        "agency-a may read its decision log"
    ]


def test_a_plaintext_caller_is_unauthenticated_and_logged(served: Served) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    add_audit_service(
        server, AuditServicer(served.log, NODE, lambda: datetime.now(UTC))
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.AuditServiceStub(channel).GetLogKey(
                pb.GetLogKeyRequest(), timeout=10
            )
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()
        server.stop(0)
    last = (
        served.log.records(RecordFilter(requester="unauthenticated"))
        .records[-1]
        .record()
    )
    assert last.decision == "deny" and last.method.endswith("/GetLogKey")
