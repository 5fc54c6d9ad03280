r"""The protocol's messages: frozen dataclasses with a canonical byte encoding.

Each message round-trips through ``to_bytes()`` and ``from_bytes()``; the
transport (Accord's gRPC, or the in-memory driver) only moves the bytes.
Participant-to-aggregator messages name their ``sender``, which the transport
must match against the authenticated peer; aggregator-to-participant messages
are broadcasts or name their ``recipient``.

=====  ========================  =============================================
round  message                   direction and content
=====  ========================  =============================================
0      `AdvertiseKeys`           u -> A: c_u^PK (share encryption), s_u^PK (masks)
0->1   `KeyRoster`               A -> all of U1: threshold, vector length, keys
1      `ShareKeys`               u -> A: per v, sealed shares of b_u and s_u^SK
1->2   `ForwardedShares`         A -> v in U2: the sealed shares addressed to v
2      `MaskedInput`             u -> A: y_u = x_u + masks (mod 2^64)
2->3   `UnmaskRequest`           A -> all of U3: the survivor list U3
3      `Unmasking`               u -> A: shares of b_v (v in U3), s_v^SK (v in U2 \ U3)
=====  ========================  =============================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

from secagg._errors import ProtocolViolation
from secagg._rules import MAX_VECTOR_LENGTH
from secagg._wire import MAGIC, SHARE_SIZE, VERSION, Reader, Writer
from secagg.hazmat import NONCE_SIZE, Share

_ADVERTISE_KEYS = 1
_KEY_ROSTER = 2
_SHARE_KEYS = 3
_FORWARDED_SHARES = 4
_MASKED_INPUT = 5
_UNMASK_REQUEST = 6
_UNMASKING = 7
_SHARE_PAYLOAD = 8

#: Bytes of an X25519 public key.
PUBLIC_KEY_SIZE = 32
# A sealed share: nonce, the payload (header, ids, two shares), GCM tag; with margin.
_MAX_SEALED = 1024


@dataclass(frozen=True)
class PublicKeys:
    """The two X25519 public keys a participant advertises for one session.

    Parameters
    ----------
    cipher : bytes
        c_u^PK, for the keys that encrypt shares between participants.
    mask : bytes
        s_u^PK, for the pairwise mask keys.
    """

    cipher: bytes
    mask: bytes


@dataclass(frozen=True)
class AdvertiseKeys:
    """Round 0, participant to aggregator: the participant's public keys.

    Parameters
    ----------
    session_id : bytes
        The session.
    sender : int
        The participant.
    keys : PublicKeys
        Its fresh public keys for this session.
    """

    session_id: bytes
    sender: int
    keys: PublicKeys

    def to_bytes(self) -> bytes:
        """Encode the message."""
        writer = Writer(_ADVERTISE_KEYS, self.session_id)
        writer.u32(self.sender)
        writer.raw(self.keys.cipher)
        writer.raw(self.keys.mask)
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> AdvertiseKeys:
        """Decode a message; raise `ProtocolViolation` if it is malformed."""
        reader = Reader(data, _ADVERTISE_KEYS, "AdvertiseKeys")
        sender = reader.u32()
        keys = PublicKeys(reader.raw(PUBLIC_KEY_SIZE), reader.raw(PUBLIC_KEY_SIZE))
        reader.done()
        return cls(reader.session_id, sender, keys)


@dataclass(frozen=True)
class KeyRoster:
    """Round 0 to 1, aggregator to every participant in U1: who takes part.

    Parameters
    ----------
    session_id : bytes
        The session.
    threshold : int
        Shares needed to reconstruct a secret (t of n = len(keys)).
    vector_length : int
        Words in every input vector.
    keys : Mapping[int, PublicKeys]
        U1: every participant that advertised keys, with its keys.
    """

    session_id: bytes
    threshold: int
    vector_length: int
    keys: Mapping[int, PublicKeys]

    def to_bytes(self) -> bytes:
        """Encode the message."""
        writer = Writer(_KEY_ROSTER, self.session_id)
        writer.u32(self.threshold)
        writer.u64(self.vector_length)
        writer.u32(len(self.keys))
        for participant in sorted(self.keys):
            writer.u32(participant)
            writer.raw(self.keys[participant].cipher)
            writer.raw(self.keys[participant].mask)
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyRoster:
        """Decode a message; raise `ProtocolViolation` if it is malformed."""
        reader = Reader(data, _KEY_ROSTER, "KeyRoster")
        threshold = reader.u32()
        vector_length = reader.u64()
        if not 1 <= vector_length <= MAX_VECTOR_LENGTH:
            reader.fail(f"vector length {vector_length}")
        keys: dict[int, PublicKeys] = {}
        previous = -1
        for _ in range(reader.count(4 + 2 * PUBLIC_KEY_SIZE)):
            previous = reader.increasing_id(previous)
            keys[previous] = PublicKeys(
                reader.raw(PUBLIC_KEY_SIZE), reader.raw(PUBLIC_KEY_SIZE)
            )
        reader.done()
        return cls(reader.session_id, threshold, vector_length, keys)


@dataclass(frozen=True)
class ShareKeys:
    """Round 1, participant to aggregator: sealed shares for every other participant.

    Parameters
    ----------
    session_id : bytes
        The session.
    sender : int
        The participant whose secrets are shared.
    ciphertexts : Mapping[int, bytes]
        Recipient id to the AES-GCM-sealed `SharePayload` for that recipient.
    """

    session_id: bytes
    sender: int
    ciphertexts: Mapping[int, bytes]

    def to_bytes(self) -> bytes:
        """Encode the message."""
        writer = Writer(_SHARE_KEYS, self.session_id)
        writer.u32(self.sender)
        _write_sealed(writer, self.ciphertexts)
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> ShareKeys:
        """Decode a message; raise `ProtocolViolation` if it is malformed."""
        reader = Reader(data, _SHARE_KEYS, "ShareKeys")
        sender = reader.u32()
        ciphertexts = _read_sealed(reader)
        reader.done()
        return cls(reader.session_id, sender, ciphertexts)


@dataclass(frozen=True)
class ForwardedShares:
    """Round 1 to 2, aggregator to one participant in U2: the shares sealed for it.

    Parameters
    ----------
    session_id : bytes
        The session.
    recipient : int
        The participant the shares are sealed for.
    ciphertexts : Mapping[int, bytes]
        Sender id to its sealed `SharePayload`, for every other sender in U2.
    """

    session_id: bytes
    recipient: int
    ciphertexts: Mapping[int, bytes]

    @property
    def participants(self) -> frozenset[int]:
        """U2: the senders of the shares and the recipient."""
        return frozenset(self.ciphertexts) | {self.recipient}

    def to_bytes(self) -> bytes:
        """Encode the message."""
        writer = Writer(_FORWARDED_SHARES, self.session_id)
        writer.u32(self.recipient)
        _write_sealed(writer, self.ciphertexts)
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> ForwardedShares:
        """Decode a message; raise `ProtocolViolation` if it is malformed."""
        reader = Reader(data, _FORWARDED_SHARES, "ForwardedShares")
        recipient = reader.u32()
        ciphertexts = _read_sealed(reader)
        reader.done()
        return cls(reader.session_id, recipient, ciphertexts)


@dataclass(frozen=True, eq=False)
class MaskedInput:
    """Round 2, participant to aggregator: the masked input vector y_u.

    Parameters
    ----------
    session_id : bytes
        The session.
    sender : int
        The participant.
    vector : numpy.ndarray of uint64
        ``x_u + PRG(b_u) + sum_{v>u} PRG(s_uv) - sum_{v<u} PRG(s_uv)`` mod 2^64.
    """

    session_id: bytes
    sender: int
    vector: NDArray[np.uint64]

    def to_bytes(self) -> bytes:
        """Encode the message (header, then 8 bytes per word)."""
        writer = Writer(_MASKED_INPUT, self.session_id)
        writer.u32(self.sender)
        writer.words(self.vector)
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> MaskedInput:
        """Decode a message; the vector is a read-only view of ``data``."""
        reader = Reader(data, _MASKED_INPUT, "MaskedInput")
        sender = reader.u32()
        vector = reader.words()
        reader.done()
        return cls(reader.session_id, sender, vector)


@dataclass(frozen=True)
class UnmaskRequest:
    """Round 2 to 3, aggregator to every participant in U3: who survived.

    Parameters
    ----------
    session_id : bytes
        The session.
    survivors : frozenset of int
        U3: the participants whose masked input arrived. Everyone else in U2
        is treated as dropped.
    """

    session_id: bytes
    survivors: frozenset[int]

    def to_bytes(self) -> bytes:
        """Encode the message."""
        writer = Writer(_UNMASK_REQUEST, self.session_id)
        writer.ids(self.survivors)
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> UnmaskRequest:
        """Decode a message; raise `ProtocolViolation` if it is malformed."""
        reader = Reader(data, _UNMASK_REQUEST, "UnmaskRequest")
        survivors = reader.ids()
        reader.done()
        return cls(reader.session_id, survivors)


@dataclass(frozen=True)
class Unmasking:
    r"""Round 3, participant to aggregator: the shares that remove the masks.

    Parameters
    ----------
    session_id : bytes
        The session.
    sender : int
        The participant revealing the shares it holds.
    self_mask_shares : Mapping[int, Share]
        For every survivor v in U3, the sender's share of b_v.
    mask_key_shares : Mapping[int, Share]
        For every dropped v in U2 \ U3, the sender's share of s_v^SK.
    """

    session_id: bytes
    sender: int
    self_mask_shares: Mapping[int, Share]
    mask_key_shares: Mapping[int, Share]

    def to_bytes(self) -> bytes:
        """Encode the message."""
        writer = Writer(_UNMASKING, self.session_id)
        writer.u32(self.sender)
        for shares in (self.self_mask_shares, self.mask_key_shares):
            writer.u32(len(shares))
            for owner in sorted(shares):
                writer.u32(owner)
                writer.share(shares[owner])
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> Unmasking:
        """Decode a message; raise `ProtocolViolation` if it is malformed."""
        reader = Reader(data, _UNMASKING, "Unmasking")
        sender = reader.u32()
        tables: list[dict[int, Share]] = []
        for _ in range(2):
            table: dict[int, Share] = {}
            previous = -1
            for _ in range(reader.count(4 + SHARE_SIZE)):
                previous = reader.increasing_id(previous)
                table[previous] = reader.share()
            tables.append(table)
        reader.done()
        return cls(reader.session_id, sender, tables[0], tables[1])


@dataclass(frozen=True)
class SharePayload:
    """The plaintext inside one sealed share: what ``sender`` gives ``recipient``.

    Parameters
    ----------
    session_id : bytes
        The session (also bound as associated data).
    sender : int
        The participant whose secrets these shares are of.
    recipient : int
        The participant who holds them.
    self_mask_share : Share
        The recipient's share of the sender's self-mask seed b_u.
    mask_key_share : Share
        The recipient's share of the sender's mask private key s_u^SK.
    """

    session_id: bytes
    sender: int
    recipient: int
    self_mask_share: Share
    mask_key_share: Share

    def to_bytes(self) -> bytes:
        """Encode the plaintext."""
        writer = Writer(_SHARE_PAYLOAD, self.session_id)
        writer.u32(self.sender)
        writer.u32(self.recipient)
        writer.share(self.self_mask_share)
        writer.share(self.mask_key_share)
        return writer.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> SharePayload:
        """Decode a plaintext; raise `ProtocolViolation` if it is malformed."""
        reader = Reader(data, _SHARE_PAYLOAD, "SharePayload")
        sender, recipient = reader.u32(), reader.u32()
        self_mask_share, mask_key_share = reader.share(), reader.share()
        reader.done()
        return cls(
            reader.session_id, sender, recipient, self_mask_share, mask_key_share
        )


#: Any message of the protocol.
Message: TypeAlias = (
    AdvertiseKeys
    | KeyRoster
    | ShareKeys
    | ForwardedShares
    | MaskedInput
    | UnmaskRequest
    | Unmasking
)

_PARSERS: dict[int, Callable[[bytes], Message]] = {
    _ADVERTISE_KEYS: AdvertiseKeys.from_bytes,
    _KEY_ROSTER: KeyRoster.from_bytes,
    _SHARE_KEYS: ShareKeys.from_bytes,
    _FORWARDED_SHARES: ForwardedShares.from_bytes,
    _MASKED_INPUT: MaskedInput.from_bytes,
    _UNMASK_REQUEST: UnmaskRequest.from_bytes,
    _UNMASKING: Unmasking.from_bytes,
}


def parse_message(data: bytes) -> Message:
    """Decode any protocol message, dispatching on its kind byte.

    Parameters
    ----------
    data : bytes
        The message as received.

    Returns
    -------
    Message
        The decoded message.

    Raises
    ------
    ProtocolViolation
        If it is not a well-formed message of a known kind.
    """
    header = len(MAGIC) + 2
    if len(data) < header or data[: len(MAGIC)] != MAGIC or data[4] != VERSION:
        raise ProtocolViolation("not a secure-aggregation message of this version")
    parser = _PARSERS.get(data[header - 1])
    if parser is None:
        raise ProtocolViolation(f"unknown message kind {data[header - 1]}")
    return parser(data)


def _write_sealed(writer: Writer, ciphertexts: Mapping[int, bytes]) -> None:
    writer.u32(len(ciphertexts))
    for participant in sorted(ciphertexts):
        writer.u32(participant)
        writer.blob(ciphertexts[participant])


def _read_sealed(reader: Reader) -> dict[int, bytes]:
    ciphertexts: dict[int, bytes] = {}
    previous = -1
    for _ in range(reader.count(8 + NONCE_SIZE)):
        previous = reader.increasing_id(previous)
        ciphertexts[previous] = reader.blob(_MAX_SEALED)
    return ciphertexts
