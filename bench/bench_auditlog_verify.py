"""Offline verification rate of the decision log (target: >= 100,000 records/s).

Builds a log of 200,000 decision records with a signed checkpoint every 256
records, then times ``verify_log`` on the three input forms it accepts: export
lines (the records' canonical JSON, as ``accord audit verify`` reads them), parsed
JSON dicts, and ``DecisionRecord`` objects.

Run: ``python bench/bench_auditlog_verify.py [--records N] [--batch N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from hashlib import sha256
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from policies.auditlog import (
    GENESIS_PREV_HASH,
    Checkpoint,
    DecisionRecord,
    MerkleTree,
    leaf_hash,
    sign_checkpoint,
    verify_log,
)

ORIGIN = "audit.agency-a.example/policy-decisions"
T = TypeVar("T")


def build(
    size: int, batch: int, key: Ed25519PrivateKey
) -> tuple[list[DecisionRecord], list[str]]:
    """Return ``size`` chained records and a checkpoint note every ``batch``."""
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    policy = sha256(b"urn:accord:agency-a:policy:v7").hexdigest()
    tree = MerkleTree()
    records: list[DecisionRecord] = []
    notes: list[str] = []
    prev = GENESIS_PREV_HASH
    for seq in range(size):
        denied = seq % 9 == 4
        record = DecisionRecord(
            seq=seq,
            time=t0 + timedelta(microseconds=4_321 * seq),
            operation="consultation",
            requester="spiffe://accord.example/agency/agency-b/service/analytics",
            on_behalf_of=f"officer-{seq % 17}",
            purpose="statistics",
            legal_basis="LED-2016/680 Art.8(1)",
            justification="quarterly incident trends for the regional report",
            dataset="incidents",
            columns=("region", "month", "damage_eur"),
            request_hash=sha256(seq.to_bytes(8, "big")).hexdigest(),
            policy_digest=policy,
            decision="deny" if denied else "allow",
            matched_rules=() if denied else ("p-stats",),
            reason="default-deny" if denied else "p-stats",
            privacy_charged=0.0 if denied else 0.005,
            privacy_remaining=0.1 - 0.005 * (seq % 20),
            recipients=("agency-b",),
            query_id=f"job-{seq // 4:07d}",
            method="/accord.v1.NodeService/Aggregate",
            prev_hash=prev,
        )
        canonical = record.canonical_bytes()
        prev = sha256(bytes.fromhex(prev) + canonical).hexdigest()
        tree.append(leaf_hash(canonical))
        records.append(record)
        if tree.size % batch == 0 or tree.size == size:
            checkpoint = Checkpoint(ORIGIN, tree.size, tree.root())
            notes.append(sign_checkpoint(checkpoint, ORIGIN, key))
    assert records[-1].chain_hash() == prev
    return records, notes


def best_time(run: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Return the best wall time of ``repeat`` calls, and the last result."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    args.repeat = max(1, args.repeat)

    key = Ed25519PrivateKey.from_private_bytes(sha256(b"bench log key").digest())
    public = key.public_key()
    start = time.perf_counter()
    records, notes = build(args.records, args.batch, key)
    built = time.perf_counter() - start
    lines = [r.canonical_bytes() + b"\n" for r in records]
    dicts = [json.loads(line) for line in lines]
    record_bytes = sum(len(line) - 1 for line in lines) / len(lines)

    print(
        f"{len(records):,} records ({record_bytes:.0f} bytes each), "
        f"{len(notes):,} checkpoints, built in {built:.1f} s; "
        f"best of {args.repeat}, {os.cpu_count()} CPUs"
    )
    header = (
        f"{'input':<22} {'records':>9} {'checkpoints':>11} "
        f"{'seconds':>8} {'records/s':>10}"
    )
    print(header)
    print("-" * len(header))
    forms: list[tuple[str, list[Any]]] = [
        ("export lines (bytes)", lines),
        ("parsed JSON dicts", dicts),
        ("DecisionRecord", records),
    ]
    for label, items in forms:
        verify = partial(verify_log, items, notes, ORIGIN, public)
        seconds, report = best_time(verify, args.repeat)
        assert report.ok and report.records == len(records), report.problems
        print(
            f"{label:<22} {len(items):>9,} {report.checkpoints:>11,} "
            f"{seconds:>8.3f} {len(items) / seconds:>10,.0f}"
        )

    # Calibration against REFERENCES.md (e), measured there on a 2-core machine:
    # SHA-256 of a 494-byte record 2.2 M/s.
    block = bytes(494)
    n = 200_000
    seconds, _ = best_time(lambda: [sha256(block).digest() for _ in range(n)], 3)
    print(
        f"calibration: SHA-256 of 494 bytes {n / seconds:,.0f}/s here "
        "(2,200,000/s on the REFERENCES.md machine)"
    )


if __name__ == "__main__":
    main()
