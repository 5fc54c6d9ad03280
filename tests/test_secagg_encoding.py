"""Integer and fixed-point encoding: the bit budget, two's complement, round trips."""

from __future__ import annotations

import numpy as np
import pytest

import secagg


@pytest.mark.parametrize(
    ("value_bits", "participants", "fits"),
    [(63, 1, True), (62, 2, True), (63, 2, False), (59, 10, True), (60, 10, False),
     (59, 16, True), (59, 17, False), (0, 1024, True)],
)  # fmt: skip
def test_bit_budget_is_value_bits_plus_log2_n_plus_sign(
    value_bits: int, participants: int, fits: bool
) -> None:
    if fits:
        secagg.check_bit_budget(value_bits, participants)
    else:
        with pytest.raises(secagg.Overflow, match="more than the 64-bit modulus"):
            secagg.check_bit_budget(value_bits, participants)


def test_encode_refuses_bounds_that_could_overflow_before_looking_at_values() -> None:
    with pytest.raises(secagg.Overflow):
        secagg.encode_ints(np.zeros(3, dtype=np.int64), value_bits=60, participants=10)


def test_encode_refuses_a_value_outside_its_bound_without_naming_it() -> None:
    secret = 1 << 20
    with pytest.raises(secagg.Overflow) as caught:
        secagg.encode_ints(np.array([0, -secret]), value_bits=20, participants=3)
    assert str(secret) not in str(caught.value)
    ok = secagg.encode_ints(
        np.array([secret - 1, 1 - secret]), value_bits=20, participants=3
    )
    assert ok.dtype == np.uint64


def test_encode_takes_integers_only() -> None:
    with pytest.raises(TypeError, match="encode_floats"):
        secagg.encode_ints(np.array([1.5]), value_bits=4, participants=2)
    with pytest.raises(ValueError, match="one dimension"):
        secagg.encode_ints(
            np.zeros((2, 2), dtype=np.int64), value_bits=4, participants=2
        )


def test_negative_values_are_twos_complement_words() -> None:
    words = secagg.encode_ints(
        np.array([-1, 0, 1], dtype=np.int8), value_bits=4, participants=2
    )
    assert words.tolist() == [2**64 - 1, 0, 1]


def test_sum_mod_2_64_decodes_to_the_exact_signed_sum_near_the_budget() -> None:
    rng = np.random.default_rng(7)
    n, bits = 10, 59
    top = (1 << bits) - 1
    values = rng.integers(-top, top, size=(n, 50), endpoint=True)
    values[0, :4] = [top, -top, top, -top]
    values[:, 4] = top  # the sum's extreme: n * (2^59 - 1)
    values[:, 5] = -top
    total = np.zeros(50, dtype=np.uint64)
    for row in values:
        total += secagg.encode_ints(row, value_bits=bits, participants=n)
    decoded = secagg.decode_ints(total, value_bits=bits, participants=n)
    expected = [sum(int(v) for v in column) for column in values.T]
    assert decoded.tolist() == expected


def test_decode_refuses_a_sum_beyond_the_declared_bounds() -> None:
    total = secagg.encode_ints(np.array([1000]), value_bits=10, participants=1)
    with pytest.raises(secagg.Overflow, match="broke its bound"):
        secagg.decode_ints(total, value_bits=5, participants=3)
    with pytest.raises(TypeError):
        secagg.decode_ints(np.array([1], dtype=np.int64), value_bits=5, participants=3)


def test_fixed_point_round_trips_within_half_its_resolution() -> None:
    rng = np.random.default_rng(3)
    values = rng.uniform(-4, 4, size=1000)
    encoded, decode = secagg.encode_floats(
        values, scale=2**20, clip=4.0, participants=1
    )
    assert encoded.dtype == np.uint64
    assert decode.resolution == 2**-20
    assert np.max(np.abs(decode(encoded) - values)) <= decode.resolution / 2


def test_fixed_point_sum_is_within_n_half_steps_and_clips() -> None:
    rng = np.random.default_rng(4)
    n = 6
    rows = rng.normal(0, 3, size=(n, 200))
    rows[0, 0] = 1e9  # clipped to 8
    total = np.zeros(200, dtype=np.uint64)
    decoder = None
    for row in rows:
        encoded, decoder = secagg.encode_floats(
            row, scale=1000.0, clip=8.0, participants=n
        )
        total += encoded
    assert decoder is not None
    expected = np.clip(rows, -8, 8).sum(axis=0)
    assert np.max(np.abs(decoder(total) - expected)) <= n * decoder.resolution / 2


def test_fixed_point_refuses_non_finite_values_and_overflowing_scales() -> None:
    with pytest.raises(ValueError, match="NaN"):
        secagg.encode_floats([0.0, float("nan")], scale=10.0, clip=1.0, participants=2)
    with pytest.raises(ValueError, match="positive"):
        secagg.encode_floats([0.0], scale=0.0, clip=1.0, participants=2)
    with pytest.raises(secagg.Overflow):
        secagg.encode_floats([0.0], scale=2.0**60, clip=100.0, participants=10)
    _, decoder = secagg.encode_floats([0.0], scale=2.0**20, clip=8.0, participants=10)
    assert decoder.value_bits == 24  # round(8 * 2^20) = 2^23 needs 24 bits
