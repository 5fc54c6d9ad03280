"""Hazardous materials: the building blocks under ``secagg``'s protocol.

.. warning::
    These functions are correct only as the protocol combines them: a mask key
    used twice, a nonce source that repeats, shares of one secret released
    above the threshold, or the seeded random source outside a test each break
    secrecy silently. Use `secagg.Participant` and `secagg.Aggregator`; this
    subpackage is public for tests, benchmarks and review.

What it holds, all on ``cryptography`` primitives (no hand-written cipher):

- key schedule: X25519 agreements, HKDF-SHA256 with ``salt = session id`` and
  one ``info`` per use (pairwise masks, self masks, share encryption);
- mask generator: AES-256-CTR keystream (zero nonce, fresh key per stream)
  read as little-endian uint64 words and added modulo 2^64;
- Shamir t-of-n sharing of 32-byte secrets over GF(2^521 - 1), indices 1..n,
  reconstruction by Lagrange interpolation at 0, in Python integers;
- AES-256-GCM sealing of shares with associated data (session, sender,
  recipient) and a random 12-byte nonce;
- a seeded random source that makes a whole session reproducible (tests only).
"""

from secagg.hazmat._kdf import PAIRWISE_MASK_INFO as PAIRWISE_MASK_INFO
from secagg.hazmat._kdf import SELF_MASK_INFO as SELF_MASK_INFO
from secagg.hazmat._kdf import SHARE_ENCRYPTION_INFO as SHARE_ENCRYPTION_INFO
from secagg.hazmat._kdf import pairwise_mask_key as pairwise_mask_key
from secagg.hazmat._kdf import self_mask_key as self_mask_key
from secagg.hazmat._kdf import share_encryption_key as share_encryption_key
from secagg.hazmat._prg import MASK_KEY_SIZE as MASK_KEY_SIZE
from secagg.hazmat._prg import add_keystream as add_keystream
from secagg.hazmat._prg import expand_seed as expand_seed
from secagg.hazmat._random import RandomBytes as RandomBytes
from secagg.hazmat._random import seeded_random_bytes as seeded_random_bytes
from secagg.hazmat._seal import NONCE_SIZE as NONCE_SIZE
from secagg.hazmat._seal import open_share as open_share
from secagg.hazmat._seal import seal_share as seal_share
from secagg.hazmat._seal import share_associated_data as share_associated_data
from secagg.hazmat._shamir import ELEMENT_SIZE as ELEMENT_SIZE
from secagg.hazmat._shamir import PRIME as PRIME
from secagg.hazmat._shamir import SECRET_SIZE as SECRET_SIZE
from secagg.hazmat._shamir import Share as Share
from secagg.hazmat._shamir import combine_shares as combine_shares
from secagg.hazmat._shamir import interpolate_at_zero as interpolate_at_zero
from secagg.hazmat._shamir import split_secret as split_secret

__all__ = [
    "ELEMENT_SIZE",
    "MASK_KEY_SIZE",
    "NONCE_SIZE",
    "PAIRWISE_MASK_INFO",
    "PRIME",
    "SECRET_SIZE",
    "SELF_MASK_INFO",
    "SHARE_ENCRYPTION_INFO",
    "RandomBytes",
    "Share",
    "add_keystream",
    "combine_shares",
    "expand_seed",
    "interpolate_at_zero",
    "open_share",
    "pairwise_mask_key",
    "seal_share",
    "seeded_random_bytes",
    "self_mask_key",
    "share_associated_data",
    "share_encryption_key",
    "split_secret",
]
