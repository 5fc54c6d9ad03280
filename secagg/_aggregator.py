"""The server side of a session: a pure state machine that learns only the sum."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from numpy.typing import NDArray

from secagg._errors import ProtocolViolation, SecAggError, TooFewParticipants
from secagg._messages import (
    AdvertiseKeys,
    ForwardedShares,
    KeyRoster,
    MaskedInput,
    PublicKeys,
    ShareKeys,
    Unmasking,
    UnmaskRequest,
)
from secagg._rules import (
    MAX_VECTOR_LENGTH,
    check_min_participants,
    check_participant_id,
    check_session_id,
    threshold_problem,
)
from secagg.hazmat import (
    Share,
    add_keystream,
    combine_shares,
    pairwise_mask_key,
    self_mask_key,
)


class _Stage(enum.Enum):
    KEYS = "collecting keys"
    SHARES = "collecting shares"
    MASKED = "collecting masked inputs"
    UNMASKING = "collecting unmasking shares"
    DONE = "finished"
    FAILED = "failed"


@dataclass(frozen=True, eq=False)
class AggregateResult:
    """The outcome of a session: the sum and exactly whose inputs it holds.

    Parameters
    ----------
    total : numpy.ndarray of uint64
        The sum modulo 2^64 of the inputs of ``contributors`` (decode it with
        `decode_ints` or the decoder from `encode_floats`).
    contributors : frozenset of int
        U3: the participants whose masked input arrived.
    dropped : frozenset of int
        The invited participants whose input is not in the sum.
    """

    total: NDArray[np.uint64]
    contributors: frozenset[int]
    dropped: frozenset[int]


class Aggregator:
    """The aggregator's side of a secure-aggregation session (Bonawitz et al.).

    A pure state machine. For each round, feed it every participant's message
    with ``receive_*`` (the transport passes the authenticated sender), then
    close the round with the method that returns the next messages. What it
    holds: public keys, sealed shares it cannot open, a running sum of masked
    vectors (never an individual input), and -- in the last round -- shares
    of the self-mask seeds of the survivors and the mask keys of the dropouts.

    When fewer participants remain than ``max(threshold, min_participants)``,
    closing the round raises `TooFewParticipants` before any participant is
    asked to reveal anything, and the session is over.

    Parameters
    ----------
    session_id : bytes
        The session's random id (16 to 64 bytes).
    participants : iterable of int
        The invited participant ids; nobody else may take part.
    threshold : int
        Shares needed to reconstruct a secret: a strict majority of the
        invited participants, at most all of them.
    min_participants : int
        The fewest inputs the sum may hold (the policy's minimum, at least 2).
    vector_length : int
        Words in every input vector.

    Raises
    ------
    ValueError
        If the threshold is not a strict majority, ``min_participants``
        exceeds the invited participants, or a size is out of range.
    """

    def __init__(
        self,
        session_id: bytes,
        participants: Iterable[int],
        *,
        threshold: int,
        min_participants: int,
        vector_length: int,
    ) -> None:
        self._session = check_session_id(session_id)
        self._invited = frozenset(check_participant_id(p) for p in participants)
        problem = threshold_problem(threshold, len(self._invited))
        if problem is not None:
            raise ValueError(problem)
        self._threshold = threshold
        self._min = check_min_participants(min_participants)
        if self._min > len(self._invited):
            raise ValueError(
                f"min_participants {self._min} exceeds the "
                f"{len(self._invited)} invited participants"
            )
        if not 1 <= vector_length <= MAX_VECTOR_LENGTH:
            raise ValueError(f"vector length must be 1 to {MAX_VECTOR_LENGTH}")
        self._length = vector_length
        self._stage = _Stage.KEYS
        self._keys: dict[int, PublicKeys] = {}
        self._index: dict[int, int] = {}
        self._sealed: dict[int, dict[int, bytes]] = {}
        self._shared: frozenset[int] = frozenset()  # U2
        self._total: NDArray[np.uint64] | None = None
        self._masked: set[int] = set()
        self._survivors: frozenset[int] = frozenset()  # U3
        self._unmasking: dict[int, Unmasking] = {}

    @property
    def session_id(self) -> bytes:
        """The session's id."""
        return self._session

    @property
    def threshold(self) -> int:
        """Shares needed to reconstruct a secret."""
        return self._threshold

    @property
    def advertised(self) -> frozenset[int]:
        """U1: the participants whose keys were accepted so far."""
        return frozenset(self._keys)

    @property
    def shared(self) -> frozenset[int]:
        """U2: the participants whose shares were forwarded (empty before)."""
        return self._shared

    @property
    def survivors(self) -> frozenset[int]:
        """U3: the participants asked to unmask (empty before `unmask_request`)."""
        return self._survivors

    # Round 0 ------------------------------------------------------------------

    def receive_advertise_keys(self, sender: int, data: bytes) -> None:
        """Accept ``sender``'s `AdvertiseKeys`.

        Parameters
        ----------
        sender : int
            The participant the transport authenticated.
        data : bytes
            The encoded message.

        Raises
        ------
        ProtocolViolation
            If the round is closed, the message is malformed, of another
            session or sender, from someone not invited, or a repeat.
        """
        with self._step(_Stage.KEYS):
            message = AdvertiseKeys.from_bytes(data)
            self._check_sender(message.session_id, message.sender, sender)
            if sender not in self._invited:
                raise ProtocolViolation(f"participant {sender} is not invited")
            self._check_new(sender, self._keys)
            self._keys[sender] = message.keys

    def key_roster(self) -> bytes:
        """Close round 0; return the `KeyRoster` to send to every participant in it.

        Returns
        -------
        bytes
            The encoded `KeyRoster`, one broadcast to every participant that
            advertised keys (`advertised`).

        Raises
        ------
        TooFewParticipants
            If fewer than ``max(threshold, min_participants)`` advertised keys.
        ProtocolViolation
            If two participants advertised the same public key.
        """
        with self._step(_Stage.KEYS, closing=True):
            self._require("participants that advertised keys", len(self._keys))
            advertised = [
                k for keys in self._keys.values() for k in (keys.cipher, keys.mask)
            ]
            if len(set(advertised)) != len(advertised):
                raise ProtocolViolation("two participants advertised the same key")
            self._index = {p: i for i, p in enumerate(sorted(self._keys), start=1)}
            self._stage = _Stage.SHARES
            return KeyRoster(
                self._session, self._threshold, self._length, dict(self._keys)
            ).to_bytes()

    # Round 1 ------------------------------------------------------------------

    def receive_share_keys(self, sender: int, data: bytes) -> None:
        """Accept ``sender``'s `ShareKeys`: one sealed share for every other participant.

        Parameters
        ----------
        sender : int
            The participant the transport authenticated.
        data : bytes
            The encoded message.

        Raises
        ------
        ProtocolViolation
            If the round is closed, the message is malformed, of another
            session or sender, from outside the roster, a repeat, or does not
            address exactly the other participants of the roster.
        """
        with self._step(_Stage.SHARES):
            message = ShareKeys.from_bytes(data)
            self._check_sender(message.session_id, message.sender, sender)
            if sender not in self._keys:
                raise ProtocolViolation(f"participant {sender} is not in the roster")
            self._check_new(sender, self._sealed)
            if set(message.ciphertexts) != set(self._keys) - {sender}:
                raise ProtocolViolation(
                    f"participant {sender} must seal shares for exactly the others"
                )
            self._sealed[sender] = dict(message.ciphertexts)

    def forward_shares(self) -> dict[int, bytes]:
        """Close round 1; return the `ForwardedShares` for each participant in U2.

        Returns
        -------
        dict of int to bytes
            Recipient id to its encoded `ForwardedShares`.

        Raises
        ------
        TooFewParticipants
            If fewer than ``max(threshold, min_participants)`` shared keys.
        """
        with self._step(_Stage.SHARES, closing=True):
            self._require("participants that shared keys", len(self._sealed))
            self._shared = frozenset(self._sealed)
            outgoing = {
                recipient: ForwardedShares(
                    self._session,
                    recipient,
                    {s: self._sealed[s][recipient] for s in self._shared - {recipient}},
                ).to_bytes()
                for recipient in sorted(self._shared)
            }
            self._sealed.clear()
            self._total = np.zeros(self._length, dtype=np.uint64)
            self._stage = _Stage.MASKED
            return outgoing

    # Round 2 ------------------------------------------------------------------

    def receive_masked_input(self, sender: int, data: bytes) -> None:
        """Accept ``sender``'s `MaskedInput` and add it to the running sum.

        Parameters
        ----------
        sender : int
            The participant the transport authenticated.
        data : bytes
            The encoded message.

        Raises
        ------
        ProtocolViolation
            If the round is closed, the message is malformed, of another
            session or sender, from outside U2, a repeat, or of the wrong length.
        """
        with self._step(_Stage.MASKED):
            message = MaskedInput.from_bytes(data)
            self._check_sender(message.session_id, message.sender, sender)
            if sender not in self._shared:
                raise ProtocolViolation(f"participant {sender} did not share keys")
            self._check_new(sender, self._masked)
            if len(message.vector) != self._length:
                raise ProtocolViolation(
                    f"a masked input of {len(message.vector)} words, not {self._length}"
                )
            total = self._running_total()
            np.add(total, message.vector, out=total)
            self._masked.add(sender)

    def unmask_request(self) -> bytes:
        """Close round 2; return the `UnmaskRequest` for every participant in U3.

        Returns
        -------
        bytes
            The encoded `UnmaskRequest`, one broadcast to every participant in
            `survivors`.

        Raises
        ------
        TooFewParticipants
            If fewer than ``max(threshold, min_participants)`` masked inputs
            arrived; nobody is asked to reveal anything.
        """
        with self._step(_Stage.MASKED, closing=True):
            self._require("masked inputs", len(self._masked))
            self._survivors = frozenset(self._masked)
            self._stage = _Stage.UNMASKING
            return UnmaskRequest(self._session, self._survivors).to_bytes()

    # Round 3 ------------------------------------------------------------------

    def receive_unmasking(self, sender: int, data: bytes) -> None:
        """Accept ``sender``'s `Unmasking` shares.

        Parameters
        ----------
        sender : int
            The participant the transport authenticated.
        data : bytes
            The encoded message.

        Raises
        ------
        ProtocolViolation
            If the round is closed, the message is malformed, of another
            session or sender, from outside U3, a repeat, or does not hold
            exactly one share of b_v per survivor and of s_v^SK per dropout,
            each at the sender's index.
        """
        with self._step(_Stage.UNMASKING):
            message = Unmasking.from_bytes(data)
            self._check_sender(message.session_id, message.sender, sender)
            if sender not in self._survivors:
                raise ProtocolViolation(f"participant {sender} is not a survivor")
            self._check_new(sender, self._unmasking)
            if set(message.self_mask_shares) != self._survivors or set(
                message.mask_key_shares
            ) != (self._shared - self._survivors):
                raise ProtocolViolation(
                    f"participant {sender} must reveal seed shares for exactly the "
                    "survivors and key shares for exactly the dropouts"
                )
            index = self._index[sender]
            shares = [
                *message.self_mask_shares.values(),
                *message.mask_key_shares.values(),
            ]
            if any(share.index != index for share in shares):
                raise ProtocolViolation(
                    f"participant {sender} sent shares of another index"
                )
            self._unmasking[sender] = message

    def finish(self) -> AggregateResult:
        """Close round 3: remove every mask and return the sum of U3's inputs.

        Returns
        -------
        AggregateResult
            The sum modulo 2^64, the contributors (U3) and the dropped.

        Raises
        ------
        TooFewParticipants
            If fewer than ``threshold`` survivors sent their shares; no secret
            can be reconstructed and nothing is returned.
        ProtocolViolation
            If the shares are inconsistent (a reconstructed mask key does not
            match the public key its owner advertised).
        """
        with self._step(_Stage.UNMASKING, closing=True):
            responses = list(self._unmasking.values())
            if len(responses) < self._threshold:
                raise TooFewParticipants(
                    "unmasking responses", len(responses), self._threshold
                )
            total = self._running_total()
            for owner in sorted(self._survivors):
                seed = self._combine([r.self_mask_shares[owner] for r in responses])
                add_keystream(
                    total,
                    self_mask_key(seed, session_id=self._session, owner=owner),
                    subtract=True,
                )
            for dropped in sorted(self._shared - self._survivors):
                private_key = self._mask_key_of(
                    dropped, [r.mask_key_shares[dropped] for r in responses]
                )
                for survivor in sorted(self._survivors):
                    key = pairwise_mask_key(
                        private_key,
                        X25519PublicKey.from_public_bytes(self._keys[survivor].mask),
                        session_id=self._session,
                        pair=(survivor, dropped),
                    )
                    # The survivor added PRG(s_uv) if dropped > survivor, else subtracted.
                    add_keystream(total, key, subtract=dropped > survivor)
            self._stage = _Stage.DONE
            self._total = None
            return AggregateResult(
                total, self._survivors, self._invited - self._survivors
            )

    # --------------------------------------------------------------------------

    @contextmanager
    def _step(self, expected: _Stage, *, closing: bool = False) -> Iterator[None]:
        """Run one step in stage ``expected``.

        A rejected message leaves the session as it was; an error while closing
        a round ends the session and drops everything it holds.
        """
        if self._stage is not expected:
            raise ProtocolViolation(
                f"the aggregator is {self._stage.value}, not {expected.value}"
            )
        try:
            yield
        except SecAggError:
            if closing:
                self._stage = _Stage.FAILED
                self._total = None
                self._sealed.clear()
                self._unmasking.clear()
            raise

    def _require(self, what: str, have: int) -> None:
        need = max(self._threshold, self._min)
        if have < need:
            raise TooFewParticipants(what, have, need)

    def _check_sender(self, session_id: bytes, claimed: int, sender: int) -> None:
        if session_id != self._session:
            raise ProtocolViolation("a message of another session")
        if claimed != sender:
            raise ProtocolViolation(
                f"a message from participant {sender} claims to be from {claimed}"
            )

    @staticmethod
    def _check_new(sender: int, seen: Iterable[int]) -> None:
        if sender in seen:
            raise ProtocolViolation(f"participant {sender} sent this message twice")

    def _running_total(self) -> NDArray[np.uint64]:
        if self._total is None:  # pragma: no cover - guarded by the stage
            raise ProtocolViolation("no running sum")
        return self._total

    def _combine(self, shares: list[Share]) -> bytes:
        return combine_shares(shares, threshold=self._threshold)

    def _mask_key_of(self, owner: int, shares: list[Share]) -> X25519PrivateKey:
        private_key = X25519PrivateKey.from_private_bytes(self._combine(shares))
        if private_key.public_key().public_bytes_raw() != self._keys[owner].mask:
            raise ProtocolViolation(
                f"the shares of participant {owner}'s mask key are inconsistent"
            )
        return private_key
