"""Shamir secret sharing of 32-byte secrets over the prime field GF(2^521 - 1)."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass

from secagg._errors import ProtocolViolation, TooFewParticipants
from secagg.hazmat._random import RandomBytes

#: The Mersenne prime 2^521 - 1: every 32-byte secret is a field element.
PRIME = (1 << 521) - 1
#: Size in bytes of a shared secret (a self-mask seed or an X25519 private key).
SECRET_SIZE = 32
#: Size in bytes of a field element on the wire (big-endian).
ELEMENT_SIZE = 66

_ELEMENT_MASK = (1 << 521) - 1


@dataclass(frozen=True)
class Share:
    """One point ``(index, value)`` of a sharing polynomial.

    Parameters
    ----------
    index : int
        The evaluation point ``x``, from 1 to the number of shares.
    value : int
        The polynomial's value at ``index``, in ``[0, PRIME)``.
    """

    index: int
    value: int


def split_secret(
    secret: bytes,
    *,
    threshold: int,
    shares: int,
    random_bytes: RandomBytes = os.urandom,
) -> list[Share]:
    """Split ``secret`` so that any ``threshold`` of ``shares`` shares recover it.

    The secret is the constant term of a random polynomial of degree
    ``threshold - 1``; share ``i`` is its value at ``x = i`` for ``i = 1..shares``.
    Fewer than ``threshold`` shares are uniformly distributed whatever the secret.

    Parameters
    ----------
    secret : bytes
        Exactly `SECRET_SIZE` bytes.
    threshold : int
        Shares needed to reconstruct, ``1 <= threshold <= shares``.
    shares : int
        Number of shares to make.
    random_bytes : RandomBytes
        Source of the polynomial's random coefficients.

    Returns
    -------
    list of Share
        ``shares`` shares with indices ``1..shares``.

    Raises
    ------
    ValueError
        If ``secret`` has the wrong size or ``threshold``/``shares`` are out of range.
    """
    if len(secret) != SECRET_SIZE:
        raise ValueError(f"a secret has {SECRET_SIZE} bytes, not {len(secret)}")
    if not 1 <= threshold <= shares:
        raise ValueError(f"need 1 <= threshold ({threshold}) <= shares ({shares})")
    coefficients = [int.from_bytes(secret, "big")]
    coefficients += [_random_element(random_bytes) for _ in range(threshold - 1)]
    return [Share(x, _evaluate(coefficients, x)) for x in range(1, shares + 1)]


def interpolate_at_zero(shares: Sequence[Share]) -> int:
    """Return the value at 0 of the polynomial through ``shares`` (Lagrange).

    With fewer shares than the sharing's threshold the result is a uniformly
    random field element, unrelated to the secret.

    Parameters
    ----------
    shares : sequence of Share
        At least one share, with distinct indices.

    Returns
    -------
    int
        A field element in ``[0, PRIME)``.

    Raises
    ------
    TooFewParticipants
        If ``shares`` is empty.
    ProtocolViolation
        If indices repeat or a share lies outside the field.
    """
    if not shares:
        raise TooFewParticipants("shares", 0, 1)
    indices = tuple(share.index for share in shares)
    if len(set(indices)) != len(indices):
        raise ProtocolViolation("two shares have the same index")
    for share in shares:
        if not (0 < share.index < PRIME and 0 <= share.value < PRIME):
            raise ProtocolViolation("a share lies outside the field")
    weights = _lagrange_at_zero(indices)
    return sum(w * s.value for w, s in zip(weights, shares, strict=True)) % PRIME


def combine_shares(shares: Sequence[Share], *, threshold: int) -> bytes:
    """Reconstruct a `SECRET_SIZE`-byte secret from at least ``threshold`` shares.

    The ``threshold`` shares with the lowest indices are used.

    Parameters
    ----------
    shares : sequence of Share
        Shares of one secret, distinct indices.
    threshold : int
        The threshold the secret was split with.

    Returns
    -------
    bytes
        The secret.

    Raises
    ------
    TooFewParticipants
        If fewer than ``threshold`` shares are given.
    ProtocolViolation
        If indices repeat, a share lies outside the field, or the shares do not
        interpolate to a `SECRET_SIZE`-byte value (they are inconsistent).
    """
    if len(shares) < threshold:
        raise TooFewParticipants("shares of a secret", len(shares), threshold)
    if len({share.index for share in shares}) != len(shares):
        raise ProtocolViolation("two shares have the same index")
    chosen = sorted(shares, key=lambda share: share.index)[:threshold]
    value = interpolate_at_zero(chosen)
    if value.bit_length() > 8 * SECRET_SIZE:
        raise ProtocolViolation("the shares are inconsistent: no 32-byte secret")
    return value.to_bytes(SECRET_SIZE, "big")


def _random_element(random_bytes: RandomBytes) -> int:
    """Draw a uniform field element by rejection (rejects 1 value in 2^521)."""
    while True:
        value = int.from_bytes(random_bytes(ELEMENT_SIZE), "big") & _ELEMENT_MASK
        if value < PRIME:
            return value


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    """Evaluate the polynomial at ``x`` by Horner's rule, modulo `PRIME`."""
    result = 0
    for coefficient in reversed(coefficients):
        result = (result * x + coefficient) % PRIME
    return result


@functools.lru_cache(maxsize=256)
def _lagrange_at_zero(indices: tuple[int, ...]) -> tuple[int, ...]:
    """Return the Lagrange weights at 0 for ``indices`` (cached: one set, many secrets)."""
    weights = []
    for i, xi in enumerate(indices):
        numerator, denominator = 1, 1
        for j, xj in enumerate(indices):
            if i != j:
                numerator = numerator * xj % PRIME
                denominator = denominator * (xj - xi) % PRIME
        weights.append(numerator * pow(denominator, -1, PRIME) % PRIME)
    return tuple(weights)
