"""The protocol end to end: exact sums, dropouts, thresholds, refusals, messages."""

from __future__ import annotations

import hashlib
from collections.abc import Collection

import numpy as np
import pytest

import secagg
from secagg import (
    AdvertiseKeys,
    Aggregator,
    DecryptionFailed,
    ForwardedShares,
    KeyRoster,
    MaskedInput,
    Participant,
    ProtocolViolation,
    ShareKeys,
    TooFewParticipants,
    Unmasking,
    UnmaskRequest,
)
from secagg.hazmat import Share, seeded_random_bytes


def _signed_sum(vectors: Collection[np.ndarray]) -> list[int]:
    return [sum(int(v) for v in column) for column in zip(*vectors, strict=True)]


@pytest.mark.parametrize("n", range(2, 11))
def test_the_unmasked_sum_equals_the_plain_sum_exactly(n: int) -> None:
    rng = np.random.default_rng(n)
    bits = 63 - (n - 1).bit_length()  # the largest budget that fits n values
    top = (1 << bits) - 1
    raw = {u: rng.integers(-top, top, size=40, endpoint=True) for u in range(1, n + 1)}
    raw[1][:3] = [top, -top, 0]
    for u in raw:
        raw[u][3] = top  # every participant at the bound: the sum's extreme
    encoded = {
        u: secagg.encode_ints(x, value_bits=bits, participants=n)
        for u, x in raw.items()
    }
    total = secagg.run_in_memory(encoded, secagg.majority_threshold(n), rng_seed=n)
    decoded = secagg.decode_ints(total, value_bits=bits, participants=n)
    assert decoded.tolist() == _signed_sum(list(raw.values()))


def _small_inputs(n: int, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {u: rng.integers(-(10**6), 10**6, size=32) for u in range(1, n + 1)}


def _encode(raw: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    return {
        u: secagg.encode_ints(x, value_bits=20, participants=len(raw))
        for u, x in raw.items()
    }


def _decode(total: np.ndarray, n: int) -> list[int]:
    decoded: list[int] = secagg.decode_ints(
        total, value_bits=20, participants=n
    ).tolist()
    return decoded


@pytest.mark.parametrize("dropped", [{2}, {2, 5}, {1, 7}])
def test_dropping_before_masking_leaves_the_exact_sum_of_the_others(
    dropped: set[int],
) -> None:
    raw = _small_inputs(7)
    total = secagg.run_in_memory(
        _encode(raw), 4, drop_before_masking=dropped, rng_seed=1
    )
    kept = [x for u, x in raw.items() if u not in dropped]
    assert _decode(total, 7) == _signed_sum(kept)


@pytest.mark.parametrize("dropped", [{3}, {3, 4}])
def test_dropping_after_masking_still_counts_the_masked_input(
    dropped: set[int],
) -> None:
    raw = _small_inputs(5)
    total = secagg.run_in_memory(
        _encode(raw), 3, drop_after_masking=dropped, rng_seed=2
    )
    assert _decode(total, 5) == _signed_sum(list(raw.values()))


def test_dropouts_in_every_round_combine() -> None:
    raw = _small_inputs(9)
    total = secagg.run_in_memory(
        _encode(raw),
        5,
        drop_before_sharing={9},
        drop_before_masking={1},
        drop_after_masking={4, 5},
        rng_seed=3,
    )
    assert _decode(total, 9) == _signed_sum(
        [x for u, x in raw.items() if u not in {1, 9}]
    )


def test_fixed_point_floats_survive_secure_aggregation() -> None:
    rng = np.random.default_rng(5)
    rows = {u: rng.normal(0, 1, size=100) for u in range(1, 5)}
    encoded, decoder = {}, None
    for u, row in rows.items():
        encoded[u], decoder = secagg.encode_floats(
            row, scale=2**24, clip=6.0, participants=4
        )
    assert decoder is not None
    total = decoder(secagg.run_in_memory(encoded, 3))
    expected = np.clip(np.array(list(rows.values())), -6, 6).sum(axis=0)
    assert np.max(np.abs(total - expected)) <= 4 * decoder.resolution / 2


@pytest.mark.parametrize(
    ("drops", "stage"),
    [
        ({"drop_before_sharing": {1, 2, 3}}, "participants that shared keys"),
        ({"drop_before_masking": {1, 2, 3}}, "masked inputs"),
        ({"drop_after_masking": {1, 2, 3}}, "unmasking responses"),
    ],
)
def test_below_the_threshold_the_aggregator_stops_and_reveals_nothing(
    drops: dict[str, set[int]], stage: str
) -> None:
    record = secagg.RunRecord()
    with pytest.raises(TooFewParticipants) as caught:
        secagg.run_in_memory(_encode(_small_inputs(5)), 3, record=record, **drops)  # type: ignore[arg-type]
    assert (caught.value.stage, caught.value.have, caught.value.need) == (stage, 2, 3)
    if stage != "unmasking responses":  # nobody was asked to unmask anything
        assert not [e for e in record.envelopes if e.round == 3]


def test_the_configured_minimum_applies_above_the_threshold() -> None:
    raw = _small_inputs(5)
    total = secagg.run_in_memory(
        _encode(raw), 3, drop_before_masking={5}, min_participants=4
    )
    assert _decode(total, 5) == _signed_sum([raw[u] for u in range(1, 5)])
    with pytest.raises(
        TooFewParticipants, match="masked inputs: 3 received, at least 4"
    ):
        secagg.run_in_memory(
            _encode(raw), 3, drop_before_masking={4, 5}, min_participants=4
        )


def test_thresholds_must_be_a_strict_majority() -> None:
    with pytest.raises(ValueError, match="strict majority"):
        secagg.run_in_memory(_encode(_small_inputs(6)), 3)
    with pytest.raises(ValueError, match="strict majority"):
        secagg.run_in_memory(_encode(_small_inputs(3)), 4)
    assert [secagg.majority_threshold(n) for n in (2, 3, 4, 5, 10)] == [2, 2, 3, 3, 6]


# -- Driving the state machines by hand ---------------------------------------------


class Session:
    """A session driven round by round, so tests can interfere between rounds."""

    def __init__(self, n: int, threshold: int, *, min_participants: int = 2) -> None:
        self.id = seeded_random_bytes(b"protocol tests", b"session")(32)
        self.inputs = _encode(_small_inputs(n))
        self.aggregator = Aggregator(
            self.id, self.inputs, threshold=threshold,
            min_participants=min_participants, vector_length=32,
        )  # fmt: skip
        self.participants = {
            u: Participant(
                u,
                self.id,
                min_participants=min_participants,
                random_bytes=seeded_random_bytes(b"protocol tests", bytes([u])),
            )
            for u in self.inputs
        }

    def keys(self) -> bytes:
        for u, p in self.participants.items():
            self.aggregator.receive_advertise_keys(u, p.advertise_keys())
        return self.aggregator.key_roster()

    def shares(self, roster: bytes) -> dict[int, bytes]:
        for u, p in self.participants.items():
            self.aggregator.receive_share_keys(u, p.share_keys(roster))
        return self.aggregator.forward_shares()

    def masked(self, forwarded: dict[int, bytes], drop: Collection[int] = ()) -> bytes:
        for u, message in forwarded.items():
            if u not in drop:
                masked = self.participants[u].mask_input(message, self.inputs[u])
                self.aggregator.receive_masked_input(u, masked)
        return self.aggregator.unmask_request()

    def request(self, survivors: Collection[int]) -> bytes:
        return UnmaskRequest(self.id, frozenset(survivors)).to_bytes()


def test_a_participant_refuses_to_reveal_both_secrets_of_one_peer() -> None:
    session = Session(5, 3)
    session.masked(session.shares(session.keys()))
    alice = session.participants[1]
    # First told that 5 dropped: alice reveals her share of s_5^SK ...
    first = Unmasking.from_bytes(alice.unmask(session.request({1, 2, 3, 4})))
    assert set(first.mask_key_shares) == {5} and 5 not in first.self_mask_shares
    # ... the same request again is harmless and answered identically ...
    assert alice.unmask(session.request({1, 2, 3, 4})) == first.to_bytes()
    # ... but 5 "surviving" now would add a share of b_5: refused, and alice aborts.
    with pytest.raises(ProtocolViolation, match=r"both .* participant\(s\) \[5\]"):
        alice.unmask(session.request({1, 2, 3, 4, 5}))
    with pytest.raises(ProtocolViolation, match="aborted"):
        alice.unmask(session.request({1, 2, 3, 4}))


def test_a_participant_refuses_the_reverse_order_too() -> None:
    session = Session(5, 3)
    session.masked(session.shares(session.keys()))
    bob = session.participants[2]
    bob.unmask(session.request({1, 2, 3, 4, 5}))  # reveals shares of every b_v
    with pytest.raises(ProtocolViolation, match="both"):
        bob.unmask(session.request({1, 2, 3, 5}))  # would add s_4^SK


def test_a_participant_listed_as_dropped_after_masking_refuses() -> None:
    session = Session(5, 3)
    session.masked(session.shares(session.keys()))
    with pytest.raises(ProtocolViolation, match="listed as dropped"):
        session.participants[1].unmask(session.request({2, 3, 4}))


def test_participants_enforce_the_threshold_and_their_own_minimum() -> None:
    session = Session(5, 3, min_participants=2)
    session.masked(session.shares(session.keys()))
    with pytest.raises(TooFewParticipants, match="survivors: 2 received, at least 3"):
        session.participants[1].unmask(session.request({1, 2}))
    strict = Session(5, 3, min_participants=2)
    strict.participants[1] = Participant(1, strict.id, min_participants=5)
    for u, p in strict.participants.items():
        strict.aggregator.receive_advertise_keys(u, p.advertise_keys())
    roster = strict.aggregator.key_roster()
    for u, p in strict.participants.items():
        strict.aggregator.receive_share_keys(u, p.share_keys(roster))
    forwarded = strict.aggregator.forward_shares()  # all five shared keys; 5 then drops
    for u in (2, 3, 4):
        strict.aggregator.receive_masked_input(
            u, strict.participants[u].mask_input(forwarded[u], strict.inputs[u])
        )
    strict.participants[1].mask_input(forwarded[1], strict.inputs[1])
    with pytest.raises(TooFewParticipants, match="at least 5"):
        strict.participants[1].unmask(strict.request({1, 2, 3, 4}))


def test_a_tampered_share_is_detected_before_anything_is_masked() -> None:
    session = Session(4, 3)
    forwarded = session.shares(session.keys())
    message = ForwardedShares.from_bytes(forwarded[1])
    sealed = dict(message.ciphertexts)
    corrupted = bytearray(sealed[3])
    corrupted[20] ^= 0x80
    sealed[3] = bytes(corrupted)
    tampered = ForwardedShares(session.id, 1, sealed).to_bytes()
    with pytest.raises(DecryptionFailed, match="participant 3 do not authenticate"):
        session.participants[1].mask_input(tampered, session.inputs[1])
    with pytest.raises(ProtocolViolation, match="aborted"):
        session.participants[1].mask_input(forwarded[1], session.inputs[1])


def test_shares_relayed_to_the_wrong_participant_do_not_open() -> None:
    session = Session(4, 3)
    forwarded = session.shares(session.keys())
    for_two = ForwardedShares.from_bytes(forwarded[2]).ciphertexts
    swapped = {3: for_two[3], 4: for_two[4], 2: for_two[1]}
    misrouted = ForwardedShares(session.id, 1, swapped).to_bytes()
    with pytest.raises(DecryptionFailed):
        session.participants[1].mask_input(misrouted, session.inputs[1])


def test_the_aggregator_rejects_impostors_repeats_and_strangers() -> None:
    session = Session(3, 2)
    alice, bob = session.participants[1], session.participants[2]
    advert = alice.advertise_keys()
    with pytest.raises(
        ProtocolViolation, match="from participant 2 claims to be from 1"
    ):
        session.aggregator.receive_advertise_keys(2, advert)
    session.aggregator.receive_advertise_keys(1, advert)
    with pytest.raises(ProtocolViolation, match="twice"):
        session.aggregator.receive_advertise_keys(1, advert)
    stranger = Participant(77, session.id, min_participants=2)
    with pytest.raises(ProtocolViolation, match="not invited"):
        session.aggregator.receive_advertise_keys(77, stranger.advertise_keys())
    other = Participant(2, bytes(32), min_participants=2)
    with pytest.raises(ProtocolViolation, match="another session"):
        session.aggregator.receive_advertise_keys(2, other.advertise_keys())
    with pytest.raises(
        ProtocolViolation, match="collecting keys, not collecting shares"
    ):
        session.aggregator.forward_shares()
    session.aggregator.receive_advertise_keys(2, bob.advertise_keys())
    session.aggregator.receive_advertise_keys(
        3, session.participants[3].advertise_keys()
    )
    roster = session.aggregator.key_roster()
    forwarded = session.shares(roster)
    wrong_length = MaskedInput(session.id, 1, np.zeros(31, dtype=np.uint64)).to_bytes()
    with pytest.raises(ProtocolViolation, match="31 words, not 32"):
        session.aggregator.receive_masked_input(1, wrong_length)
    assert set(forwarded) == {1, 2, 3}


def test_a_participant_checks_the_roster() -> None:
    session = Session(3, 2)
    for u, p in session.participants.items():
        session.aggregator.receive_advertise_keys(u, p.advertise_keys())
    roster = KeyRoster.from_bytes(session.aggregator.key_roster())
    keys = dict(roster.keys)
    weak = KeyRoster(session.id, 1, 32, keys).to_bytes()
    with pytest.raises(ProtocolViolation, match="strict majority"):
        session.participants[1].share_keys(weak)
    swapped = dict(keys)
    swapped[2] = keys[3]
    with pytest.raises(ProtocolViolation, match="alters this participant's keys"):
        session.participants[2].share_keys(
            KeyRoster(session.id, 2, 32, swapped).to_bytes()
        )
    repeated = dict(keys)
    repeated[1] = keys[2]
    with pytest.raises(ProtocolViolation, match="repeats a public key"):
        session.participants[3].share_keys(
            KeyRoster(session.id, 2, 32, repeated).to_bytes()
        )


def test_a_participant_checks_its_input_without_aborting() -> None:
    session = Session(3, 2)
    forwarded = session.shares(session.keys())
    alice = session.participants[1]
    with pytest.raises(TypeError):
        alice.mask_input(forwarded[1], np.zeros(32, dtype=np.int64))
    with pytest.raises(ValueError, match="32 words"):
        alice.mask_input(forwarded[1], np.zeros(3, dtype=np.uint64))
    MaskedInput.from_bytes(alice.mask_input(forwarded[1], session.inputs[1]))
    with pytest.raises(ProtocolViolation, match="sent its masked input"):
        alice.mask_input(forwarded[1], session.inputs[1])


def test_the_result_names_its_contributors() -> None:
    session = Session(5, 3)
    request = session.masked(session.shares(session.keys()), drop={4})
    assert session.aggregator.advertised == session.aggregator.shared == {1, 2, 3, 4, 5}
    assert session.aggregator.survivors == {1, 2, 3, 5}
    for u in UnmaskRequest.from_bytes(request).survivors:
        session.aggregator.receive_unmasking(u, session.participants[u].unmask(request))
    result = session.aggregator.finish()
    assert result.contributors == {1, 2, 3, 5} and result.dropped == {4}
    expected = _signed_sum([session.inputs[u].view(np.int64) for u in (1, 2, 3, 5)])
    assert _decode(result.total, 5) == expected
    with pytest.raises(ProtocolViolation, match="finished"):
        session.aggregator.finish()


def test_the_aggregator_checks_unmasking_shares() -> None:
    session = Session(5, 3)
    request = session.masked(session.shares(session.keys()), drop={4})
    good = Unmasking.from_bytes(session.participants[1].unmask(request))
    missing = Unmasking(session.id, 1, good.self_mask_shares, {})
    with pytest.raises(ProtocolViolation, match="exactly the survivors"):
        session.aggregator.receive_unmasking(1, missing.to_bytes())
    shifted = {v: Share(s.index + 1, s.value) for v, s in good.self_mask_shares.items()}
    other_index = Unmasking(session.id, 1, shifted, good.mask_key_shares)
    with pytest.raises(ProtocolViolation, match="another index"):
        session.aggregator.receive_unmasking(1, other_index.to_bytes())
    from_dropout = Unmasking(session.id, 4, good.self_mask_shares, good.mask_key_shares)
    with pytest.raises(ProtocolViolation, match="not a survivor"):
        session.aggregator.receive_unmasking(4, from_dropout.to_bytes())
    session.aggregator.receive_unmasking(1, good.to_bytes())
    with pytest.raises(TooFewParticipants, match="unmasking responses: 1 received"):
        session.aggregator.finish()
    with pytest.raises(ProtocolViolation, match="failed"):
        session.aggregator.receive_unmasking(2, session.participants[2].unmask(request))


# -- Messages ------------------------------------------------------------------------


def _one_of_each() -> list[secagg.Message]:
    session = Session(3, 2)
    roster = session.keys()
    forwarded = session.shares(roster)
    request = session.masked(forwarded)
    return [
        AdvertiseKeys(session.id, 1, session.participants[1].public_keys),
        KeyRoster.from_bytes(roster),
        ShareKeys.from_bytes(
            ShareKeys(session.id, 1, {2: b"x" * 40, 3: b"y" * 40}).to_bytes()
        ),
        ForwardedShares.from_bytes(forwarded[1]),
        MaskedInput(session.id, 1, np.arange(5, dtype=np.uint64)),
        UnmaskRequest.from_bytes(request),
        Unmasking.from_bytes(session.participants[1].unmask(request)),
    ]


def test_every_message_round_trips_and_is_parsed_by_kind() -> None:
    for message in _one_of_each():
        data = message.to_bytes()
        parsed = secagg.parse_message(data)
        assert type(parsed) is type(message)
        assert parsed.to_bytes() == data
        if not isinstance(message, MaskedInput):
            assert parsed == message


def test_malformed_messages_are_protocol_violations() -> None:
    for message in _one_of_each():
        data = message.to_bytes()
        for broken in (data[:-1], data + b"\x00", data[:6], b"XXXX" + data[4:]):
            with pytest.raises(ProtocolViolation):
                type(message).from_bytes(broken)
    with pytest.raises(ProtocolViolation, match="kind 3, expected 1"):
        AdvertiseKeys.from_bytes(ShareKeys(bytes(16), 1, {}).to_bytes())
    with pytest.raises(ProtocolViolation):
        secagg.parse_message(b"\x00" * 3)
    unsorted = bytearray(UnmaskRequest(bytes(16), frozenset({1, 2})).to_bytes())
    unsorted[-8:] = (2).to_bytes(4, "big") + (1).to_bytes(4, "big")
    with pytest.raises(ProtocolViolation, match="strictly increasing"):
        UnmaskRequest.from_bytes(bytes(unsorted))
    huge = bytearray(UnmaskRequest(bytes(16), frozenset()).to_bytes())
    huge[-4:] = (2**32 - 1).to_bytes(4, "big")
    with pytest.raises(ProtocolViolation, match="at most"):
        UnmaskRequest.from_bytes(bytes(huge))


def test_a_seeded_session_is_byte_for_byte_stable() -> None:
    """Golden transcript: the wire format and key schedule change only on purpose.

    Nodes and coordinators of different versions must agree on every byte; if
    this digest changes, bump the wire ``VERSION`` or the HKDF labels' ``v1``.
    """
    inputs = {
        u: secagg.encode_ints(np.arange(8) * u - 20, value_bits=10, participants=3)
        for u in (1, 2, 3)
    }
    record = secagg.RunRecord()
    total = secagg.run_in_memory(
        inputs, 2, drop_before_masking={3}, rng_seed=2024, record=record
    )
    digest = hashlib.sha256(b"".join(e.payload for e in record.envelopes)).hexdigest()
    assert digest == "aac031ed6810d483cfd2774445e6c345b7ca3840901bb88269df80529b585b06"
    assert len(record.envelopes) == 18
    decoded = secagg.decode_ints(total, value_bits=10, participants=3)
    assert decoded.tolist() == [3 * i - 40 for i in range(8)]
