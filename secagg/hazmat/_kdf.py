"""The key schedule: X25519 agreements and HKDF-SHA256 with one ``info`` per use."""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from secagg._errors import ProtocolViolation

_LABEL = b"accord secagg v1 "
#: HKDF ``info`` prefix of the pairwise mask keys s_uv (then min(u, v), max(u, v)).
PAIRWISE_MASK_INFO = _LABEL + b"pairwise mask"
#: HKDF ``info`` prefix of the self-mask keys from b_u (then u).
SELF_MASK_INFO = _LABEL + b"self mask"
#: HKDF ``info`` prefix of the share-encryption keys (then sender, recipient).
SHARE_ENCRYPTION_INFO = _LABEL + b"share encryption"


def pairwise_mask_key(
    private_key: X25519PrivateKey,
    peer_public_key: X25519PublicKey,
    *,
    session_id: bytes,
    pair: tuple[int, int],
) -> bytes:
    """Derive the mask key s_uv that participants u and v share in a session.

    ``HKDF-SHA256(X25519(s_u, s_v^PK), salt=session_id, info=PAIRWISE_MASK_INFO
    || min(u, v) || max(u, v))``: both ends, and the aggregator after
    reconstructing a dropped participant's key, get the same 32 bytes.

    Parameters
    ----------
    private_key : X25519PrivateKey
        The mask private key of one end.
    peer_public_key : X25519PublicKey
        The mask public key of the other end.
    session_id : bytes
        The session (HKDF salt).
    pair : tuple of int
        The two participant ids, in any order.

    Returns
    -------
    bytes
        A 32-byte AES-256 key for `expand_seed`.

    Raises
    ------
    ValueError
        If the two ids are equal.
    ProtocolViolation
        If the agreement yields the all-zero secret (a low-order public key).
    """
    low, high = sorted(pair)
    if low == high:
        raise ValueError("a pairwise mask needs two distinct participants")
    secret = _exchange(private_key, peer_public_key)
    return _hkdf(secret, session_id, PAIRWISE_MASK_INFO + _ids(low, high))


def self_mask_key(seed: bytes, *, session_id: bytes, owner: int) -> bytes:
    """Derive the key of participant ``owner``'s self mask from its seed b_u.

    Parameters
    ----------
    seed : bytes
        The 32-byte self-mask seed b_u (the secret that is Shamir-shared).
    session_id : bytes
        The session (HKDF salt).
    owner : int
        The participant the seed belongs to.

    Returns
    -------
    bytes
        A 32-byte AES-256 key for `expand_seed`.
    """
    return _hkdf(seed, session_id, SELF_MASK_INFO + _ids(owner))


def share_encryption_key(
    private_key: X25519PrivateKey,
    peer_public_key: X25519PublicKey,
    *,
    session_id: bytes,
    sender: int,
    recipient: int,
) -> bytes:
    """Derive the AES-256-GCM key for shares sent from ``sender`` to ``recipient``.

    Keys are directional (``info`` names sender then recipient), so each key
    encrypts exactly one message per session.

    Parameters
    ----------
    private_key : X25519PrivateKey
        The cipher private key of the party computing the key (either end).
    peer_public_key : X25519PublicKey
        The cipher public key of the other end.
    session_id : bytes
        The session (HKDF salt).
    sender : int
        The participant who encrypts.
    recipient : int
        The participant who decrypts.

    Returns
    -------
    bytes
        A 32-byte AES-256-GCM key.

    Raises
    ------
    ProtocolViolation
        If the agreement yields the all-zero secret.
    """
    secret = _exchange(private_key, peer_public_key)
    return _hkdf(secret, session_id, SHARE_ENCRYPTION_INFO + _ids(sender, recipient))


def _exchange(private_key: X25519PrivateKey, peer_public_key: X25519PublicKey) -> bytes:
    try:
        return private_key.exchange(peer_public_key)
    except ValueError:
        raise ProtocolViolation(
            "a public key is of low order: key agreement gives the zero secret"
        ) from None


def _hkdf(secret: bytes, session_id: bytes, info: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=session_id, info=info
    ).derive(secret)


def _ids(*ids: int) -> bytes:
    return b"\x00" + struct.pack(f">{len(ids)}I", *ids)
