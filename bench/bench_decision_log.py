"""Durable appends per second and added latency of the decision log (group commit).

Target (REFERENCES.md e): >= 1,000 durable appends/s per node with <= 10 ms added
p99 latency. For 1, 8 and 32 concurrent threads (decisions answered at once),
each thread appends decisions for ``--seconds``; every ``append`` returns only
once its record is committed (SQLite WAL, synchronous=FULL, i.e. fsync). Two
modes run in the same process on the same disk:

* ``group commit``: the log as configured for a node (batch up to 256 records
  per transaction, checkpoint every 256 records or 10 s);
* ``one commit per record``: the same log with ``batch_size=1`` (the baseline).

Closed-loop threads append back to back, so each waits for the commit in flight
and then its own (about two commits). A node's decisions arrive independently,
so the ``open loop`` rows also offer Poisson arrivals at ``--rates`` per second
to a pool of 64 threads and time each append from its arrival.

Then the largest log is exported and verified offline (records/s).

Run: ``python bench/bench_decision_log.py [--seconds S] [--threads 1,8,32]
[--rates 500,1000] [--postgres URL]``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from policies.auditlog import (
    DecisionLog,
    SqlLogStore,
    StoredCheckpoint,
    StoredRecord,
    export_log,
    log_origin,
    open_log_reader,
    verify_export,
)

ORIGIN = log_origin("agency-a", "bench")
KEY = Ed25519PrivateKey.from_private_bytes(sha256(b"bench decision log key").digest())
POLICY = sha256(b"policy v7").hexdigest()


class CountingStore(SqlLogStore):
    """Counts transactions, to report records per commit."""

    commits = 0

    def append_batch(
        self,
        records: Sequence[StoredRecord],
        checkpoint: StoredCheckpoint | None,
        *,
        expected_size: int,
    ) -> None:
        super().append_batch(records, checkpoint, expected_size=expected_size)
        self.commits += 1


def fields(worker: int, i: int) -> dict[str, Any]:
    denied = i % 9 == 4
    return {
        "operation": "disclosure",
        "requester": "spiffe://bench/agency/agency-b/coordinator/analytics",
        "on_behalf_of": f"analyst-{i % 17}",
        "purpose": "statistics",
        "legal_basis": "LED Art. 8(1)",
        "justification": "quarterly incident trends for the regional report",
        "dataset": "incidents",
        "columns": ("region", "month", "damage_eur"),
        "request_hash": sha256(b"%d/%d" % (worker, i)).hexdigest(),
        "policy_digest": POLICY,
        "decision": "deny" if denied else "allow",
        "matched_rules": () if denied else ("p-stats",),
        "reason": "default-deny" if denied else "p-stats",
        "privacy_charged": 0.0 if denied else 0.005,
        "privacy_remaining": 0.5,
        "recipients": ("agency-b",),
        "query_id": f"job-{worker}-{i}",
        "method": "/accord.v1.NodeService/RunQuery",
    }


def run(log: DecisionLog, threads: int, seconds: float) -> list[float]:
    """Append from ``threads`` threads for ``seconds``; return each latency (s)."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def work(worker: int) -> None:
        mine = latencies[worker]
        start.wait()
        i = 0
        while not stop.is_set():
            item = fields(worker, i)
            t0 = time.perf_counter()
            log.append(item)
            mine.append(time.perf_counter() - t0)
            i += 1

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    time.sleep(seconds)
    stop.set()
    for thread in pool:
        thread.join()
    return [x for chunk in latencies for x in chunk]


def run_open_loop(log: DecisionLog, rate: float, seconds: float) -> list[float]:
    """Offer Poisson arrivals at ``rate``/s; return each latency from arrival (s)."""
    rng = random.Random(1)

    def decide(arrival: float, i: int) -> float:
        log.append(fields(0, i))
        return time.perf_counter() - arrival

    with ThreadPoolExecutor(max_workers=64) as pool:
        started = time.perf_counter()
        arrival = started
        pending = []
        i = 0
        while arrival - started < seconds:
            ahead = arrival - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            pending.append(pool.submit(decide, arrival, i))
            arrival += rng.expovariate(rate)
            i += 1
        return [f.result() for f in pending]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", default="1,8,32")
    parser.add_argument("--rates", default="500,1000")
    parser.add_argument("--postgres", help="also run against this PostgreSQL URL")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    rates = [float(r) for r in args.rates.split(",") if r]

    with tempfile.TemporaryDirectory(prefix="bench-decision-log-") as tmp:

        def sqlite_url(name: str) -> str:
            return f"sqlite:///{Path(tmp) / name}.db"

        def postgres_url(name: str) -> str:
            return _pg_schema(args.postgres, name)

        targets: list[tuple[str, Callable[[str], str]]] = [("sqlite", sqlite_url)]
        if args.postgres:
            targets.append(("postgres", postgres_url))
        print(
            f"{os.cpu_count()} CPUs; {args.seconds:g} s per row; every append waits "
            "for its commit (SQLite: WAL + synchronous=FULL)"
        )
        header = (
            f"{'store':<9} {'mode':<22} {'load':>10} {'appends':>8} "
            f"{'appends/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'rec/txn':>8}"
        )
        print(header)
        print("-" * len(header))
        largest: tuple[int, str] = (0, "")
        for store_name, url_for in targets:
            runs = [
                (mode, batch, load)
                for mode, batch in (("group commit", 256), ("one commit per record", 1))
                for load in [*thread_counts, *(-r for r in rates)]
            ]
            for mode, batch, load in runs:
                kind = "t" if load > 0 else "r"
                url = url_for(f"{batch}-{kind}{abs(int(load))}")
                store = CountingStore(url)
                log = DecisionLog(
                    store, origin=ORIGIN, signing_key=KEY, batch_size=batch
                )
                commits0 = store.commits
                started = time.perf_counter()
                if load > 0:
                    latencies = run(log, int(load), args.seconds)
                    label = f"{int(load)} thr"
                else:
                    latencies = run_open_loop(log, -load, args.seconds)
                    label = f"{-load:,.0f}/s"
                elapsed = time.perf_counter() - started
                commits = store.commits - commits0
                log.close()
                n = len(latencies)
                print(
                    f"{store_name:<9} {mode:<22} {label:>10} {n:>8,} "
                    f"{n / elapsed:>10,.0f} "
                    f"{statistics.median(latencies) * 1e3:>7.2f} "
                    f"{percentile(latencies, 0.99) * 1e3:>7.2f} "
                    f"{n / max(commits, 1):>8.1f}"
                )
                if store_name == "sqlite" and n > largest[0]:
                    largest = (n, url)

        n, url = largest
        out = Path(tmp) / "export.jsonl"
        with open_log_reader(url) as reader:
            summary = export_log(reader, out, now=datetime.now(UTC))
            vkey = reader.verifier_key
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            result = verify_export(out, vkey)
            best = min(best, time.perf_counter() - t0)
            assert result.ok, result.problems
        print(
            f"offline verification of the largest export: {summary.records:,} records, "
            f"{summary.checkpoints:,} checkpoints in {best:.3f} s = "
            f"{summary.records / best:,.0f} records/s (best of 3)"
        )


def _pg_schema(base: str, name: str) -> str:
    import sqlalchemy as sa

    schema = f"bench_{name.replace('-', '_')}_{os.getpid()}"
    engine = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


if __name__ == "__main__":
    main()
