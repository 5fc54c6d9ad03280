"""The client side of a session: a pure state machine that masks one input."""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator
from contextlib import contextmanager

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
    SharePayload,
    Unmasking,
    UnmaskRequest,
)
from secagg._rules import (
    check_min_participants,
    check_participant_id,
    check_session_id,
    is_uint64_vector,
    threshold_problem,
)
from secagg.hazmat import (
    SECRET_SIZE,
    RandomBytes,
    Share,
    add_keystream,
    open_share,
    pairwise_mask_key,
    seal_share,
    self_mask_key,
    share_encryption_key,
    split_secret,
)


class _Stage(enum.Enum):
    NEW = "new"
    ADVERTISED = "advertised keys"
    SHARED = "shared keys"
    MASKED = "sent its masked input"
    ABORTED = "aborted"


class Participant:
    """One participant's side of a secure-aggregation session (Bonawitz et al.).

    A pure state machine: each method takes the aggregator's last message as
    bytes and returns the participant's next message as bytes, or raises. The
    methods must be called in order -- `advertise_keys`, `share_keys`,
    `mask_input`, `unmask` -- and each ``SecAggError`` aborts the session for
    this participant (later calls raise `ProtocolViolation`).

    The participant trusts the aggregator for nothing it can check itself: it
    enforces its own minimum number of participants in every round, a
    majority threshold, the authenticity of every share it receives, and
    never reveals both the self-mask seed and the mask key of one participant.

    Parameters
    ----------
    participant_id : int
        This participant's id (unsigned 32-bit), as the transport
        authenticates it.
    session_id : bytes
        The session's random id (16 to 64 bytes), the same for all parties.
    min_participants : int
        The fewest participants this participant accepts to be summed with
        (its policy's value, at least 2); checked in every round.
    random_bytes : RandomBytes, optional
        Source of keys, seeds and nonces; ``os.urandom`` unless a test replays
        a session.
    """

    def __init__(
        self,
        participant_id: int,
        session_id: bytes,
        *,
        min_participants: int,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        self._id = check_participant_id(participant_id)
        self._session = check_session_id(session_id)
        self._min = check_min_participants(min_participants)
        self._random = random_bytes
        self._cipher_key = X25519PrivateKey.from_private_bytes(random_bytes(32))
        self._mask_key = X25519PrivateKey.from_private_bytes(random_bytes(32))
        self._self_seed = random_bytes(SECRET_SIZE)
        self._stage = _Stage.NEW
        self._roster: KeyRoster | None = None
        # owner -> (this participant's share of b_owner, of s_owner^SK)
        self._held: dict[int, tuple[Share, Share]] = {}
        self._shared_with: frozenset[int] = frozenset()  # U2
        self._revealed_seeds: set[int] = set()
        self._revealed_keys: set[int] = set()

    @property
    def id(self) -> int:
        """The participant's id."""
        return self._id

    @property
    def public_keys(self) -> PublicKeys:
        """The public keys this participant advertises."""
        return PublicKeys(
            self._cipher_key.public_key().public_bytes_raw(),
            self._mask_key.public_key().public_bytes_raw(),
        )

    def advertise_keys(self) -> bytes:
        """Round 0: return the `AdvertiseKeys` message for the aggregator.

        Returns
        -------
        bytes
            The encoded `AdvertiseKeys`.

        Raises
        ------
        ProtocolViolation
            If called twice or after the session aborted.
        """
        with self._step(_Stage.NEW):
            message = AdvertiseKeys(self._session, self._id, self.public_keys)
            self._stage = _Stage.ADVERTISED
            return message.to_bytes()

    def share_keys(self, roster: bytes) -> bytes:
        """Round 1: check the roster, then Shamir-share b_u and s_u^SK with it.

        Every participant in the roster, this one included, gets share ``i``
        where ``i`` is its position (from 1) in the roster sorted by id; the
        shares for others are sealed with AES-256-GCM under a key agreed with
        their cipher public key.

        Parameters
        ----------
        roster : bytes
            The aggregator's `KeyRoster`.

        Returns
        -------
        bytes
            The encoded `ShareKeys`.

        Raises
        ------
        TooFewParticipants
            If the roster is smaller than the threshold or ``min_participants``.
        ProtocolViolation
            If the roster is malformed, for another session, omits or alters
            this participant's keys, repeats a key, or its threshold is not a
            strict majority.
        """
        with self._step(_Stage.ADVERTISED):
            message = KeyRoster.from_bytes(roster)
            self._check_session(message.session_id)
            self._check_roster(message)
            self._roster = message
            order = sorted(message.keys)
            n, t = len(order), message.threshold
            seed_shares = split_secret(
                self._self_seed, threshold=t, shares=n, random_bytes=self._random
            )
            key_shares = split_secret(
                self._mask_key.private_bytes_raw(),
                threshold=t,
                shares=n,
                random_bytes=self._random,
            )
            ciphertexts: dict[int, bytes] = {}
            for position, recipient in enumerate(order):
                pair = (seed_shares[position], key_shares[position])
                if recipient == self._id:
                    self._held[self._id] = pair
                    continue
                payload = SharePayload(self._session, self._id, recipient, *pair)
                key = share_encryption_key(
                    self._cipher_key,
                    _public(message.keys[recipient].cipher),
                    session_id=self._session,
                    sender=self._id,
                    recipient=recipient,
                )
                ciphertexts[recipient] = seal_share(
                    key,
                    payload.to_bytes(),
                    session_id=self._session,
                    sender=self._id,
                    recipient=recipient,
                    random_bytes=self._random,
                )
            self._stage = _Stage.SHARED
            return ShareKeys(self._session, self._id, ciphertexts).to_bytes()

    def mask_input(self, shares: bytes, vector: NDArray[np.uint64]) -> bytes:
        """Round 2: keep the shares sealed for this participant, mask ``vector``.

        ``y_u = x_u + PRG(b_u) + sum_{v in U2, v > u} PRG(s_uv)
        - sum_{v in U2, v < u} PRG(s_uv)`` modulo 2^64, where U2 is every
        participant whose shares arrived. Every share is authenticated before
        anything is masked.

        Parameters
        ----------
        shares : bytes
            The aggregator's `ForwardedShares` for this participant.
        vector : numpy.ndarray of uint64
            The encoded input (`encode_ints` or `encode_floats`) of the
            roster's vector length.

        Returns
        -------
        bytes
            The encoded `MaskedInput`.

        Raises
        ------
        TypeError
            If ``vector`` is not a one-dimensional numpy uint64 array.
        ValueError
            If ``vector`` is not of the roster's length (the session
            continues: call again with a correct vector).
        TooFewParticipants
            If U2 is smaller than the threshold or ``min_participants``.
        DecryptionFailed
            If a sealed share does not authenticate.
        ProtocolViolation
            If the message is malformed, misaddressed, out of order, or names
            participants outside the roster.
        """
        if not is_uint64_vector(vector):
            raise TypeError("the input must be a numpy uint64 vector (see encode_ints)")
        with self._step(_Stage.SHARED):
            roster = self._require_roster()
            if len(vector) != roster.vector_length:
                raise ValueError(
                    f"the input must be a vector of {roster.vector_length} words"
                )
            message = ForwardedShares.from_bytes(shares)
            self._check_session(message.session_id)
            if message.recipient != self._id:
                raise ProtocolViolation(
                    f"shares addressed to participant {message.recipient}"
                )
            group = message.participants
            if not group <= frozenset(roster.keys):
                raise ProtocolViolation("shares from participants outside the roster")
            self._check_count("participants that shared keys", len(group))
            index = sorted(roster.keys).index(self._id) + 1
            for sender, sealed in message.ciphertexts.items():
                key = share_encryption_key(
                    self._cipher_key,
                    _public(roster.keys[sender].cipher),
                    session_id=self._session,
                    sender=sender,
                    recipient=self._id,
                )
                payload = SharePayload.from_bytes(
                    open_share(
                        key,
                        sealed,
                        session_id=self._session,
                        sender=sender,
                        recipient=self._id,
                    )
                )
                if (
                    payload.session_id != self._session
                    or (payload.sender, payload.recipient) != (sender, self._id)
                    or payload.self_mask_share.index != index
                    or payload.mask_key_share.index != index
                ):
                    raise ProtocolViolation(
                        f"the shares from participant {sender} are not for this slot"
                    )
                self._held[sender] = (payload.self_mask_share, payload.mask_key_share)
            masked = np.array(vector, dtype=np.uint64, copy=True, order="C")
            add_keystream(
                masked,
                self_mask_key(
                    self._self_seed, session_id=self._session, owner=self._id
                ),
            )
            for peer in sorted(group - {self._id}):
                key = pairwise_mask_key(
                    self._mask_key,
                    _public(roster.keys[peer].mask),
                    session_id=self._session,
                    pair=(self._id, peer),
                )
                add_keystream(masked, key, subtract=peer < self._id)
            self._shared_with = group
            self._stage = _Stage.MASKED
            return MaskedInput(self._session, self._id, masked).to_bytes()

    def unmask(self, request: bytes) -> bytes:
        """Round 3: reveal shares of b_v for survivors and of s_v^SK for dropouts.

        The participant remembers what it revealed: a later request that
        would reveal the other secret of some participant (its mask key after
        its self-mask seed, or the reverse) is refused, since both together
        unmask that participant's input. An identical request may be repeated.

        Parameters
        ----------
        request : bytes
            The aggregator's `UnmaskRequest`.

        Returns
        -------
        bytes
            The encoded `Unmasking`.

        Raises
        ------
        TooFewParticipants
            If fewer survivors remain than the threshold or ``min_participants``.
        ProtocolViolation
            If the request is malformed or out of order, names survivors
            outside U2, omits this participant, or would reveal both secrets
            of one participant.
        """
        with self._step(_Stage.MASKED):
            message = UnmaskRequest.from_bytes(request)
            self._check_session(message.session_id)
            survivors = message.survivors
            if not survivors <= self._shared_with:
                raise ProtocolViolation(
                    "survivors outside the participants that shared keys"
                )
            if self._id not in survivors:
                raise ProtocolViolation(
                    "this participant sent its masked input but is listed as dropped"
                )
            self._check_count("survivors", len(survivors))
            dropped = self._shared_with - survivors
            both = (survivors & self._revealed_keys) | (dropped & self._revealed_seeds)
            if both:
                raise ProtocolViolation(
                    "refusing to reveal both the self-mask seed and the mask key of "
                    f"participant(s) {sorted(both)}"
                )
            self._revealed_seeds |= survivors
            self._revealed_keys |= dropped
            return Unmasking(
                self._session,
                self._id,
                {v: self._held[v][0] for v in survivors},
                {v: self._held[v][1] for v in dropped},
            ).to_bytes()

    @contextmanager
    def _step(self, expected: _Stage) -> Iterator[None]:
        """Run one step from ``expected``; any ``SecAggError`` aborts the session."""
        if self._stage is not expected:
            raise ProtocolViolation(
                f"participant {self._id} has {self._stage.value}: "
                f"this step needs '{expected.value}'"
            )
        try:
            yield
        except SecAggError:
            self._stage = _Stage.ABORTED
            raise

    def _check_session(self, session_id: bytes) -> None:
        if session_id != self._session:
            raise ProtocolViolation("a message of another session")

    def _require_roster(self) -> KeyRoster:
        if self._roster is None:  # pragma: no cover - guarded by the stage
            raise ProtocolViolation("no roster yet")
        return self._roster

    def _check_count(self, what: str, have: int) -> None:
        roster = self._require_roster()
        need = max(roster.threshold, self._min)
        if have < need:
            raise TooFewParticipants(what, have, need)

    def _check_roster(self, roster: KeyRoster) -> None:
        if roster.keys.get(self._id) != self.public_keys:
            raise ProtocolViolation(
                "the roster omits or alters this participant's keys"
            )
        problem = threshold_problem(roster.threshold, len(roster.keys))
        if problem is not None:
            raise ProtocolViolation(f"the roster's {problem}")
        need = max(roster.threshold, self._min)
        if len(roster.keys) < need:
            raise TooFewParticipants(
                "participants in the roster", len(roster.keys), need
            )
        advertised = [
            k for keys in roster.keys.values() for k in (keys.cipher, keys.mask)
        ]
        if len(set(advertised)) != len(advertised):
            raise ProtocolViolation("the roster repeats a public key")


def _public(raw: bytes) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(raw)
