"""An in-process driver that runs a whole session, for tests and benchmarks."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from secagg._aggregator import Aggregator
from secagg._participant import Participant
from secagg._rules import is_uint64_vector
from secagg.hazmat import RandomBytes, seeded_random_bytes

_T = TypeVar("_T")


@dataclass(frozen=True)
class Envelope:
    """One message on the wire between the aggregator and a participant.

    Parameters
    ----------
    round : int
        The protocol round, 0 to 3 (a message that closes round ``r`` and
        opens ``r + 1`` is counted in ``r + 1``).
    direction : {"up", "down"}
        ``"up"``: from the participant to the aggregator; ``"down"``: the reverse.
    participant : int
        The participant at the other end.
    payload : bytes
        The encoded message.
    """

    round: int
    direction: Literal["up", "down"]
    participant: int
    payload: bytes


@dataclass
class RunRecord:
    """What `run_in_memory` saw: every message and the time each party spent.

    Attributes
    ----------
    envelopes : list of Envelope
        Every message, in order.
    participant_seconds : dict of int to float
        CPU-bound time each participant spent in its own steps.
    aggregator_seconds : float
        Time the aggregator spent in its steps.
    """

    envelopes: list[Envelope] = field(default_factory=list)
    participant_seconds: dict[int, float] = field(default_factory=dict)
    aggregator_seconds: float = 0.0

    def received_by_aggregator(self) -> list[Envelope]:
        """Return every message the aggregator received."""
        return [e for e in self.envelopes if e.direction == "up"]

    def uploaded_bytes(self, participant: int) -> int:
        """Return the bytes ``participant`` sent, over all rounds."""
        return sum(
            len(e.payload)
            for e in self.envelopes
            if e.direction == "up" and e.participant == participant
        )


def run_in_memory(
    inputs: Mapping[int, NDArray[np.uint64]],
    threshold: int,
    drop_after_masking: Set[int] = frozenset(),
    drop_before_masking: Set[int] = frozenset(),
    rng_seed: int | None = None,
    *,
    drop_before_sharing: Set[int] = frozenset(),
    min_participants: int = 2,
    record: RunRecord | None = None,
) -> NDArray[np.uint64]:
    """Run one session in this process and return the unmasked sum.

    Every message is serialised to bytes and parsed again, as over a network.
    Dropouts are simulated by participants that stop answering:

    - ``drop_before_sharing``: advertise keys, then vanish (not in U2);
    - ``drop_before_masking``: share their keys, then vanish before sending
      their masked input (in U2, not in U3): their input is **not** in the sum
      and the aggregator reconstructs their mask keys to cancel their
      pairwise masks;
    - ``drop_after_masking``: send their masked input, then vanish before
      unmasking (in U3): their input **is** in the sum, and the other
      survivors' shares recover their self masks.

    Parameters
    ----------
    inputs : Mapping[int, numpy.ndarray of uint64]
        Participant id to its encoded input; all of one length.
    threshold : int
        Shares needed to reconstruct a secret (a strict majority of ``inputs``).
    drop_after_masking : set of int
        Participants that drop after round 2.
    drop_before_masking : set of int
        Participants that drop after round 1.
    rng_seed : int, optional
        Replay the session exactly: every key, seed and nonce comes from a
        stream seeded by it (hazardous outside tests). ``None``: ``os.urandom``.
    drop_before_sharing : set of int
        Participants that drop after round 0.
    min_participants : int
        The fewest inputs the sum may hold, for every party.
    record : RunRecord, optional
        Filled with every message and the time each party spent.

    Returns
    -------
    numpy.ndarray of uint64
        The sum modulo 2^64 of the inputs of the participants in U3.

    Raises
    ------
    TooFewParticipants
        If too many participants drop for the threshold or the minimum.
    TypeError
        If an input is not a numpy uint64 vector.
    ValueError
        If the inputs differ in length, a dropout is not a participant, or
        the threshold is not a strict majority.
    """
    vectors = dict(inputs)
    if not all(is_uint64_vector(vector) for vector in vectors.values()):
        raise TypeError("inputs must be numpy uint64 vectors (see encode_ints)")
    lengths = {len(v) for v in vectors.values()}
    if len(lengths) != 1:
        raise ValueError("inputs must all have one, same length")
    dropouts = (
        set(drop_before_sharing) | set(drop_before_masking) | set(drop_after_masking)
    )
    if not dropouts <= set(vectors):
        raise ValueError("a dropout is not a participant")
    log = record if record is not None else RunRecord()

    def timed(who: int | None, step: Callable[[], _T]) -> _T:
        start = time.perf_counter()
        try:
            return step()
        finally:
            elapsed = time.perf_counter() - start
            if who is None:
                log.aggregator_seconds += elapsed
            else:
                log.participant_seconds[who] = (
                    log.participant_seconds.get(who, 0.0) + elapsed
                )

    def up(round_: int, sender: int, payload: bytes) -> bytes:
        log.envelopes.append(Envelope(round_, "up", sender, payload))
        return payload

    def down(round_: int, recipient: int, payload: bytes) -> bytes:
        log.envelopes.append(Envelope(round_, "down", recipient, payload))
        return payload

    session_id, randomness = _randomness(rng_seed)
    aggregator = Aggregator(
        session_id,
        vectors,
        threshold=threshold,
        min_participants=min_participants,
        vector_length=lengths.pop(),
    )
    participants = {
        u: Participant(
            u, session_id, min_participants=min_participants, random_bytes=randomness(u)
        )
        for u in sorted(vectors)
    }

    for u, participant in participants.items():
        message = up(0, u, timed(u, participant.advertise_keys))
        timed(None, partial(aggregator.receive_advertise_keys, u, message))
    roster = timed(None, aggregator.key_roster)

    for u, participant in participants.items():
        received = down(1, u, roster)
        if u in drop_before_sharing:
            continue
        message = up(1, u, timed(u, partial(participant.share_keys, received)))
        timed(None, partial(aggregator.receive_share_keys, u, message))
    forwarded = timed(None, aggregator.forward_shares)

    for u, shares in forwarded.items():
        received = down(2, u, shares)
        if u in drop_before_masking:
            continue
        mask = partial(participants[u].mask_input, received, vectors[u])
        message = up(2, u, timed(u, mask))
        timed(None, partial(aggregator.receive_masked_input, u, message))
    request = timed(None, aggregator.unmask_request)

    for u in sorted(forwarded):
        if u in drop_before_masking:
            continue
        received = down(3, u, request)
        if u in drop_after_masking:
            continue
        message = up(3, u, timed(u, partial(participants[u].unmask, received)))
        timed(None, partial(aggregator.receive_unmasking, u, message))
    return timed(None, aggregator.finish).total


def _randomness(
    rng_seed: int | None,
) -> tuple[bytes, Callable[[int], RandomBytes]]:
    """Return the session id and each participant's random source."""
    if rng_seed is None:
        return os.urandom(32), lambda _participant: os.urandom
    # Hazardous: reproducible keys, for tests and benchmarks only.
    seed = rng_seed.to_bytes(32, "big", signed=True)
    session_id = seeded_random_bytes(seed, b"session id")(32)
    return session_id, lambda participant: seeded_random_bytes(
        seed, b"participant" + struct.pack(">I", participant)
    )
