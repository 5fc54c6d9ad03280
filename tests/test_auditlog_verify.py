"""Decision records, their hash chain, and the offline verifier's tamper detection."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from hashlib import sha256
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import policies.auditlog as auditlog
from policies.auditlog import (
    GENESIS_PREV_HASH,
    Checkpoint,
    DecisionRecord,
    MalformedRecord,
    MerkleTree,
    VerificationReport,
    add_signature,
    leaf_hash,
    sign_checkpoint,
    verify_consistency,
    verify_inclusion,
    verify_log,
    verify_note,
)
from policies.auditlog._record import check_payload, scan_line

ORIGIN = "audit.agency-a.example/policy-decisions"
T0 = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
BATCH = 64
SIZE = 1000  # checkpoints at 64, 128, ..., 960 and a last one at 1000

LOG_KEY = Ed25519PrivateKey.from_private_bytes(sha256(b"accord test log key").digest())
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(sha256(b"someone else").digest())
PUBLIC = LOG_KEY.public_key()


def make_record(seq: int, prev_hash: str, **changes: Any) -> DecisionRecord:
    fields: dict[str, Any] = {
        "seq": seq,
        "time": T0 + timedelta(milliseconds=37 * seq),
        "operation": ("consultation", "disclosure", "combination")[seq % 3],
        "requester": "spiffe://accord.example/agency/agency-b/service/analytics",
        "on_behalf_of": f"officer-{seq % 5}",
        "purpose": "statistics",
        "legal_basis": "LED-2016/680 Art.8(1)",
        "justification": 'quarterly incident trends \u00e9t\u00e9 \u2014 "north"',
        "dataset": "incidents",
        "columns": ("region", "month"),
        "request_hash": sha256(b"request %d" % seq).hexdigest(),
        "policy_digest": sha256(b"policy v7").hexdigest(),
        "decision": "deny" if seq % 7 == 3 else "allow",
        "matched_rules": () if seq % 7 == 3 else ("p-stats",),
        "reason": "default-deny" if seq % 7 == 3 else "p-stats",
        "privacy_charged": 0.0 if seq % 7 == 3 else 0.01,
        "privacy_remaining": None if seq % 11 == 0 else 1.0 - 0.01 * (seq % 50),
        "recipients": ("agency-b",),
        "query_id": f"q-{seq:06d}",
        "method": "/accord.v1.NodeService/Aggregate",
        "prev_hash": prev_hash,
    }
    fields.update(changes)
    return DecisionRecord(**fields)


def chain(records: list[DecisionRecord]) -> list[DecisionRecord]:
    """Renumber and relink records, as a forger rewriting the chain would."""
    out: list[DecisionRecord] = []
    prev = GENESIS_PREV_HASH
    for seq, record in enumerate(records):
        record = dataclasses.replace(record, seq=seq, prev_hash=prev)
        prev = record.chain_hash()
        out.append(record)
    return out


def checkpoints_for(
    records: list[DecisionRecord], key: Ed25519PrivateKey = LOG_KEY
) -> list[str]:
    tree = MerkleTree()
    notes = []
    for record in records:
        tree.append(record.leaf_hash())
        if tree.size % BATCH == 0 or tree.size == len(records):
            cp = Checkpoint(ORIGIN, tree.size, tree.root())
            notes.append(sign_checkpoint(cp, ORIGIN, key))
    return notes


@pytest.fixture(scope="module")
def log() -> tuple[list[DecisionRecord], list[str]]:
    records: list[DecisionRecord] = []
    prev = GENESIS_PREV_HASH
    for seq in range(SIZE):
        record = make_record(seq, prev)
        prev = record.chain_hash()
        records.append(record)
    return records, checkpoints_for(records)


FORMS: dict[str, Callable[[list[DecisionRecord]], list[Any]]] = {
    "lines": lambda rs: [r.to_json() + "\n" for r in rs],
    "bytes": lambda rs: [r.canonical_bytes() for r in rs],
    "dicts": lambda rs: [json.loads(r.to_json()) for r in rs],
    "records": lambda rs: list(rs),
}


@pytest.fixture(params=sorted(FORMS))
def form(request: pytest.FixtureRequest) -> Callable[[list[DecisionRecord]], list[Any]]:
    return FORMS[request.param]


def run(records: list[Any], notes: list[str], **kwargs: Any) -> VerificationReport:
    return verify_log(records, notes, ORIGIN, PUBLIC, **kwargs)


def assert_bad(report: VerificationReport, first_bad: int | None, *words: str) -> None:
    assert not report.ok
    assert report.first_bad_seq == first_bad, report.problems
    text = "\n".join(report.problems)
    for word in words:
        assert word in text, report.problems


# --- the record format ------------------------------------------------------------


def test_canonical_encoding_known_answer() -> None:
    record = DecisionRecord(
        seq=0,
        time=datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        operation="consultation",
        requester="spiffe://fed/agency/b/service/x",
        on_behalf_of="officer-1",
        purpose="statistics",
        legal_basis="LED Art.8",
        justification="caf\u00e9",
        dataset="incidents",
        columns=("region",),
        request_hash="a" * 64,
        policy_digest="b" * 64,
        decision="allow",
        matched_rules=("p-stats",),
        reason="p-stats",
        privacy_charged=0,
        privacy_remaining=None,
        recipients=(),
        query_id="q1",
        method="/accord.v1.NodeService/Aggregate",
        prev_hash=GENESIS_PREV_HASH,
    )
    expected = (
        '{"columns":["region"],"dataset":"incidents","decision":"allow",'
        '"justification":"caf\u00e9","legal_basis":"LED Art.8","matched_rules":'
        '["p-stats"],"method":"/accord.v1.NodeService/Aggregate","on_behalf_of":'
        '"officer-1","operation":"consultation","policy_digest":"' + "b" * 64 + '",'
        '"prev_hash":"' + "0" * 64 + '","privacy_charged":0.0,'
        '"privacy_remaining":null,"purpose":"statistics","query_id":"q1",'
        '"reason":"p-stats","recipients":[],"request_hash":"' + "a" * 64 + '",'
        '"requester":"spiffe://fed/agency/b/service/x","seq":0,'
        '"time":"2025-01-02T03:04:05.000006Z"}'
    )
    assert record.to_json() == expected
    assert record.canonical_bytes() == expected.encode("utf-8")
    assert (
        record.canonical_bytes()
        == json.dumps(
            record.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    )
    assert record.privacy_charged == 0.0 and isinstance(record.privacy_charged, float)
    assert record.chain_hash() == sha256(bytes(32) + expected.encode()).hexdigest()
    assert record.leaf_hash() == sha256(b"\x00" + expected.encode()).digest()
    assert DecisionRecord.from_json(expected) == record
    assert DecisionRecord.from_json(expected.encode()) == record
    assert DecisionRecord.from_dict(record.to_dict()) == record
    assert scan_line(expected) == (0, GENESIS_PREV_HASH)


def test_round_trip_all(log: tuple[list[DecisionRecord], list[str]]) -> None:
    records, _ = log
    for record in records[:100]:
        assert DecisionRecord.from_json(record.to_json()) == record
        assert scan_line(record.to_json()) == (record.seq, record.prev_hash)
    for earlier, later in itertools.pairwise(records):
        assert later.prev_hash == earlier.chain_hash()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seq": -1}, "seq"),
        ({"seq": True}, "seq"),
        ({"seq": 1.0}, "seq"),
        ({"operation": "read"}, "operation"),
        ({"operation": ["consultation"]}, "operation"),
        ({"decision": "permit"}, "decision"),
        ({"requester": None}, "requester"),
        ({"request_hash": "A" * 64}, "request_hash"),
        ({"policy_digest": "ab"}, "policy_digest"),
        ({"prev_hash": "g" * 64}, "prev_hash"),
        ({"privacy_charged": -0.5}, "negative"),
        ({"privacy_charged": math.nan}, "finite"),
        ({"privacy_remaining": math.inf}, "finite"),
        ({"privacy_charged": "0.1"}, "float"),
        ({"columns": ["region"]}, "columns"),
        ({"recipients": ("a", 1)}, "recipients"),
        ({"time": datetime(2025, 1, 1)}, "aware UTC"),
        ({"time": datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=1)))}, "UTC"),
        ({"time": "2025-01-01T00:00:00.000000Z"}, "time"),
    ],
)
def test_record_validation(changes: dict[str, Any], message: str) -> None:
    record = make_record(0, GENESIS_PREV_HASH)
    with pytest.raises(MalformedRecord, match=message):
        dataclasses.replace(record, **changes)


def test_record_accepts_other_utc_tzinfo() -> None:
    utc = timezone(timedelta(0))
    record = make_record(0, GENESIS_PREV_HASH, time=datetime(2025, 1, 1, tzinfo=utc))
    assert record.to_dict()["time"] == "2025-01-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("reason"), "missing fields \\['reason'\\]"),
        (lambda d: d.update(extra=1), "unknown fields \\['extra'\\]"),
        (lambda d: d.update(privacy_charged=1), "float"),
        (lambda d: d.update(seq="3"), "seq"),
        (lambda d: d.update(columns="region"), "columns"),
        (lambda d: d.update(time="2025-01-01T00:00:00Z"), "time"),
        (lambda d: d.update(time="2025-01-01T00:00:00.000000+00:00"), "time"),
        (lambda d: d.update(time="2025-13-01T00:00:00.000000Z"), "not a valid date"),
        (lambda d: d.update(time=1735689600), "time"),
    ],
)
def test_from_dict_is_strict(
    edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    payload = make_record(3, GENESIS_PREV_HASH).to_dict()
    edit(payload)
    with pytest.raises(MalformedRecord, match=message):
        DecisionRecord.from_dict(payload)


def test_from_json_errors() -> None:
    with pytest.raises(MalformedRecord, match="JSON"):
        DecisionRecord.from_json("{not json")
    with pytest.raises(MalformedRecord, match="object"):
        DecisionRecord.from_json("[1, 2]")


def test_unencodable_string() -> None:
    record = make_record(0, GENESIS_PREV_HASH, justification="\ud800")
    with pytest.raises(MalformedRecord, match="Unicode"):
        record.canonical_bytes()


def _lines_with_tricky_strings() -> Iterator[str]:
    rng = random.Random(11)
    alphabet = '"\\\n\t\x00\x1f\x7f/\u2028\u00e9\U0001f600a },:'
    for seq in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        yield make_record(
            seq,
            sha256(b"%d" % seq).hexdigest(),
            justification=text,
            columns=tuple(text[i:] for i in range(rng.randrange(0, 3))),
            privacy_charged=rng.choice([0.0, 1e-05, 0.125, 3.0, 1e22, 2.5e-300]),
            privacy_remaining=rng.choice([None, -0.0, -1.5, 1e-05, 7e99]),
        ).to_json()


def test_scan_line_agrees_with_parser() -> None:
    """The regular-expression fast path accepts only what the parser accepts."""
    rng = random.Random(5)
    for line in _lines_with_tricky_strings():
        payload = json.loads(line)
        scanned = scan_line(line)
        if scanned is not None:
            assert scanned == (payload["seq"], payload["prev_hash"])
        # Mutate single characters: the fast path must never accept a line that
        # the strict parser would reject, nor misread seq or prev_hash.
        for _ in range(40):
            i = rng.randrange(len(line))
            mutated = line[:i] + rng.choice('0a"\\,:{}[]e-.\n \u00e9') + line[i + 1 :]
            scanned = scan_line(mutated)
            if scanned is None:
                continue
            payload = json.loads(mutated)
            check_payload(payload)
            assert scanned == (payload["seq"], payload["prev_hash"])


def test_scan_line_accepts_plain_records(
    log: tuple[list[DecisionRecord], list[str]],
) -> None:
    records, _ = log
    assert all(scan_line(r.to_json()) is not None for r in records[:200])


# --- clean logs -------------------------------------------------------------------


def test_clean_log_verifies(
    log: tuple[list[DecisionRecord], list[str]],
    form: Callable[[list[DecisionRecord]], list[Any]],
) -> None:
    records, notes = log
    report = run(form(records), notes)
    assert report == VerificationReport(
        ok=True,
        records=SIZE,
        checkpoints=len(notes),
        first_bad_seq=None,
        problems=[],
        attested_size=SIZE,
    )


def test_checkpoint_order_and_cosignatures_do_not_matter(
    log: tuple[list[DecisionRecord], list[str]],
) -> None:
    records, notes = log
    cosigned = [add_signature(n, "witness.agency-b.example", OTHER_KEY) for n in notes]
    report = run(FORMS["lines"](records), list(reversed(cosigned)))
    assert report.ok, report.problems


def test_empty_log() -> None:
    assert run([], []).ok
    empty = sign_checkpoint(
        Checkpoint(ORIGIN, 0, sha256(b"").digest()), ORIGIN, LOG_KEY
    )
    assert run([], [empty]).ok


def test_unattested_tail_is_reported_in_attested_size(
    log: tuple[list[DecisionRecord], list[str]],
) -> None:
    records, notes = log
    report = run(FORMS["lines"](records), notes[:-1])
    assert report.ok
    assert report.attested_size == 960


def test_no_checkpoint_at_all(log: tuple[list[DecisionRecord], list[str]]) -> None:
    records, _ = log
    assert_bad(run(FORMS["dicts"](records[:10]), []), None, "no valid checkpoint")


def test_offline_inclusion_and_consistency(
    log: tuple[list[DecisionRecord], list[str]],
) -> None:
    records, notes = log
    tree = MerkleTree(r.leaf_hash() for r in records)
    head = verify_note(notes[-1], ORIGIN, PUBLIC)
    proof = tree.inclusion_proof(417, head.size)
    assert verify_inclusion(
        records[417].leaf_hash(), 417, head.size, proof, head.root_hash
    )
    saved = verify_note(notes[3], ORIGIN, PUBLIC)
    consistency = tree.consistency_proof(saved.size, head.size)
    assert verify_consistency(
        saved.size, head.size, saved.root_hash, head.root_hash, consistency
    )


# --- tampering --------------------------------------------------------------------


def edited(record: DecisionRecord, **changes: Any) -> DecisionRecord:
    return dataclasses.replace(record, **changes)


@pytest.mark.parametrize("k", [0, 1, 100, 127, 128, 500, 998])
def test_field_edit(
    log: tuple[list[DecisionRecord], list[str]],
    form: Callable[[list[DecisionRecord]], list[Any]],
    k: int,
) -> None:
    records, notes = log
    forged = list(records)
    forged[k] = edited(records[k], decision="allow", reason="p-stats")
    if forged[k] == records[k]:
        forged[k] = edited(records[k], purpose="investigation")
    report = run(form(forged), notes)
    assert_bad(report, k, f"seq {k + 1}: prev_hash", "signed root does not match")


def test_edit_of_last_record_is_pinned_to_its_batch(
    log: tuple[list[DecisionRecord], list[str]],
) -> None:
    records, notes = log
    forged = [*records[:-1], edited(records[-1], decision="deny")]
    # No later link exists, so only the signed root catches it: batch 960..999.
    assert_bad(run(FORMS["lines"](forged), notes), 960, "seq 960..999")


def test_line_edit_without_reencoding(
    log: tuple[list[DecisionRecord], list[str]],
) -> None:
    records, notes = log
    lines = FORMS["lines"](records)
    lines[300] = lines[300].replace('"decision":"deny"', '"decision":"allow"')
    lines[300] = lines[300].replace('"decision":"allow"', '"decision":"error"')
    assert_bad(run(lines, notes), 300, "seq 301: prev_hash")
    # Same content, different bytes: the line is not what the log hashed.
    lines = FORMS["lines"](records)
    lines[200] = json.dumps(json.loads(lines[200])) + "\n"
    assert_bad(run(lines, notes), 200, "seq 201: prev_hash")


@pytest.mark.parametrize("k", [70, 128, 999])
def test_rewritten_chain_is_caught_by_checkpoints(
    log: tuple[list[DecisionRecord], list[str]], k: int
) -> None:
    records, notes = log
    forged = list(records)
    forged[k] = edited(records[k], decision="allow", on_behalf_of="nobody")
    forged = chain(forged)  # every later prev_hash recomputed
    batch = k // BATCH * BATCH
    assert_bad(run(FORMS["lines"](forged), notes), batch, f"seq {batch}..")


@pytest.mark.parametrize("k", [0, 5, 64, 500, 999])
def test_deletion(
    log: tuple[list[DecisionRecord], list[str]],
    form: Callable[[list[DecisionRecord]], list[Any]],
    k: int,
) -> None:
    records, notes = log
    forged = records[:k] + records[k + 1 :]
    word = "truncated" if k == SIZE - 1 else f"seq {k} missing"
    assert_bad(run(form(forged), notes), k, word)


def test_deletion_of_a_range(log: tuple[list[DecisionRecord], list[str]]) -> None:
    records, notes = log
    forged = records[:200] + records[230:]
    assert_bad(run(FORMS["dicts"](forged), notes), 200, "seq 200..229 missing")


def test_deletion_with_renumbered_chain(
    log: tuple[list[DecisionRecord], list[str]],
) -> None:
    records, notes = log
    forged = chain(records[:300] + records[301:])
    assert_bad(run(FORMS["lines"](forged), notes), 256, "truncated")


@pytest.mark.parametrize("k", [0, 64, 333, 999, 1000])
def test_insertion(
    log: tuple[list[DecisionRecord], list[str]],
    form: Callable[[list[DecisionRecord]], list[Any]],
    k: int,
) -> None:
    records, notes = log
    prev = records[k - 1].chain_hash() if k else GENESIS_PREV_HASH
    fake = make_record(k, prev, decision="allow", reason="p-stats", query_id="forged")
    forged = [*records[:k], fake, *records[k:]]
    report = run(form(forged), notes)
    if k == SIZE:
        # Appended after the last checkpoint with a valid link: indistinguishable
        # from a new decision until the next checkpoint is published.
        assert report.ok and report.attested_size == SIZE
        return
    assert_bad(report, k, f"seq {k}: out of order or repeated")


def test_insertion_with_renumbered_chain(
    log: tuple[list[DecisionRecord], list[str]],
) -> None:
    records, notes = log
    fake = make_record(0, GENESIS_PREV_HASH, query_id="forged")
    forged = chain([*records[:700], fake, *records[700:]])
    assert_bad(run(FORMS["lines"](forged), notes), 640, "seq 640..703")


@pytest.mark.parametrize("k", [0, 63, 64, 998])
def test_reordering(
    log: tuple[list[DecisionRecord], list[str]],
    form: Callable[[list[DecisionRecord]], list[Any]],
    k: int,
) -> None:
    records, notes = log
    forged = list(records)
    forged[k], forged[k + 1] = forged[k + 1], forged[k]
    assert_bad(run(form(forged), notes), k, f"seq {k} missing", "out of order")


def test_reordering_with_renumbered_chain(
    log: tuple[list[DecisionRecord], list[str]],
) -> None:
    records, notes = log
    forged = list(records)
    forged[400], forged[450] = forged[450], forged[400]
    assert_bad(run(FORMS["lines"](chain(forged)), notes), 384, "seq 384..447")


@pytest.mark.parametrize("keep", [999, 970, 960, 10, 0])
def test_truncation_after_checkpoint(
    log: tuple[list[DecisionRecord], list[str]],
    form: Callable[[list[DecisionRecord]], list[Any]],
    keep: int,
) -> None:
    records, notes = log
    report = run(form(records[:keep]), notes)
    assert_bad(report, keep, f"seq {keep}..999 missing", "truncated")


def test_head_truncation(log: tuple[list[DecisionRecord], list[str]]) -> None:
    records, notes = log
    assert_bad(run(FORMS["lines"](records[64:]), notes), 0, "seq 0..63 missing")


def test_forged_checkpoint_signature(
    log: tuple[list[DecisionRecord], list[str]],
) -> None:
    records, notes = log
    lines = FORMS["lines"](records)
    # A checkpoint signed by another key under the log's name.
    cp = verify_note(notes[5], ORIGIN, PUBLIC)
    forged = list(notes)
    forged[5] = sign_checkpoint(cp, ORIGIN, OTHER_KEY)
    assert_bad(
        run(lines, forged), None, "checkpoint 5 (size 384): note has no signature"
    )
    # The log's signature line kept, the body changed.
    forged = list(notes)
    forged[5] = notes[5].replace("\n384\n", "\n385\n")
    assert_bad(run(lines, forged), None, "checkpoint 5 (size 385)", "does not verify")
    # A garbled note.
    forged = [*notes, "garbage"]
    assert_bad(run(lines, forged), None, f"checkpoint {len(notes)}: malformed")


def test_signed_checkpoint_with_wrong_root(
    log: tuple[list[DecisionRecord], list[str]],
) -> None:
    records, notes = log
    bad_root = Checkpoint(ORIGIN, 320, leaf_hash(b"not the root"))
    forged = [*notes, sign_checkpoint(bad_root, ORIGIN, LOG_KEY)]
    report = run(FORMS["lines"](records), forged)
    label = f"checkpoint {len(notes)} (size 320)"
    # Later checkpoints match the records: the log key signed two histories.
    assert_bad(report, 0, f"{label}: signed root", f"{label}: inconsistent")
    assert report.attested_size == SIZE
    # Two signed roots for one size, one matching: the same.
    report = run(FORMS["lines"](records[:320]), [*notes[:5], forged[-1]])
    assert_bad(report, 0, "checkpoint 5 (size 320): inconsistent")
    # Without the later checkpoints, the mismatch is pinned to its batch.
    report = run(FORMS["lines"](records[:320]), [*notes[:4], forged[-1]])
    assert_bad(report, 256, "checkpoint 4 (size 320): signed root")
    assert report.attested_size == 256


def test_checkpoint_from_another_origin(
    log: tuple[list[DecisionRecord], list[str]],
) -> None:
    records, notes = log
    cp = verify_note(notes[0], ORIGIN, PUBLIC)
    other = sign_checkpoint(
        dataclasses.replace(cp, origin="audit.other.example"), ORIGIN, LOG_KEY
    )
    report = run(FORMS["lines"](records), [*notes, other])
    assert_bad(report, None, "origin 'audit.other.example'")
    report = run(FORMS["lines"](records), notes, origin="audit.other.example")
    assert_bad(report, None, "is not the log's")


def test_since_checkpoint(log: tuple[list[DecisionRecord], list[str]]) -> None:
    records, notes = log
    lines = FORMS["lines"](records)
    assert run(lines, notes, since=notes[3]).ok
    # A saved checkpoint the records do not extend: the log was rewritten.
    rewritten = chain([edited(records[0], purpose="other"), *records[1:]])
    new_notes = checkpoints_for(rewritten)
    report = run(FORMS["lines"](rewritten), new_notes, since=notes[3])
    assert_bad(report, 0, "since checkpoint (size 256): signed root", "two different")
    # A saved checkpoint beyond the records: rolled back.
    report = run(lines[:200], checkpoints_for(records[:200]), since=notes[3])
    assert_bad(report, 200, "since checkpoint (size 256): beyond the last record")
    # A saved checkpoint not signed by the log key.
    foreign = sign_checkpoint(verify_note(notes[3], ORIGIN, PUBLIC), ORIGIN, OTHER_KEY)
    assert_bad(run(lines, notes, since=foreign), None, "since checkpoint")


def test_malformed_records(log: tuple[list[DecisionRecord], list[str]]) -> None:
    records, notes = log
    dicts = FORMS["dicts"](records)
    del dicts[77]["reason"]
    assert_bad(run(dicts, notes), 77, "seq 77: malformed record: missing fields")
    lines = FORMS["lines"](records)
    lines[12] = lines[12][:40] + "\n"
    assert_bad(
        run(lines, notes), 12, "seq 12: malformed record: line is not valid JSON"
    )
    lines = FORMS["lines"](records)
    lines[13] = lines[13].replace('"decision":"allow"', '"decision":"permit"')
    lines[13] = lines[13].replace('"decision":"deny"', '"decision":"permit"')
    assert_bad(run(lines, notes), 13, "seq 13: malformed record: decision")
    lines = FORMS["lines"](records)
    lines[14] = b"\xff" + lines[14].encode()
    assert_bad(run(lines, notes), 14, "UTF-8")
    items: list[Any] = FORMS["records"](records)
    items[15] = 15
    assert_bad(run(items, notes), 15, "expected a record")


def test_first_record_prev_hash(log: tuple[list[DecisionRecord], list[str]]) -> None:
    records, notes = log
    forged = [edited(records[0], prev_hash="1" * 64), *records[1:]]
    assert_bad(run(FORMS["dicts"](forged), notes), 0, "prev_hash is not zero")


def test_problem_list_is_capped(log: tuple[list[DecisionRecord], list[str]]) -> None:
    records, notes = log
    forged = [edited(r, prev_hash="1" * 64) for r in records]
    report = run(FORMS["dicts"](forged), notes, max_problems=10)
    assert len(report.problems) == 11
    assert report.problems[-1].startswith("... and ")
    assert report.first_bad_seq == 0


def test_public_api() -> None:
    assert set(auditlog.__all__) >= {
        "AuditLogError",
        "Checkpoint",
        "DECISIONS",
        "DecisionRecord",
        "EMPTY_ROOT",
        "GENESIS_PREV_HASH",
        "HASH_SIZE",
        "MAX_SIGNATURES",
        "MalformedNote",
        "MalformedRecord",
        "MerkleTree",
        "NoteSignature",
        "OPERATIONS",
        "SignatureInvalid",
        "VerificationReport",
        "add_signature",
        "encode_verifier_key",
        "key_id",
        "leaf_hash",
        "node_hash",
        "parse_note",
        "parse_verifier_key",
        "root",
        "sign_checkpoint",
        "sign_note",
        "verify_consistency",
        "verify_inclusion",
        "verify_log",
        "verify_note",
    }
    for name in auditlog.__all__:
        member = getattr(auditlog, name)
        assert getattr(member, "__module__", "policies.auditlog").startswith(
            "policies.auditlog"
        )
