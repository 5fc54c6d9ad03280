"""Page load times of the officer's workbench over a node log of 100,000 records.

Builds agency-a's node with a decision log of ``--records`` synthetic decisions
(20 requesters over 60 days, a signed checkpoint every 256 records), starts the node
in this process (mutual TLS on 127.0.0.1) and the workbench under uvicorn, then
times HTTP GETs of the log page -- the first page, the newest, a deep page (page
1,000 of 50 records, oldest first) and a filtered page -- against the baseline: the
raw ``AuditService.ListRecords`` call that fetches the same records, made with the
same officer certificate in the same run. Each page view also syncs the
workbench's local copy (one more ``ListRecords`` call). Then the other pages, once
warm, and the one-off costs (first copy of the log, whole-log verification).

Run: ``python bench/bench_officer.py [--records N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import random
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from urllib.parse import quote

import uvicorn

import node
import pki
from demo import provision
from officer._app import create_app
from officer._index import from_micros, seq_pages
from officer._integrity import PinnedKey
from officer._link import GrpcNodeLink
from officer._query import parse_log_query
from officer._tls import PeerCertH11Protocol
from officer._workbench import Workbench
from policies.auditlog import (
    GENESIS_PREV_HASH,
    Checkpoint,
    DecisionRecord,
    LogInfo,
    MerkleTree,
    SqlLogStore,
    StoredCheckpoint,
    StoredRecord,
    encode_verifier_key,
    leaf_hash,
    load_or_create_log_key,
    log_origin,
    sign_checkpoint,
)

FED = "bench"
REQUESTERS = [
    f"spiffe://{FED}/agency/hub{i % 4}/coordinator/analyst{i}" for i in range(20)
]


def fill_log(url: str, key_path: Path, policy_digest: str, count: int) -> None:
    """Write ``count`` chained, checkpointed records straight into the node's store."""
    key = load_or_create_log_key(key_path)
    origin = log_origin("agency-a", FED)
    store = SqlLogStore(url)
    store.write_info(
        LogInfo(
            origin, encode_verifier_key(origin, key.public_key()), datetime.now(UTC)
        )
    )
    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(days=60)
    step = timedelta(days=59) / count
    tree = MerkleTree()
    prev = GENESIS_PREV_HASH
    batch: list[StoredRecord] = []
    for seq in range(count):
        requester = REQUESTERS[rng.randrange(len(REQUESTERS))]
        consult = rng.random() < 0.3
        roll = rng.random()
        decision = (
            "allow" if consult or roll < 0.85 else ("deny" if roll < 0.97 else "error")
        )
        purpose = (
            ""
            if consult
            else rng.choice(["statistics", "policy-evaluation", "marketing"])
        )
        record = DecisionRecord(
            seq=seq,
            time=start + step * seq,
            operation="consultation" if consult else "disclosure",
            requester=requester,
            on_behalf_of="",
            purpose=purpose,
            legal_basis="LED-2016/680 Art.8(1)" if not consult else "",
            justification="",
            dataset="" if consult else "incidents",
            columns=() if consult else ("region",),
            request_hash=sha256(seq.to_bytes(8, "big")).hexdigest(),
            policy_digest=policy_digest,
            decision=decision,
            matched_rules=("a-statistics",)
            if decision == "allow" and not consult
            else (),
            reason="permitted by rule a-statistics"
            if decision == "allow"
            else "denied",
            privacy_charged=0.0 if consult or decision != "allow" else 0.001,
            privacy_remaining=None,
            recipients=(requester,) if decision == "allow" else (),
            query_id=f"q{seq}",
            method="GetNodeInfo" if consult else "RunQuery",
            prev_hash=prev,
        )
        stored = StoredRecord.of(record)
        prev = stored.chain_hash.hex()
        tree.append(leaf_hash(record.canonical_bytes()))
        batch.append(stored)
        if tree.size % 256 == 0 or tree.size == count:
            note = sign_checkpoint(
                Checkpoint(origin, tree.size, tree.root()), origin, key
            )
            checkpoint = StoredCheckpoint(tree.size, tree.root(), note, record.time)
            store.append_batch(batch, checkpoint, expected_size=tree.size - len(batch))
            batch = []
    store.close()


def timed(run: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        out.append((time.perf_counter() - started) * 1000)
    return out


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    root = Path(tempfile.mkdtemp(prefix="bench-officer-"))
    fed = provision(
        root, federation=FED, agencies=("agency-a",), rows={"agency-a": 200}
    )
    site = fed.sites[0]
    config = node.load_node_config(site.node_config)
    digest = sha256(site.policy.read_bytes()).hexdigest()
    started = time.perf_counter()
    fill_log(config.node.state_url, config.audit.key, digest, args.records)
    filled = time.perf_counter() - started
    kit = pki.issue(
        fed.ca_dir, pki.Identity(FED, "agency-a", "officer", "alice"), root / "officer"
    )
    server = node.create_server(config, listen="127.0.0.1:0")
    server.start()
    material = kit.tls_files().read()
    link = GrpcNodeLink(server.address, material)
    pinned = PinnedKey(link.log_key()[1])
    wb = Workbench(
        link,
        pinned,
        state_dir=root / "officer-state",
        policy_file=site.policy,
        clock=lambda: datetime.now(UTC),
        officer=f"spiffe://{FED}/agency/agency-a/officer/alice",
    )
    raw = GrpcNodeLink(server.address, material)  # the baseline's own channel
    started = time.perf_counter()
    stats = wb.index.sync(link, checkpoints=True)
    first_copy = time.perf_counter() - started
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(
        uvicorn.Config(
            create_app(wb),
            http=PeerCertH11Protocol,
            ws="none",
            lifespan="on",
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.01)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(path: str) -> None:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (path, response.status, body[:300])

    def raw_page(params: dict[str, str]) -> Callable[[], object]:
        """The ListRecords call that fetches the records the page shows."""
        query = parse_log_query(params)
        seqs = wb.index.matching(query.where)
        chunk = seq_pages(seqs, query.page, query.page_size, query.order == "newest")
        times = wb.index.times(chunk)
        where = query.where.record_filter(
            since=from_micros(int(times.min())), until=from_micros(int(times.max()) + 1)
        )
        size = min(1000, 2 * len(chunk) + 16)
        return lambda: raw.records(where, page_size=size)

    busy = REQUESTERS[3]
    scenarios = [
        ("first page (oldest first)", "/log?order=oldest", {"order": "oldest"}),
        ("newest page", "/log", {}),
        (
            "deep page 1,000 (oldest first)",
            "/log?order=oldest&page=1000",
            {"order": "oldest", "page": "1000"},
        ),
        (
            "filtered: requester + deny, page 3",
            f"/log?requester={quote(busy)}&decision=deny&page=3",
            {"requester": busy, "decision": "deny", "page": "3"},
        ),
        (
            "filtered: 1 day + purpose",
            "/log?purpose=marketing&since="
            + (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S")
            + "&until="
            + (datetime.now(UTC) - timedelta(days=29)).strftime("%Y-%m-%dT%H:%M:%S"),
            {
                "purpose": "marketing",
                "since": (datetime.now(UTC) - timedelta(days=30)).strftime(
                    "%Y-%m-%dT%H:%M:%S"
                ),
                "until": (datetime.now(UTC) - timedelta(days=29)).strftime(
                    "%Y-%m-%dT%H:%M:%S"
                ),
            },
        ),
    ]
    for _, path, _ in scenarios:  # warm both paths
        get(path)
    print(
        f"{args.records:,} records written in {filled:.1f} s; first copy into the "
        f"workbench: {stats.records:,} records, {stats.checkpoints:,} checkpoints, "
        f"{stats.calls} ListRecords/ListCheckpoints calls, {first_copy:.2f} s; "
        f"{os.cpu_count()} CPUs; {args.repeat} runs each, 50 records per page"
    )
    header = (
        f"{'log page (50 records)':<36} {'workbench p50':>13} {'p95':>8} "
        f"{'raw ListRecords p50':>19} {'p95':>8} {'overhead p50':>12}"
    )
    print(header)
    print("-" * len(header))
    for label, path, params in scenarios:
        page_ms = timed(lambda path=path: get(path), args.repeat)  # type: ignore[misc]
        raw_ms = timed(raw_page(params), args.repeat)
        print(
            f"{label:<36} {statistics.median(page_ms):>10.1f} ms {p(page_ms, 0.95):>5.1f} ms "
            f"{statistics.median(raw_ms):>16.1f} ms {p(raw_ms, 0.95):>5.1f} ms "
            f"{statistics.median(page_ms) - statistics.median(raw_ms):>9.1f} ms"
        )
    # Without the local copy, page 1,000 is reached only by following tokens.
    started = time.perf_counter()
    token, calls = "", 0
    while calls < 50:
        page = raw.records(None, page_size=1000, page_token=token)
        calls += 1
        token = page.next_page_token
    walk = (time.perf_counter() - started) * 1000
    print(
        f"{'baseline: token walk to record 50,000':<36} {'':>13} {'':>8} "
        f"{walk:>16.1f} ms {'':>8}  ({calls} calls of 1,000)"
    )
    print()
    header = f"{'other pages (warm)':<36} {'p50':>10} {'p95':>8}  node calls"
    print(header)
    print("-" * len(header))
    others = [
        ("record with inclusion proof", "/log/54321", "2"),
        ("budgets (20 requesters)", "/budgets", "1 + 20 GetBudget"),
        ("requester budgets + charts", f"/budgets/requester?uri={quote(busy)}", "2"),
        ("policy + history", "/policy", "2"),
        ("alerts", "/alerts", "2 + 20 GetBudget"),
        ("integrity (cached verification)", "/integrity", "5"),
    ]
    for label, path, calls_text in others:
        get(path)
        ms = timed(lambda path=path: get(path), max(3, args.repeat // 4))  # type: ignore[misc]
        print(
            f"{label:<36} {statistics.median(ms):>7.1f} ms {p(ms, 0.95):>5.1f} ms  {calls_text}"
        )

    def proof() -> None:
        latest = raw.latest_checkpoint()
        assert latest is not None
        raw.inclusion_proof(54321, latest.tree_size)

    ms = timed(proof, max(3, args.repeat // 4))
    print(
        f"{'  raw GetLatestCheckpoint + proof':<36} {statistics.median(ms):>7.1f} ms "
        f"{p(ms, 0.95):>5.1f} ms  2 (baseline of the record page)"
    )
    wb.verifier._cache = None
    started = time.perf_counter()
    result = wb.verifier.verify(wb.index)
    print(
        f"\nwhole-log verification (verify_log over the local copy): "
        f"{result.tree_size:,} records, {result.checkpoints} checkpoints, ok={result.ok}, "
        f"{time.perf_counter() - started:.2f} s"
    )
    uv.should_exit = True
    thread.join(10)
    sock.close()
    raw.close()
    wb.close()
    server.stop(0)


if __name__ == "__main__":
    main()
