"""The mask generator: an AES-256-CTR keystream read as uint64 words (mod 2^64)."""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

#: Size in bytes of a mask key (AES-256).
MASK_KEY_SIZE = 32

# The keystream is produced and applied in chunks of 2^15 words (256 KiB): one
# cached zero block is encrypted per chunk, the result stays in cache while it is
# added, and memory does not grow with the vector (measured: 2.3 ms per 10^6
# words on the 2-core machine, against 3.4 ms for one keystream of the full size).
_CHUNK_WORDS = 1 << 15
_ZERO_CHUNK = bytes(8 * _CHUNK_WORDS)
_WORD = np.dtype("<u8")


def expand_seed(key: bytes, length: int) -> NDArray[np.uint64]:
    """Expand a 32-byte key into ``length`` pseudo-random uint64 words.

    The words are the keystream of AES-256-CTR under ``key`` with an all-zero
    initial counter block, read little-endian. A zero nonce is safe only
    because every key is derived afresh for one (session, purpose, party) and
    used for one stream.

    Parameters
    ----------
    key : bytes
        A `MASK_KEY_SIZE`-byte key from the key schedule (never reused).
    length : int
        Number of words.

    Returns
    -------
    numpy.ndarray of uint64
        The mask, uniform over ``[0, 2^64)`` in each word.
    """
    words = np.zeros(length, dtype=np.uint64)
    add_keystream(words, key)
    return words


def add_keystream(
    target: NDArray[np.uint64], key: bytes, *, subtract: bool = False
) -> None:
    """Add (or subtract) the mask of ``key`` to ``target`` in place, mod 2^64.

    Equivalent to ``target += expand_seed(key, len(target))`` without the
    intermediate array.

    Parameters
    ----------
    target : numpy.ndarray of uint64
        A writable, contiguous, one-dimensional vector.
    key : bytes
        A `MASK_KEY_SIZE`-byte key.
    subtract : bool
        Subtract the mask instead of adding it.

    Raises
    ------
    TypeError
        If ``target`` is not a uint64 vector.
    ValueError
        If ``key`` has the wrong size or ``target`` is not writable and contiguous.
    """
    if not _is_uint64_array(target):
        raise TypeError("the target of a mask must be a numpy uint64 array")
    if target.ndim != 1 or not target.flags.c_contiguous or not target.flags.writeable:
        raise ValueError("the target of a mask must be a writable contiguous vector")
    if len(key) != MASK_KEY_SIZE:
        raise ValueError(f"a mask key has {MASK_KEY_SIZE} bytes, not {len(key)}")
    stream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    operation = np.subtract if subtract else np.add
    length = len(target)
    zeros = memoryview(_ZERO_CHUNK)
    for start in range(0, length, _CHUNK_WORDS):
        stop = min(length, start + _CHUNK_WORDS)
        block = stream.update(zeros[: 8 * (stop - start)])
        segment = target[start:stop]
        operation(segment, np.frombuffer(block, dtype=_WORD), out=segment)


def _is_uint64_array(value: object) -> bool:
    return isinstance(value, np.ndarray) and value.dtype == np.uint64
