"""What the aggregator receives reveals nothing but the sum.

Every test captures the whole transcript of an in-memory session (a fixed seed
makes each run reproducible, so the statistical checks cannot flake).
"""

from __future__ import annotations

import numpy as np
import pytest

import secagg
from secagg import MaskedInput

# Chi-square critical value, 255 degrees of freedom, p = 0.001.
CHI2_255_P001 = 330.52


def _byte_chi_square(data: bytes) -> float:
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
    expected = len(data) / 256
    return float(((counts - expected) ** 2 / expected).sum())


def _run(
    raw: dict[int, np.ndarray],
    threshold: int,
    seed: int,
    *,
    drop_before_masking: frozenset[int] = frozenset(),
    drop_after_masking: frozenset[int] = frozenset(),
) -> tuple[np.ndarray, secagg.RunRecord]:
    n = len(raw)
    encoded = {
        u: secagg.encode_ints(x, value_bits=40, participants=n) for u, x in raw.items()
    }
    record = secagg.RunRecord()
    total = secagg.run_in_memory(
        encoded,
        threshold,
        drop_after_masking,
        drop_before_masking,
        rng_seed=seed,
        record=record,
    )
    return secagg.decode_ints(total, value_bits=40, participants=n), record


def _masked_inputs(record: secagg.RunRecord) -> dict[int, MaskedInput]:
    return {
        e.participant: MaskedInput.from_bytes(e.payload)
        for e in record.received_by_aggregator()
        if e.round == 2
    }


@pytest.mark.parametrize("n", [2, 3, 5])
def test_each_masked_vector_alone_looks_uniform_and_differs_from_its_input(
    n: int,
) -> None:
    # Inputs far from uniform: small non-negative counts (mostly zero bytes).
    raw = {u: np.arange(4096) % (7 + u) for u in range(1, n + 1)}
    _, record = _run(raw, secagg.majority_threshold(n), seed=11)
    masked = _masked_inputs(record)
    assert set(masked) == set(raw)
    for u, message in masked.items():
        x = secagg.encode_ints(raw[u], value_bits=40, participants=n)
        assert _byte_chi_square(x.tobytes()) > 100 * CHI2_255_P001  # the test has power
        assert _byte_chi_square(message.vector.tobytes()) < CHI2_255_P001
        assert np.count_nonzero(message.vector == x) == 0
        # Each word's top bit: uniform words set it half the time (4096 trials).
        top = int(np.count_nonzero(message.vector >> np.uint64(63)))
        assert abs(top - 2048) < 5 * 32


def test_the_transcript_never_contains_raw_input_bytes() -> None:
    rng = np.random.default_rng(12)
    raw = {u: rng.integers(-(2**39), 2**39, size=1024) for u in range(1, 6)}
    _, record = _run(raw, 3, seed=12, drop_before_masking=frozenset({5}))
    payloads = [e.payload for e in record.envelopes]  # received and sent: all of it
    assert len(record.received_by_aggregator()) == 5 + 5 + 4 + 4
    for x in raw.values():
        data = secagg.encode_ints(x, value_bits=40, participants=5).tobytes()
        for payload in payloads:
            assert data not in payload
            # Not even two consecutive words of any input appear anywhere.
            for start in range(0, len(data) - 16, 16):
                assert data[start : start + 16] not in payload


def test_only_the_sum_is_learned_two_input_sets_with_one_sum() -> None:
    rng = np.random.default_rng(13)
    first = {u: rng.integers(-(10**9), 10**9, size=256) for u in range(1, 5)}
    shift = rng.integers(-(10**9), 10**9, size=256)
    second = dict(first)
    second[1], second[2] = first[1] + shift, first[2] - shift  # same total
    total_1, record_1 = _run(first, 3, seed=13, drop_after_masking=frozenset({3}))
    total_2, record_2 = _run(second, 3, seed=13, drop_after_masking=frozenset({3}))
    assert np.array_equal(total_1, total_2)
    assert total_1.tolist() == np.sum(list(first.values()), axis=0).tolist()
    # With the same randomness, every message except the masked vectors of the
    # two changed participants is byte for byte the same: keys, sealed shares and
    # unmasking shares do not depend on the inputs at all.
    assert len(record_1.envelopes) == len(record_2.envelopes)
    differing = {
        (a.round, a.direction, a.participant)
        for a, b in zip(record_1.envelopes, record_2.envelopes, strict=True)
        if a.payload != b.payload
    }
    assert differing == {(2, "up", 1), (2, "up", 2)}


def test_unmasking_reveals_no_self_mask_seed_of_a_dropout() -> None:
    raw = {u: np.arange(64) * u for u in range(1, 6)}
    _, record = _run(raw, 3, seed=14, drop_before_masking=frozenset({2}))
    for e in record.received_by_aggregator():
        if e.round == 3:
            unmasking = secagg.Unmasking.from_bytes(e.payload)
            assert set(unmasking.self_mask_shares) == {1, 3, 4, 5}
            assert set(unmasking.mask_key_shares) == {2}
