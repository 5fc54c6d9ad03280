"""Secure aggregation cost in one process, against a plain sum of the same vectors.

Usage: ``python bench/bench_secagg.py [--reps N]``. Each row sums ``n`` random
int64 vectors of length ``m`` (|x| < 2^32) twice: plainly (numpy adds the
vectors) and through the full protocol (`secagg.run_in_memory`: four rounds,
every message serialised and parsed). Reported, medians over the repetitions:

- plain ms: summing the vectors;
- secagg ms: the whole session, every participant run one after the other;
- client ms: the slowest participant's own work (what one node spends when
  nodes run in parallel); server ms: the aggregator's work;
- round ms: client + server, the in-process critical path of one round;
- ratio: secagg ms / plain ms;
- upload: bytes each participant sends in secagg vs the plain 8-byte words
  (a float32 model would upload half the plain figure).

Transport is not included: compare "round ms" with the measured gRPC round
(issue 5's goal: secure aggregation at most 1.5x the round without it).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Set
from dataclasses import dataclass

import numpy as np

import secagg

VALUE_BITS = 32


@dataclass(frozen=True)
class Case:
    n: int
    m: int
    drop_after: Set[int] = frozenset()
    drop_before: Set[int] = frozenset()

    @property
    def label(self) -> str:
        if self.drop_after:
            return f"{self.n} nodes, m={self.m:,}, 1 drop after masking"
        if self.drop_before:
            return f"{self.n} nodes, m={self.m:,}, 1 drop before masking"
        return f"{self.n} nodes, m={self.m:,}"


CASES = [
    Case(3, 10),
    Case(5, 1_000),
    Case(10, 100_000),
    Case(10, 1_000_000),
    Case(10, 100_000, drop_after=frozenset({4})),
    Case(10, 100_000, drop_before=frozenset({4})),
]


def _median_ms(run: Callable[[], object], reps: int) -> float:
    run()  # warm up
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def measure(case: Case, reps: int) -> dict[str, float | str]:
    rng = np.random.default_rng(case.n * 1_000_003 + case.m)
    bound = 1 << VALUE_BITS
    raw = {
        u: rng.integers(-bound + 1, bound, size=case.m) for u in range(1, case.n + 1)
    }
    inputs = {
        u: secagg.encode_ints(x, value_bits=VALUE_BITS, participants=case.n)
        for u, x in raw.items()
    }
    threshold = secagg.majority_threshold(case.n)

    def plain() -> np.ndarray:
        total = np.zeros(case.m, dtype=np.int64)
        for x in raw.values():
            total += x
        return total

    plain_ms = _median_ms(plain, reps)
    expected = plain()
    for u in case.drop_before:
        expected -= raw[u]

    secure, client, server, upload = [], [], [], []
    for _ in range(reps + 1):
        record = secagg.RunRecord()
        start = time.perf_counter()
        total = secagg.run_in_memory(
            inputs,
            threshold,
            drop_after_masking=case.drop_after,
            drop_before_masking=case.drop_before,
            record=record,
        )
        secure.append(time.perf_counter() - start)
        decoded = secagg.decode_ints(total, value_bits=VALUE_BITS, participants=case.n)
        if not np.array_equal(decoded, expected):
            raise SystemExit(f"wrong sum for {case.label}")
        client.append(max(record.participant_seconds.values()))
        server.append(record.aggregator_seconds)
        upload.append(max(record.uploaded_bytes(u) for u in inputs))
    # The first run warms caches (and the Lagrange weights): drop it.
    secure_ms = statistics.median(secure[1:]) * 1e3
    client_ms = statistics.median(client[1:]) * 1e3
    server_ms = statistics.median(server[1:]) * 1e3
    return {
        "case": case.label,
        "plain_ms": plain_ms,
        "secagg_ms": secure_ms,
        "client_ms": client_ms,
        "server_ms": server_ms,
        "round_ms": client_ms + server_ms,
        "ratio": secure_ms / plain_ms,
        "upload_bytes": float(max(upload)),
        "plain_bytes": float(8 * case.m),
    }


def _bytes(count: float) -> str:
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count:.0f} B"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions per row")
    args = parser.parse_args()
    header = (
        f"{'case':<44} {'plain ms':>9} {'secagg ms':>10} {'client ms':>10} "
        f"{'server ms':>10} {'round ms':>9} {'ratio':>8} {'upload':>10} "
        f"{'plain up':>10} {'x':>6}"
    )
    print(header)
    print("-" * len(header))
    for case in CASES:
        row = measure(case, args.reps if case.m < 1_000_000 else max(1, args.reps // 2))
        print(
            f"{row['case']:<44} {row['plain_ms']:>9.3f} {row['secagg_ms']:>10.1f} "
            f"{row['client_ms']:>10.1f} {row['server_ms']:>10.1f} "
            f"{row['round_ms']:>9.1f} {row['ratio']:>8.0f} "
            f"{_bytes(float(row['upload_bytes'])):>10} "
            f"{_bytes(float(row['plain_bytes'])):>10} "
            f"{float(row['upload_bytes']) / float(row['plain_bytes']):>6.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
