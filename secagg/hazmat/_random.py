"""Sources of random bytes: the operating system's, or a seeded stream for tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: ``random_bytes(n)`` returns ``n`` unpredictable bytes; ``os.urandom`` in production.
RandomBytes: TypeAlias = Callable[[int], bytes]

_SEEDED_INFO = b"accord secagg v1 seeded random "


def seeded_random_bytes(seed: bytes, label: bytes) -> RandomBytes:
    """Return a deterministic source of random-looking bytes, for tests only.

    .. warning::
        Every key, seed and nonce drawn from this source is reproducible by
        anyone who knows ``seed``. It exists so that tests and benchmarks can
        replay a session exactly; a deployment passes ``os.urandom``.

    The stream is AES-256-CTR under ``HKDF-SHA256(seed, info=... || label)``, so
    distinct labels give independent streams from one seed.

    Parameters
    ----------
    seed : bytes
        The test seed (any length; at least 16 bytes recommended).
    label : bytes
        Separates the streams of different consumers (e.g. one per participant).

    Returns
    -------
    RandomBytes
        A stateful callable returning the next ``n`` bytes of the stream.
    """
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=_SEEDED_INFO + label
    ).derive(seed)
    stream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()

    def random_bytes(n: int) -> bytes:
        if n < 0:
            raise ValueError(f"cannot draw {n} bytes")
        return stream.update(bytes(n))

    return random_bytes
