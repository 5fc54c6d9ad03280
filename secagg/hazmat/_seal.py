"""AES-256-GCM for shares in transit, bound to (session, sender, recipient)."""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from secagg._errors import DecryptionFailed
from secagg.hazmat._random import RandomBytes

#: Bytes of the random nonce that precedes each ciphertext.
NONCE_SIZE = 12
_TAG_SIZE = 16
_AD_LABEL = b"accord secagg v1 share"


def share_associated_data(session_id: bytes, sender: int, recipient: int) -> bytes:
    """Return the associated data that binds a ciphertext to its route.

    Parameters
    ----------
    session_id : bytes
        The session.
    sender : int
        The participant who encrypted.
    recipient : int
        The participant meant to decrypt.

    Returns
    -------
    bytes
        ``label || len(session_id) || session_id || sender || recipient``.
    """
    return (
        _AD_LABEL
        + bytes([len(session_id)])
        + session_id
        + struct.pack(">II", sender, recipient)
    )


def seal_share(
    key: bytes,
    plaintext: bytes,
    *,
    session_id: bytes,
    sender: int,
    recipient: int,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """Encrypt ``plaintext`` for ``recipient``: ``nonce || AES-256-GCM(...)``.

    Parameters
    ----------
    key : bytes
        The 32-byte key from `share_encryption_key`.
    plaintext : bytes
        The serialised shares.
    session_id : bytes
        The session, bound as associated data.
    sender : int
        The encrypting participant, bound as associated data.
    recipient : int
        The decrypting participant, bound as associated data.
    random_bytes : RandomBytes
        Source of the 12-byte nonce.

    Returns
    -------
    bytes
        The nonce followed by the ciphertext and its 16-byte tag.
    """
    nonce = random_bytes(NONCE_SIZE)
    data = share_associated_data(session_id, sender, recipient)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, data)


def open_share(
    key: bytes, sealed: bytes, *, session_id: bytes, sender: int, recipient: int
) -> bytes:
    """Decrypt and authenticate the output of `seal_share`.

    Parameters
    ----------
    key : bytes
        The 32-byte key from `share_encryption_key`.
    sealed : bytes
        ``nonce || ciphertext || tag``.
    session_id : bytes
        The session it must belong to.
    sender : int
        The participant it must come from.
    recipient : int
        The participant it must be addressed to.

    Returns
    -------
    bytes
        The plaintext.

    Raises
    ------
    DecryptionFailed
        If the ciphertext was altered, truncated, or sealed for another route
        or session. The message says which sender, nothing about the content.
    """
    if len(sealed) < NONCE_SIZE + _TAG_SIZE:
        raise DecryptionFailed(f"the shares from participant {sender} are truncated")
    data = share_associated_data(session_id, sender, recipient)
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], data)
    except InvalidTag:
        raise DecryptionFailed(
            f"the shares from participant {sender} do not authenticate"
        ) from None
