"""The building blocks: Shamir sharing, the AES-CTR mask generator, keys, sealing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from secagg import DecryptionFailed, ProtocolViolation, TooFewParticipants
from secagg.hazmat import (
    PRIME,
    Share,
    add_keystream,
    combine_shares,
    expand_seed,
    interpolate_at_zero,
    open_share,
    pairwise_mask_key,
    seal_share,
    seeded_random_bytes,
    self_mask_key,
    share_encryption_key,
    split_secret,
)

SESSION = bytes(range(32))
SECRET = bytes.fromhex("c0ffee" * 10 + "00ff")


def test_prime_is_the_mersenne_prime_2_521_minus_1() -> None:
    assert PRIME == 2**521 - 1
    assert pow(3, PRIME - 1, PRIME) == 1  # Fermat witness, cheap sanity check


def test_any_t_of_n_shares_reconstruct() -> None:
    shares = split_secret(SECRET, threshold=4, shares=7)
    assert [s.index for s in shares] == list(range(1, 8))
    for subset in itertools.combinations(shares, 4):
        assert combine_shares(list(subset), threshold=4) == SECRET
    assert combine_shares(shares, threshold=4) == SECRET  # more than t also works


def test_t_minus_1_shares_do_not_reconstruct_and_interpolate_to_noise() -> None:
    random_bytes = seeded_random_bytes(b"shamir test seed", b"t-1")
    top_bits = []
    for _ in range(200):
        shares = split_secret(SECRET, threshold=4, shares=7, random_bytes=random_bytes)
        with pytest.raises(TooFewParticipants):
            combine_shares(shares[:3], threshold=4)
        guess = interpolate_at_zero(shares[:3])
        assert guess != int.from_bytes(SECRET, "big")
        top_bits.append(guess >> 520)
    # Uniform over the field: the top bit is set about half the time (binomial,
    # 200 trials; the bound is > 5 sigma, deterministic under the fixed seed).
    assert 60 <= sum(top_bits) <= 140


def test_t_minus_1_shares_are_consistent_with_every_secret() -> None:
    known = split_secret(SECRET, threshold=3, shares=5)[:2]  # indices 1 and 2
    for candidate in (bytes(32), b"\xff" * 32, bytes(range(32))):
        c = int.from_bytes(candidate, "big")
        # The degree-2 polynomial through (0, c) and the two known shares, read at
        # x = 3 (interpolating at 0 after shifting x by -3, modulo PRIME).
        y3 = interpolate_at_zero(
            [
                Share(PRIME - 3, c),
                Share(PRIME - 2, known[0].value),
                Share(PRIME - 1, known[1].value),
            ]
        )
        # ... completes the two shares into a valid sharing of the candidate.
        assert combine_shares([*known, Share(3, y3)], threshold=3) == candidate


def test_altered_or_repeated_shares_are_refused() -> None:
    shares = split_secret(SECRET, threshold=3, shares=5)
    bad = [Share(1, (shares[0].value + (1 << 300)) % PRIME), *shares[1:3]]
    with pytest.raises(ProtocolViolation, match="inconsistent"):
        combine_shares(bad, threshold=3)
    with pytest.raises(ProtocolViolation, match="same index"):
        combine_shares([shares[0], shares[0], shares[1]], threshold=3)
    with pytest.raises(ProtocolViolation, match="outside the field"):
        interpolate_at_zero([Share(1, PRIME)])
    with pytest.raises(ValueError):
        split_secret(b"short", threshold=2, shares=3)
    with pytest.raises(ValueError):
        split_secret(SECRET, threshold=4, shares=3)


def test_mask_is_the_aes_256_ctr_keystream_read_as_little_endian_words() -> None:
    key = bytes(range(32))
    stream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    reference = np.frombuffer(stream.update(bytes(8 * 70_000)), dtype="<u8")
    mask = expand_seed(key, 70_000)  # crosses the 32,768-word chunks
    assert mask.dtype == np.uint64
    assert np.array_equal(mask, reference)
    assert np.array_equal(expand_seed(key, 5), reference[:5])
    assert not np.array_equal(expand_seed(bytes(32), 5), reference[:5])


def test_adding_then_subtracting_a_mask_is_the_identity_mod_2_64() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2**64, size=100_000, dtype=np.uint64)
    y = x.copy()
    add_keystream(y, b"k" * 32)
    assert np.count_nonzero(y == x) == 0
    add_keystream(y, b"k" * 32, subtract=True)
    assert np.array_equal(x, y)
    with pytest.raises(TypeError):
        add_keystream(np.zeros(3, dtype=np.int64), b"k" * 32)
    with pytest.raises(ValueError):
        add_keystream(np.zeros(3, dtype=np.uint64), b"short")


def test_pairwise_keys_agree_and_every_use_has_its_own_key() -> None:
    u, v = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    s_uv = pairwise_mask_key(u, v.public_key(), session_id=SESSION, pair=(3, 9))
    s_vu = pairwise_mask_key(v, u.public_key(), session_id=SESSION, pair=(9, 3))
    assert s_uv == s_vu and len(s_uv) == 32
    assert s_uv != pairwise_mask_key(
        u, v.public_key(), session_id=SESSION[::-1], pair=(3, 9)
    )
    to_v = share_encryption_key(
        u, v.public_key(), session_id=SESSION, sender=3, recipient=9
    )
    to_u = share_encryption_key(
        u, v.public_key(), session_id=SESSION, sender=9, recipient=3
    )
    assert to_v == share_encryption_key(
        v, u.public_key(), session_id=SESSION, sender=3, recipient=9
    )
    assert len({s_uv, to_v, to_u}) == 3  # distinct info, distinct keys
    seed = bytes(32)
    assert self_mask_key(seed, session_id=SESSION, owner=3) != self_mask_key(
        seed, session_id=SESSION, owner=9
    )


def test_a_low_order_public_key_is_a_protocol_violation() -> None:
    zero_point = X25519PublicKey.from_public_bytes(bytes(32))
    with pytest.raises(ProtocolViolation, match="low order"):
        pairwise_mask_key(
            X25519PrivateKey.generate(), zero_point, session_id=SESSION, pair=(1, 2)
        )


def test_sealed_shares_detect_tampering_and_misrouting() -> None:
    key = b"K" * 32
    sealed = seal_share(key, b"payload", session_id=SESSION, sender=1, recipient=2)
    assert (
        open_share(key, sealed, session_id=SESSION, sender=1, recipient=2) == b"payload"
    )
    for position in (0, 12, len(sealed) - 1):  # nonce, ciphertext, tag
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        with pytest.raises(DecryptionFailed, match="do not authenticate"):
            open_share(key, bytes(tampered), session_id=SESSION, sender=1, recipient=2)
    for session, sender, recipient in (
        (SESSION[::-1], 1, 2),
        (SESSION, 3, 2),
        (SESSION, 1, 3),
    ):
        with pytest.raises(DecryptionFailed):
            open_share(
                key, sealed, session_id=session, sender=sender, recipient=recipient
            )
    with pytest.raises(DecryptionFailed, match="truncated"):
        open_share(key, sealed[:20], session_id=SESSION, sender=1, recipient=2)


def test_seeded_random_bytes_replays_and_separates_labels() -> None:
    a1, a2 = seeded_random_bytes(b"s" * 16, b"a"), seeded_random_bytes(b"s" * 16, b"a")
    b = seeded_random_bytes(b"s" * 16, b"b")
    assert a1(40) == a2(40)
    assert a1(8) != b(8)
