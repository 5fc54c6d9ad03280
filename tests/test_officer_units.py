"""The workbench's pure parts: alerts, chart series, report rendering, the local copy."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import officer
from officer._alerts import budget_alerts, denial_bursts
from officer._chart import consumption_series, render_chart, sample, value_at
from officer._config import Overrides, SettingsError, is_loopback, load_settings
from officer._index import LogIndex
from officer._integrity import PinnedKey, check_checkpoint, check_inclusion
from officer._link import ReaderNodeLink
from officer._query import LogFilter, parse_log_query
from officer._report import render_report
from officer._views import BudgetLine, BudgetReport
from officer._workbench import Workbench
from policies.auditlog import (
    InclusionProof,
    MemoryDecisionLog,
    MemoryLogStore,
    RecordPage,
    StoredCheckpoint,
    add_signature,
    encode_verifier_key,
)

T0 = datetime(2025, 3, 1, tzinfo=UTC)
US = 1_000_000
KEY = Ed25519PrivateKey.from_private_bytes(sha256(b"officer unit key").digest())
ORIGIN = "audit.agency-a.unit"
ANALYST = "spiffe://unit/agency/hub/coordinator/analyst"


def line(**changes: object) -> BudgetLine:
    values: dict[str, object] = {
        "budget_id": "b",
        "requester": ANALYST,
        "purpose": "",
        "scope": "lifetime",
        "period_start": None,
        "period_end": None,
        "rho_limit": 1.0,
        "rho_spent": 0.1,
        "rho_remaining": 0.9,
        "epsilon_remaining": 5.0,
        "delta": 1e-6,
        "alert_threshold": 0.8,
    }
    values.update(changes)
    return BudgetLine(**values)  # type: ignore[arg-type]


# -- alerts --------------------------------------------------------------------


def test_budget_alerts_flag_thresholds_and_exhaustion_worst_first() -> None:
    reports = [
        BudgetReport(
            ANALYST,
            "d",
            (
                line(budget_id="fine"),
                line(budget_id="past", rho_spent=0.85, rho_remaining=0.15),
                line(budget_id="gone", rho_spent=1.0, rho_remaining=0.0),
                line(budget_id="exact", rho_spent=0.8, rho_remaining=0.2),
            ),
        )
    ]
    alerts = budget_alerts(reports)
    assert [(a.budget_id, a.level) for a in alerts] == [
        ("gone", "exhausted"),
        ("past", "threshold"),
        ("exact", "threshold"),
    ]
    assert alerts[1].fraction == pytest.approx(0.85)


def test_denial_bursts_need_enough_denials_inside_the_window() -> None:
    window = timedelta(minutes=10)
    # a: 5 denials within 4 minutes (a burst); b: 4 (not enough); c: 5 spread over hours.
    events = [(i, T0 + timedelta(minutes=i), "a") for i in range(5)]
    events += [(10 + i, T0 + timedelta(minutes=i), "b") for i in range(4)]
    events += [(20 + i, T0 + timedelta(hours=i), "c") for i in range(5)]
    seqs = [e[0] for e in events]
    times = [
        int((e[1] - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * US)
        for e in events
    ]
    bursts = denial_bursts(
        seqs, times, [e[2] for e in events], threshold=5, window=window
    )
    assert [(b.requester, b.count, b.first_seq, b.last_seq) for b in bursts] == [
        ("a", 5, 0, 4)
    ]
    assert bursts[0].end - bursts[0].start == timedelta(minutes=4)


def test_two_bursts_a_day_apart_stay_two_and_close_ones_merge() -> None:
    base = int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * US
    minute = 60 * US
    times = [base + i * minute for i in range(8)]  # 8 in 8 minutes: one burst
    times += [base + 86_400 * US + i * minute for i in range(3)]  # 3 a day later
    bursts = denial_bursts(
        list(range(11)), times, ["a"] * 11, threshold=3, window=timedelta(minutes=5)
    )
    assert [(b.count, b.first_seq) for b in bursts] == [(3, 8), (8, 0)]
    with pytest.raises(ValueError, match="threshold"):
        denial_bursts([], [], [], threshold=1, window=timedelta(minutes=1))


# -- chart series ---------------------------------------------------------------


def test_a_lifetime_series_accumulates_from_before_the_range() -> None:
    charges = [
        (T0 - timedelta(days=3), 0.1),
        (T0 + timedelta(days=1), 0.2),
        (T0 + timedelta(days=2), 0.3),
    ]
    series = consumption_series(
        charges, start=T0, end=T0 + timedelta(days=10), limit=1.0, alert_threshold=0.5
    )
    assert [when for when, _ in series.steps] == [
        T0,
        T0 + timedelta(days=1),
        T0 + timedelta(days=2),
    ]
    assert [value for _, value in series.steps] == pytest.approx([0.1, 0.3, 0.6])
    assert series.threshold == 0.5 and series.final == pytest.approx(0.6)
    assert value_at(series, T0 + timedelta(days=1, hours=1)) == pytest.approx(0.3)


def test_a_periodic_series_falls_to_zero_at_each_period_boundary() -> None:
    # 7-day periods counted from 1970-01-01 (a Thursday): 2025-02-27 starts one.
    start = datetime(2025, 2, 27, tzinfo=UTC)
    charges = [
        (start + timedelta(days=1), 0.4),
        (start + timedelta(days=6), 0.4),
        (start + timedelta(days=8), 0.1),
    ]
    series = consumption_series(
        charges,
        start=start + timedelta(days=2),
        end=start + timedelta(days=20),
        limit=1.0,
        alert_threshold=0.8,
        period_days=7,
    )
    assert [(s[0] - start).days for s in series.steps] == [2, 6, 7, 8, 14]
    assert [round(s[1], 6) for s in series.steps] == [0.4, 0.8, 0.0, 0.1, 0.0]
    with pytest.raises(ValueError):
        consumption_series([], start=T0, end=T0, limit=1, alert_threshold=1)


def test_sampling_keeps_each_buckets_peak_and_the_svg_is_inline_and_escaped() -> None:
    charges = [(T0 + timedelta(hours=h), 0.01) for h in range(24 * 30)]
    series = consumption_series(
        charges,
        start=T0,
        end=T0 + timedelta(days=30),
        limit=10.0,
        alert_threshold=0.8,
        label="<b>&",
    )
    buckets = sample(series, 100)
    assert len(buckets) == 100
    assert buckets[-1][1] == pytest.approx(7.2)
    assert all(peak >= final for peak, final in buckets)
    svg = render_chart(series, width=300, title="<script>")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<script>" not in svg and "&lt;b&gt;&amp;" in svg
    points = re.search(r'points="([^"]+)"', svg)
    assert points is not None and len(points[1].split()) <= 2 * 300


# -- query parsing --------------------------------------------------------------


def test_the_log_query_round_trips_through_the_url() -> None:
    query = parse_log_query(
        {
            "requester": ANALYST,
            "decision": "deny",
            "since": "2025-03-01T08:30",
            "until": "2025-03-02T00:00:00+01:00",
            "page": "3",
            "order": "oldest",
        }
    )
    assert query.where.since == datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    assert query.where.until == datetime(2025, 3, 1, 23, tzinfo=UTC)
    again = parse_log_query(dict(parse_qsl(query.params())))
    assert again == query
    assert "page=4" in query.params(page=4)
    assert query.where.record_filter().requester == ANALYST


# -- the local copy and the checks ---------------------------------------------


def fill(log: MemoryDecisionLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.append(
            {
                "time": T0 + timedelta(seconds=i),
                "operation": "disclosure",
                "requester": ANALYST
                if i % 3
                else "spiffe://unit/agency/hub/coordinator/b",
                "on_behalf_of": "",
                "purpose": "statistics",
                "legal_basis": "",
                "justification": "",
                "dataset": "incidents",
                "columns": (),
                "request_hash": sha256(str(i).encode()).hexdigest(),
                "policy_digest": sha256(b"v1" if i < 30 else b"v2").hexdigest(),
                "decision": "deny" if i % 5 == 0 else "allow",
                "matched_rules": (),
                "reason": "",
                "privacy_charged": 0.0 if i % 5 == 0 else 0.01,
                "privacy_remaining": None,
                "recipients": (),
                "query_id": f"q{i}",
                "method": "RunQuery",
            }
        )


@pytest.fixture
def memory_log() -> MemoryDecisionLog:
    log = MemoryDecisionLog(origin=ORIGIN, signing_key=KEY, checkpoint_every=16)
    fill(log, 50)
    return log


def test_the_copy_syncs_incrementally_and_answers_aggregates(
    memory_log: MemoryDecisionLog, tmp_path: Path
) -> None:
    link = ReaderNodeLink(memory_log)
    index = LogIndex(tmp_path / "copy")
    first = index.sync(link, checkpoints=True)
    assert (first.records, index.size) == (50, 50)
    fill(memory_log, 10, start=50)
    second = index.sync(link)
    assert (second.records, second.calls, index.size) == (10, 1, 60)
    denied = index.matching(LogFilter(decision="deny"))
    assert denied.tolist() == list(range(0, 60, 5))
    assert len(index.matching(LogFilter(requester=ANALYST, decision="allow"))) == 32
    runs = index.policy_runs()
    assert [(r.first_seq, r.last_seq) for r in runs] == [(0, 29), (30, 59)]
    assert (
        index.line(7)
        == memory_log.records(page_size=100).records[7].canonical_json.encode()
    )
    reopened = LogIndex(tmp_path / "copy")
    assert reopened.size == 60 and reopened.checkpoints()


def test_a_record_served_differently_later_is_a_conflict(
    memory_log: MemoryDecisionLog,
) -> None:
    link = ReaderNodeLink(memory_log)
    index = LogIndex()
    index.sync(link)

    class Lying(ReaderNodeLink):
        def records(self, where, *, page_size, page_token=""):  # type: ignore[no-untyped-def]
            page = super().records(where, page_size=page_size, page_token=page_token)
            bad = [
                r
                if r.seq != 3
                else type(r)(
                    **{
                        **{f: getattr(r, f) for f in r.__slots__},
                        "canonical_json": r.canonical_json.replace(
                            "statistics", "marketing"
                        ),
                    }
                )
                for r in page.records
            ]
            return RecordPage(bad, page.next_page_token, page.tree_size)

    index._tokens["records"] = ""
    index.sync(Lying(memory_log))
    assert index.conflicts and "seq 3" in index.conflicts[0]
    index.close()


def test_checkpoints_and_inclusion_are_checked_against_the_pinned_key(
    memory_log: MemoryDecisionLog,
) -> None:
    pinned = PinnedKey(memory_log.verifier_key)
    latest = memory_log.latest_checkpoint()
    assert latest is not None
    good = check_checkpoint(latest, pinned)
    assert good.ok and good.cosignatures == ()
    proof = memory_log.inclusion_proof(5, latest.tree_size)
    assert check_inclusion(proof, 5, good).ok
    forged = InclusionProof(
        type(proof.record)(
            **{
                **{f: getattr(proof.record, f) for f in proof.record.__slots__},
                "canonical_json": proof.record.canonical_json.replace(
                    "incidents", "arrests"
                ),
            }
        ),
        proof.tree_size,
        proof.hashes,
        proof.root_hash,
    )
    result = check_inclusion(forged, 5, good)
    assert not result.ok and "audit path" in result.problems[0]
    other = Ed25519PrivateKey.generate()
    wrong = check_checkpoint(
        latest, PinnedKey(encode_verifier_key(ORIGIN, other.public_key()))
    )
    assert not wrong.ok and not check_inclusion(proof, 5, wrong).ok
    witness = Ed25519PrivateKey.generate()
    cosigned = add_signature(latest.note, "witness.agency-b", witness)
    witness_key = encode_verifier_key("witness.agency-b", witness.public_key())
    stored = StoredCheckpoint(latest.tree_size, latest.root_hash, cosigned, latest.time)
    statuses = [
        c.status for c in check_checkpoint(stored, pinned, [witness_key]).cosignatures
    ]
    assert statuses == ["verified"]
    assert [c.status for c in check_checkpoint(stored, pinned).cosignatures] == [
        "unknown key"
    ]


# -- report rendering -----------------------------------------------------------


def test_a_report_renders_as_one_self_contained_document(
    memory_log: MemoryDecisionLog,
) -> None:
    wb = Workbench(
        ReaderNodeLink(memory_log),
        PinnedKey(memory_log.verifier_key),
        state_dir=None,
        policy_file=None,
        clock=lambda: T0 + timedelta(days=1),
        officer="spiffe://unit/agency/agency-a/officer/alice",
    )
    try:
        data = wb.report(T0, T0 + timedelta(seconds=40))
    finally:
        wb.close()
    assert data.records == 40
    assert data.verification is not None and data.verification.ok
    html = render_report(data)
    assert html.startswith("<!doctype html>")
    assert "<link" not in html and "<script" not in html and "src=" not in html
    assert "2025-03-01 00:00:00 to 2025-03-01 00:00:40" in html
    assert html.count('<tr><td class="num">') >= 40
    assert 'badge ok">verified' in html


# -- configuration --------------------------------------------------------------


def test_the_example_configuration_loads(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "officer.toml"
    settings = load_settings(example)
    assert settings.listen == "127.0.0.1:8470" and settings.web_tls is None
    assert settings.tls.cert == example.parent / "officer" / "alice.crt"
    assert settings.state_dir == example.parent / "officer-state"
    settings.check_exposure()
    exposed = load_settings(example, Overrides(listen="0.0.0.0:8470"))
    with pytest.raises(SettingsError, match="not a loopback") as caught:
        exposed.check_exposure()
    assert caught.value.tls


def test_a_node_toml_gives_address_ca_and_policy(tmp_path: Path) -> None:
    node_toml = tmp_path / "node.toml"
    node_toml.write_text(
        '[node]\nagency = "agency-a"\nlisten = "0.0.0.0:50051"\n'
        '[tls]\nca = "pki/ca.crt"\ncert = "pki/node.crt"\nkey = "pki/node.key"\n'
        '[policy]\nfile = "policy.toml"\n[[datasets]]\nid = "x"\n',
        encoding="utf-8",
    )
    with pytest.raises(SettingsError, match="officer's certificate"):
        load_settings(node_toml)
    settings = load_settings(
        node_toml, Overrides(cert=tmp_path / "a.crt", key=tmp_path / "a.key")
    )
    assert settings.address == "127.0.0.1:50051"
    assert settings.tls.ca == tmp_path / "pki" / "ca.crt"
    assert settings.policy_file == tmp_path / "policy.toml"


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:1", True),
        ("localhost:1", True),
        ("[::1]:1", True),
        ("0.0.0.0:1", False),
        ("10.0.0.5:1", False),
    ],
)
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_the_public_surface() -> None:
    for name in officer.__all__:
        assert getattr(officer, name) is not None
    with pytest.raises(AttributeError):
        officer.nothing  # noqa: B018


def test_the_store_is_not_needed_for_memory(memory_log: MemoryDecisionLog) -> None:
    assert isinstance(memory_log._store, MemoryLogStore)
