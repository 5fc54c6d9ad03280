"""The stored decision log: group commit, checkpoints, reads, proofs, exports.

``DecisionLogContract`` runs against every store: memory, a SQLite file and the
real PostgreSQL server (a fresh schema per test).
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from policies.auditlog import (
    DecisionLog,
    InvalidPageToken,
    LogClosed,
    LogCorrupted,
    LogKeyError,
    LogStore,
    LogUnavailable,
    MalformedRecord,
    MemoryDecisionLog,
    MemoryLogStore,
    OutOfRange,
    RecordFilter,
    SqlDecisionLog,
    SqlLogStore,
    StoredCheckpoint,
    StoredRecord,
    export_log,
    load_or_create_log_key,
    log_origin,
    open_log_reader,
    verify_consistency,
    verify_export,
    verify_inclusion,
    verify_note,
)

ORIGIN = log_origin("agency-a", "demo")
KEY = Ed25519PrivateKey.from_private_bytes(sha256(b"decision log test key").digest())
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(sha256(b"another key").digest())
T0 = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
REQUESTERS = (
    "spiffe://demo/agency/agency-b/coordinator/hub",
    "spiffe://demo/agency/agency-c/coordinator/hub",
)


def make_fields(i: int, **changes: Any) -> dict[str, Any]:
    """The fields of decision ``i`` (every field but seq and prev_hash)."""
    fields: dict[str, Any] = {
        "time": T0 + timedelta(seconds=i),
        "operation": "consultation",
        "requester": REQUESTERS[i % 2],
        "on_behalf_of": f"analyst-{i % 3}",
        "purpose": ("statistics", "research")[i % 2],
        "legal_basis": "LED Art. 8(1)",
        "justification": "quarterly trends",
        "dataset": ("incidents", "seizures", "cases")[i % 3],
        "columns": ["region", "month"],
        "request_hash": sha256(b"request %d" % i).hexdigest(),
        "policy_digest": sha256(b"policy v1").hexdigest(),
        "decision": "deny" if i % 5 == 4 else "allow",
        "matched_rules": [] if i % 5 == 4 else ["p-stats"],
        "reason": "default-deny" if i % 5 == 4 else "p-stats",
        "privacy_charged": 0.0 if i % 5 == 4 else 0.01,
        "privacy_remaining": 1.0 - 0.01 * i,
        "recipients": ["hub"],
        "query_id": f"q-{i}",
        "method": "/accord.v1.NodeService/RunQuery",
    }
    fields.update(changes)
    return fields


def append_many(log: DecisionLog, count: int, start: int = 0) -> list[int]:
    return [log.append(make_fields(i)).seq for i in range(start, start + count)]


def append_concurrently(log: DecisionLog, threads: int, each: int) -> list[int]:
    seqs: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(each):
                seq = log.append(make_fields(worker * each + i)).seq
                with lock:
                    seqs.append(seq)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors
    return seqs


class CountingStore(LogStore):
    """Wraps a store and records the size of each committed batch."""

    def __init__(self, inner: LogStore) -> None:
        self.inner = inner
        self.batches: list[int] = []
        self.checkpointed: list[int] = []

    def read_info(self):  # type: ignore[no-untyped-def]
        return self.inner.read_info()

    def write_info(self, info):  # type: ignore[no-untyped-def]
        self.inner.write_info(info)

    def leaf_hashes(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        return self.inner.leaf_hashes(start)

    def record(self, seq: int) -> StoredRecord | None:
        return self.inner.record(seq)

    def last_record(self) -> StoredRecord | None:
        return self.inner.last_record()

    def append_batch(
        self,
        records: Sequence[StoredRecord],
        checkpoint: StoredCheckpoint | None,
        *,
        expected_size: int,
    ) -> None:
        self.inner.append_batch(records, checkpoint, expected_size=expected_size)
        self.batches.append(len(records))
        if checkpoint is not None:
            self.checkpointed.append(checkpoint.tree_size)

    def records(self, where, *, after=-1, limit=100, stop=None):  # type: ignore[no-untyped-def]
        return self.inner.records(where, after=after, limit=limit, stop=stop)

    def checkpoints(self, *, after=-1, limit=100, stop=None):  # type: ignore[no-untyped-def]
        return self.inner.checkpoints(after=after, limit=limit, stop=stop)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        return self.inner.latest_checkpoint()

    def close(self) -> None:
        self.inner.close()


def export_and_verify(log: Any, tmp_path: Path) -> Any:
    out = tmp_path / f"export-{uuid.uuid4().hex}.jsonl"
    export_log(log, out, now=T0)
    return verify_export(out, log.verifier_key)


class DecisionLogContract:
    """What every store must do; subclasses provide ``new_store``."""

    __test__ = False

    @pytest.fixture
    def new_store(self) -> Callable[[], LogStore]:
        raise NotImplementedError

    @pytest.fixture
    def open_log(
        self, new_store: Callable[[], LogStore]
    ) -> Iterator[Callable[..., DecisionLog]]:
        opened: list[DecisionLog] = []
        store = new_store()

        def make(**options: Any) -> DecisionLog:
            log = DecisionLog(
                options.pop("store", store), origin=ORIGIN, signing_key=KEY, **options
            )
            opened.append(log)
            return log

        yield make
        for log in opened:
            log.close()

    def test_appends_get_contiguous_seqs_and_chain(
        self, open_log: Callable[..., DecisionLog]
    ) -> None:
        log = open_log()
        records = [log.append(make_fields(i)) for i in range(5)]
        assert [r.seq for r in records] == [0, 1, 2, 3, 4]
        assert records[0].prev_hash == "0" * 64
        for before, after in itertools.pairwise(records):
            assert after.prev_hash == before.chain_hash()
        assert log.size() == 5

    def test_concurrent_appends_are_contiguous_and_verify(
        self, open_log: Callable[..., DecisionLog], tmp_path: Path
    ) -> None:
        log = open_log(checkpoint_every=64)
        seqs = append_concurrently(log, threads=16, each=40)
        assert sorted(seqs) == list(range(640))
        log.close()
        result = export_and_verify(log, tmp_path)
        assert result.ok, result.problems
        assert result.report.records == 640
        assert result.report.attested_size == 640

    def test_malformed_fields_are_refused_before_queueing(
        self, open_log: Callable[..., DecisionLog]
    ) -> None:
        log = open_log()
        with pytest.raises(MalformedRecord, match="decision"):
            log.append(make_fields(0, decision="maybe"))
        with pytest.raises(MalformedRecord, match=r"missing fields \['reason'\]"):
            fields = make_fields(0)
            del fields["reason"]
            log.append(fields)
        with pytest.raises(MalformedRecord, match="seq: assigned by the log"):
            log.append({**make_fields(0), "seq": 3})
        with pytest.raises(MalformedRecord, match="unknown fields"):
            log.append({**make_fields(0), "colour": "red"})
        with pytest.raises(MalformedRecord, match="not valid Unicode"):
            log.append(make_fields(0, justification="\ud800"))
        assert log.append(make_fields(0)).seq == 0

    def test_time_defaults_to_the_clock(
        self, new_store: Callable[[], LogStore]
    ) -> None:
        moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
        log = DecisionLog(
            new_store(), origin=ORIGIN, signing_key=KEY, clock=lambda: moment
        )
        try:
            fields = make_fields(0)
            del fields["time"]
            assert log.append(fields).time == moment
        finally:
            log.close()

    def test_a_checkpoint_every_n_records_and_at_close(
        self, open_log: Callable[..., DecisionLog]
    ) -> None:
        log = open_log(checkpoint_every=10)
        append_many(log, 25)
        sizes = [c.tree_size for c in log.iter_checkpoints()]
        assert sizes == [1, 10, 20] or sizes == [10, 20]  # the first may come by time
        log.close()
        latest = log.latest_checkpoint()
        assert latest is not None and latest.tree_size == 25
        checkpoint = verify_note(latest.note, ORIGIN, KEY.public_key())
        assert checkpoint.root_hash == latest.root_hash

    def test_a_checkpoint_after_the_interval_without_new_records(
        self, open_log: Callable[..., DecisionLog]
    ) -> None:
        log = open_log(checkpoint_every=1000, checkpoint_interval=0.2)
        append_many(log, 3)
        time.sleep(0.05)
        append_many(log, 2, start=3)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            latest = log.latest_checkpoint()
            if latest is not None and latest.tree_size == 5:
                break
            time.sleep(0.02)
        latest = log.latest_checkpoint()
        assert latest is not None and latest.tree_size == 5

    def test_reopen_continues_the_chain(
        self,
        open_log: Callable[..., DecisionLog],
        new_store: Callable[[], LogStore],
        tmp_path: Path,
    ) -> None:
        first = open_log(checkpoint_every=7)
        append_many(first, 10)
        store = first._store
        first.close()
        second = open_log(store=store, checkpoint_every=7)
        assert second.size() == 10
        record = second.append(make_fields(10))
        assert record.seq == 10
        assert record.prev_hash == store.record(9).chain_hash.hex()  # type: ignore[union-attr]
        second.close()
        result = export_and_verify(second, tmp_path)
        assert result.ok, result.problems
        assert result.report.records == 11

    def test_another_key_or_origin_is_refused(
        self, open_log: Callable[..., DecisionLog]
    ) -> None:
        log = open_log()
        append_many(log, 2)
        store = log._store
        with pytest.raises(LogKeyError, match="another key"):
            DecisionLog(store, origin=ORIGIN, signing_key=OTHER_KEY)
        with pytest.raises(LogKeyError, match="origin"):
            DecisionLog(store, origin="audit.other.demo", signing_key=KEY)

    def test_append_after_close_is_refused(
        self, open_log: Callable[..., DecisionLog]
    ) -> None:
        log = open_log()
        log.close()
        with pytest.raises(LogClosed):
            log.append(make_fields(0))

    def test_filters_and_keyset_pages(
        self, open_log: Callable[..., DecisionLog]
    ) -> None:
        log = open_log()
        append_many(log, 40)
        where = RecordFilter(requester=REQUESTERS[0], decision="allow")
        expected = [i for i in range(40) if i % 2 == 0 and i % 5 != 4]
        seen: list[int] = []
        token = ""
        pages = 0
        while True:
            page = log.records(where, page_size=3, page_token=token)
            assert page.tree_size == 40
            seen += [r.seq for r in page.records]
            pages += 1
            token = page.next_page_token
            if not token:
                break
        assert seen == expected
        assert pages == -(-len(expected) // 3)
        with pytest.raises(InvalidPageToken, match="other filters"):
            log.records(
                RecordFilter(),
                page_size=3,
                page_token=log.records(where, page_size=3).next_page_token,
            )
        with pytest.raises(InvalidPageToken):
            log.records(where, page_token="not-a-token")

    def test_time_purpose_and_dataset_filters(
        self, open_log: Callable[..., DecisionLog]
    ) -> None:
        log = open_log()
        append_many(log, 30)
        where = RecordFilter(
            purpose="research",
            dataset="cases",
            since=T0 + timedelta(seconds=5),
            until=T0 + timedelta(seconds=23),
        )
        seqs = [r.seq for r in log.iter_records(where)]
        assert seqs == [i for i in range(5, 23) if i % 2 == 1 and i % 3 == 2]
        records = log.records(where).records
        assert all(r.record().dataset == "cases" for r in records)

    def test_page_size_is_capped_and_defaulted(
        self, open_log: Callable[..., DecisionLog]
    ) -> None:
        log = open_log()
        append_concurrently(log, threads=24, each=50)
        assert len(log.records(page_size=0).records) == 100
        page = log.records(page_size=5000)
        assert len(page.records) == 1000 and page.next_page_token
        rest = log.records(page_size=5000, page_token=page.next_page_token)
        assert [r.seq for r in page.records + rest.records] == list(range(1200))
        assert not rest.next_page_token

    def test_checkpoint_pages(self, open_log: Callable[..., DecisionLog]) -> None:
        log = open_log(checkpoint_every=1)
        append_many(log, 20)  # one at a time: one checkpoint each
        sizes: list[int] = []
        token = ""
        while True:
            page = log.checkpoints(page_size=6, page_token=token)
            assert len(page.checkpoints) <= 6
            sizes += [c.tree_size for c in page.checkpoints]
            token = page.next_page_token
            if not token:
                break
        assert sizes == list(range(1, 21))
        with pytest.raises(InvalidPageToken):
            log.checkpoints(page_token=log.records(page_size=1).next_page_token)

    def test_inclusion_proofs_verify_against_signed_roots(
        self, open_log: Callable[..., DecisionLog]
    ) -> None:
        log = open_log(checkpoint_every=16)
        append_many(log, 50)
        checkpoints = list(log.iter_checkpoints())
        for checkpoint in checkpoints:
            signed = verify_note(checkpoint.note, ORIGIN, KEY.public_key())
            for seq in {0, checkpoint.tree_size // 2, checkpoint.tree_size - 1}:
                proof = log.inclusion_proof(seq, checkpoint.tree_size)
                assert proof.root_hash == signed.root_hash
                assert verify_inclusion(
                    proof.record.leaf_hash,
                    seq,
                    signed.size,
                    proof.hashes,
                    signed.root_hash,
                )
        latest = log.inclusion_proof(3)
        assert latest.tree_size == checkpoints[-1].tree_size
        with pytest.raises(OutOfRange):
            log.inclusion_proof(48, 48)
        with pytest.raises(OutOfRange):
            log.inclusion_proof(0, 51)

    def test_consistency_proofs_between_checkpoints(
        self, open_log: Callable[..., DecisionLog]
    ) -> None:
        log = open_log(checkpoint_every=8)
        append_many(log, 40)
        checkpoints = list(log.iter_checkpoints())
        for old in checkpoints:
            for new in checkpoints:
                if old.tree_size > new.tree_size:
                    continue
                proof = log.consistency_proof(old.tree_size, new.tree_size)
                assert verify_consistency(
                    old.tree_size,
                    new.tree_size,
                    old.root_hash,
                    new.root_hash,
                    proof.hashes,
                )
        with pytest.raises(OutOfRange):
            log.consistency_proof(30, 20)

    def test_no_checkpoint_yet_means_no_default_proof(
        self, new_store: Callable[[], LogStore]
    ) -> None:
        log = DecisionLog(new_store(), origin=ORIGIN, signing_key=KEY)
        try:
            assert log.latest_checkpoint() is None
            with pytest.raises(OutOfRange, match="no signed checkpoint"):
                log.inclusion_proof(0)
        finally:
            log.close()


class TestMemoryLog(DecisionLogContract):
    __test__ = True

    @pytest.fixture
    def new_store(self) -> Callable[[], LogStore]:
        return MemoryLogStore


class TestSqliteLog(DecisionLogContract):
    __test__ = True

    @pytest.fixture
    def new_store(self, tmp_path: Path) -> Iterator[Callable[[], LogStore]]:
        stores: list[SqlLogStore] = []

        def make() -> LogStore:
            store = SqlLogStore(f"sqlite:///{tmp_path / 'audit.db'}")
            stores.append(store)
            return store

        yield make
        for store in stores:
            store.close()


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    schema = f"audit_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.mark.postgres
class TestPostgresLog(DecisionLogContract):
    __test__ = True

    @pytest.fixture
    def new_store(self, pg_schema_url: str) -> Iterator[Callable[[], LogStore]]:
        stores: list[SqlLogStore] = []

        def make() -> LogStore:
            store = SqlLogStore(pg_schema_url)
            stores.append(store)
            return store

        yield make
        for store in stores:
            store.close()


# --- group commit ----------------------------------------------------------------


def test_concurrent_appends_share_transactions(tmp_path: Path) -> None:
    store = CountingStore(SqlLogStore(f"sqlite:///{tmp_path / 'audit.db'}"))
    log = DecisionLog(store, origin=ORIGIN, signing_key=KEY, batch_size=16)
    try:
        seqs = append_concurrently(log, threads=32, each=20)
    finally:
        log.close()
    assert sorted(seqs) == list(range(640))
    records_per_batch = [n for n in store.batches if n]
    assert sum(records_per_batch) == 640
    assert max(records_per_batch) <= 16
    assert len(records_per_batch) < 640 / 2, "appends were not grouped"


def test_every_checkpoint_is_in_a_batch_transaction(tmp_path: Path) -> None:
    store = CountingStore(MemoryLogStore())
    log = DecisionLog(store, origin=ORIGIN, signing_key=KEY, checkpoint_every=5)
    try:
        append_many(log, 12)
    finally:
        log.close()
    assert store.checkpointed[:2] == [5, 10] or store.checkpointed[:3] == [1, 5, 10]
    assert store.checkpointed[-1] == 12


def test_max_delay_lets_a_lone_record_commit(tmp_path: Path) -> None:
    log = MemoryDecisionLog(origin=ORIGIN, signing_key=KEY, max_delay=0.05)
    try:
        started = time.monotonic()
        assert log.append(make_fields(0)).seq == 0
        assert 0.04 <= time.monotonic() - started < 2
    finally:
        log.close()


def test_a_failed_commit_acknowledges_nothing_and_the_log_recovers(
    tmp_path: Path,
) -> None:
    store = MemoryLogStore()
    log = MemoryDecisionLog(origin=ORIGIN, signing_key=KEY, store=store)
    try:
        append_many(log, 3)
        store.fail_next = OSError("disk full")
        with pytest.raises(LogUnavailable, match="disk full"):
            log.append(make_fields(3))
        assert log.append(make_fields(4)).seq == 3
    finally:
        log.close()
    result = export_and_verify(log, tmp_path)
    assert result.ok, result.problems
    assert result.report.records == 4


def test_a_second_writer_cannot_fork_the_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    first = SqlDecisionLog(url, origin=ORIGIN, signing_key=KEY)
    second = SqlDecisionLog(url, origin=ORIGIN, signing_key=KEY)
    try:
        first.append(make_fields(0))
        with pytest.raises(LogUnavailable, match="another process"):
            second.append(make_fields(1))
    finally:
        first.close()
        second.close()


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(LogUnavailable, match="in-memory"):
        SqlDecisionLog("sqlite://", origin=ORIGIN, signing_key=KEY)


# --- opening a stored log ----------------------------------------------------------


@pytest.fixture
def sqlite_log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    log = SqlDecisionLog(
        f"sqlite:///{path}", origin=ORIGIN, signing_key=KEY, checkpoint_every=8
    )
    append_many(log, 20)
    log.close()
    return path


def _sql(path: Path, statement: str, *args: Any) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(statement, args)
    conn.close()


def test_a_gap_is_refused_at_open(sqlite_log: Path) -> None:
    _sql(sqlite_log, "DELETE FROM audit_records WHERE seq = 7")
    with pytest.raises(LogCorrupted, match="seq 7 is missing"):
        SqlDecisionLog(f"sqlite:///{sqlite_log}", origin=ORIGIN, signing_key=KEY)


def test_an_edited_head_is_refused_at_open(sqlite_log: Path) -> None:
    _sql(
        sqlite_log,
        "UPDATE audit_records SET canonical_json = replace(canonical_json, "
        '\'"decision":"deny"\', \'"decision":"allow"\') WHERE seq = 19',
    )
    with pytest.raises(LogCorrupted, match="record seq 19"):
        SqlDecisionLog(f"sqlite:///{sqlite_log}", origin=ORIGIN, signing_key=KEY)


def test_a_rewritten_leaf_is_refused_at_open(sqlite_log: Path) -> None:
    _sql(sqlite_log, "UPDATE audit_records SET leaf_hash = ? WHERE seq = 3", bytes(32))
    with pytest.raises(LogCorrupted, match="signed root"):
        SqlDecisionLog(f"sqlite:///{sqlite_log}", origin=ORIGIN, signing_key=KEY)


def test_an_unsigned_tail_is_signed_at_open(sqlite_log: Path) -> None:
    _sql(sqlite_log, "DELETE FROM audit_checkpoints WHERE tree_size = 20")
    log = SqlDecisionLog(f"sqlite:///{sqlite_log}", origin=ORIGIN, signing_key=KEY)
    try:
        latest = log.latest_checkpoint()
        assert latest is not None and latest.tree_size == 20
    finally:
        log.close()


def test_the_reader_opens_read_only(sqlite_log: Path, tmp_path: Path) -> None:
    with open_log_reader(f"sqlite:///{sqlite_log}") as reader:
        assert reader.size() == 20
        assert reader.verifier_key.startswith(ORIGIN + "+")
        proof = reader.inclusion_proof(5)
        latest = reader.latest_checkpoint()
        assert latest is not None
        assert verify_inclusion(
            proof.record.leaf_hash, 5, 20, proof.hashes, latest.root_hash
        )
        result = export_and_verify(reader, tmp_path)
        assert result.ok, result.problems
    with pytest.raises(LogUnavailable, match="no decision log database"):
        open_log_reader(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    with pytest.raises(LogUnavailable, match="holds no decision log"):
        open_log_reader(f"sqlite:///{other}")


def test_the_reader_sees_a_live_writer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    log = SqlDecisionLog(url, origin=ORIGIN, signing_key=KEY, checkpoint_every=4)
    try:
        append_many(log, 4)
        with open_log_reader(url) as reader:
            assert reader.inclusion_proof(0).tree_size == 4
            append_many(log, 4, start=4)
            assert reader.size() == 8
            proof = reader.inclusion_proof(6)
            assert proof.tree_size == 8
            assert proof.root_hash == log.inclusion_proof(6).root_hash
    finally:
        log.close()


# --- exports -----------------------------------------------------------------------


def test_the_export_format(tmp_path: Path) -> None:
    log = MemoryDecisionLog(origin=ORIGIN, signing_key=KEY, checkpoint_every=4)
    append_many(log, 10)
    log.close()
    out, csv_out = tmp_path / "log.jsonl", tmp_path / "log.csv"
    summary = export_log(log, out, csv_out=csv_out, now=T0)
    assert (summary.records, summary.tree_size) == (10, 10)
    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b""
    header = json.loads(lines[0])
    assert header == {
        "type": "header",
        "format": "accord-decision-log-export",
        "version": 1,
        "origin": ORIGIN,
        "verifier_key": log.verifier_key,
        "tree_size": 10,
        "exported_at": "2025-03-01T08:30:00.000000Z",
    }
    records = lines[1:11]
    for seq, line in enumerate(records):
        assert line == log.store.record(seq).canonical_json.encode()  # type: ignore[union-attr]
        assert line.startswith(b'{"columns":')
    checkpoints = [json.loads(line) for line in lines[11:-1]]
    assert [c["type"] for c in checkpoints] == ["checkpoint"] * len(checkpoints)
    assert checkpoints[-1]["tree_size"] == 10
    rows = csv_out.read_text(encoding="utf-8-sig").splitlines()
    assert rows[0].startswith("seq,time,operation,requester")
    assert len(rows) == 11
    assert not list(tmp_path.glob(".*.tmp"))


def test_csv_cells_cannot_run_as_formulas(tmp_path: Path) -> None:
    log = MemoryDecisionLog(origin=ORIGIN, signing_key=KEY)
    log.append(
        make_fields(0, justification='=HYPERLINK("http://x")', on_behalf_of="+1")
    )
    log.close()
    csv_out = tmp_path / "log.csv"
    export_log(log, tmp_path / "log.jsonl", csv_out=csv_out, now=T0)
    text = csv_out.read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in text and ",'+1," in text


def test_the_export_stops_at_the_latest_checkpoint(tmp_path: Path) -> None:
    log = MemoryDecisionLog(origin=ORIGIN, signing_key=KEY, checkpoint_every=8)
    try:
        append_many(log, 12)
        summary = export_log(log, tmp_path / "log.jsonl", now=T0)
        assert summary.tree_size == 8 and summary.records == 8
        result = verify_export(tmp_path / "log.jsonl", log.verifier_key)
        assert result.ok and result.report.attested_size == 8
    finally:
        log.close()


# --- the log key ---------------------------------------------------------------------


def test_the_log_key_is_created_0600_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "log.key"
    key = load_or_create_log_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    again = load_or_create_log_key(path)
    assert path.read_bytes() == before
    assert again.public_key() == key.public_key()


def test_a_readable_log_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    load_or_create_log_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(LogKeyError, match="chmod 600"):
        load_or_create_log_key(path)


def test_a_key_of_another_type_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    path = tmp_path / "log.key"
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    path.write_bytes(pem)
    os.chmod(path, 0o600)
    with pytest.raises(LogKeyError, match="not an Ed25519 key"):
        load_or_create_log_key(path)
    path.write_text("garbage")
    with pytest.raises(LogKeyError, match="not an unencrypted PEM"):
        load_or_create_log_key(path)


# --- the public surface --------------------------------------------------------------

STORAGE_SURFACE = {
    "CSV_COLUMNS",
    "DEFAULT_PAGE_SIZE",
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "MAX_PAGE_SIZE",
    "CheckpointPage",
    "Clock",
    "ConsistencyProof",
    "DecisionFields",
    "DecisionLog",
    "DecisionLogReader",
    "ExportInvalid",
    "ExportSummary",
    "ExportVerification",
    "InclusionProof",
    "InvalidPageToken",
    "LogClosed",
    "LogCorrupted",
    "LogInfo",
    "LogKeyError",
    "LogSource",
    "LogStore",
    "LogUnavailable",
    "MemoryDecisionLog",
    "MemoryLogStore",
    "OutOfRange",
    "RecordFilter",
    "RecordPage",
    "SqlDecisionLog",
    "SqlLogStore",
    "StoredCheckpoint",
    "StoredRecord",
    "export_log",
    "load_or_create_log_key",
    "log_origin",
    "log_verifier_key",
    "open_log_reader",
    "read_note_file",
    "record_payload",
    "verify_export",
}


def test_the_storage_surface_is_exported() -> None:
    import policies.auditlog as auditlog

    assert STORAGE_SURFACE <= set(auditlog.__all__)
    for name in STORAGE_SURFACE:
        member = getattr(auditlog, name)
        module = getattr(member, "__module__", "policies.auditlog")
        assert module.startswith("policies.auditlog"), name
    assert auditlog.cli.info.name == "audit"
    assert set(auditlog.EXIT_CODES) == {1, 2, 3}


def test_placing_a_record_sets_only_its_position_and_checks_it() -> None:
    import dataclasses

    from policies.auditlog import DecisionRecord

    fields = make_fields(3)
    fields.update(
        columns=tuple(fields["columns"]),
        matched_rules=tuple(fields["matched_rules"]),
        recipients=tuple(fields["recipients"]),
    )
    template = DecisionRecord(seq=0, prev_hash="0" * 64, **fields)
    head = sha256(b"head").hexdigest()
    placed = template.placed(41, head)
    assert placed == dataclasses.replace(template, seq=41, prev_hash=head)
    assert placed.canonical_bytes() != template.canonical_bytes()
    assert DecisionRecord.from_json(placed.to_json()) == placed
    assert (template.seq, template.prev_hash) == (0, "0" * 64)  # unchanged
    for seq, prev, field in [
        (-1, head, "seq"),
        (True, head, "seq"),
        (1, head.upper(), "prev_hash"),
        (1, head[:-1], "prev_hash"),
    ]:
        with pytest.raises(MalformedRecord, match=f"^{field}:"):
            template.placed(seq, prev)
