"""Integer and fixed-point encoding of vectors into Z_(2^64), and decoding of sums.

Masked arithmetic runs on uint64 words modulo 2^64 (numpy wraps natively). A
signed value is stored as its two's complement; a sum of ``n`` values with
``|x| < 2^k`` decodes correctly when it cannot leave the signed 64-bit range,
i.e. when ``k + ceil(log2 n) + 1 <= 64`` (the ``+ 1`` is the sign bit). Every
function here checks that budget and raises `Overflow` before anything is
masked, rather than letting a sum wrap silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secagg._errors import Overflow
from secagg._rules import is_uint64_vector

#: Bits of the masking modulus: arithmetic is modulo 2^64.
MODULUS_BITS = 64


def max_value_bits(participants: int) -> int:
    """Return the widest ``value_bits`` that ``participants`` values may use.

    ``64 - ceil(log2(participants)) - 1``: the sum of that many values, each
    ``|x| < 2^value_bits``, still fits the signed 64-bit modulus.
    """
    if participants < 1:
        raise ValueError("participants must be >= 1")
    return MODULUS_BITS - (participants - 1).bit_length() - 1


def check_bit_budget(value_bits: int, participants: int) -> None:
    """Check that ``participants`` values with ``|x| < 2^value_bits`` sum safely.

    The budget is ``value_bits + ceil(log2(participants)) + 1 <= 64``.

    Parameters
    ----------
    value_bits : int
        Declared magnitude bound of each value: ``|x| < 2^value_bits``.
    participants : int
        Most values that will be summed.

    Raises
    ------
    ValueError
        If ``value_bits`` is negative or ``participants`` is below 1.
    Overflow
        If the declared bounds could overflow the modulus.
    """
    if value_bits < 0 or participants < 1:
        raise ValueError("value_bits must be >= 0 and participants >= 1")
    needed = value_bits + (participants - 1).bit_length() + 1
    if needed > MODULUS_BITS:
        raise Overflow(
            f"{participants} values below 2^{value_bits} need {needed} bits with "
            f"the sign, more than the {MODULUS_BITS}-bit modulus: lower the bound"
        )


def encode_ints(
    values: ArrayLike, *, value_bits: int, participants: int
) -> NDArray[np.uint64]:
    """Encode signed integers with ``|x| < 2^value_bits`` as uint64 words.

    Parameters
    ----------
    values : array_like of int
        A one-dimensional integer vector (any numpy integer dtype).
    value_bits : int
        The declared bound: every ``|x| < 2^value_bits``.
    participants : int
        Most vectors that will be summed (for the bit budget).

    Returns
    -------
    numpy.ndarray of uint64
        The two's-complement words, a new contiguous array.

    Raises
    ------
    TypeError
        If the values are not integers (use `encode_floats` for floats).
    ValueError
        If the vector is not one-dimensional.
    Overflow
        If the bounds break the bit budget or a value breaks its bound. The
        message never contains the value.
    """
    check_bit_budget(value_bits, participants)
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"encode_ints takes integers, not {array.dtype} (see encode_floats)"
        )
    if array.ndim != 1:
        raise ValueError(f"a vector has one dimension, not {array.ndim}")
    if array.size:
        bound = 1 << value_bits
        if int(array.max()) >= bound or int(array.min()) <= -bound:
            raise Overflow(
                f"a value lies outside the declared bound |x| < 2^{value_bits}"
            )
    if array.dtype.kind == "u":
        return array.astype(np.uint64)
    return array.astype(np.int64).view(np.uint64)


def decode_ints(
    total: NDArray[np.uint64], *, value_bits: int, participants: int
) -> NDArray[np.int64]:
    """Decode a sum of `encode_ints` vectors back to signed integers.

    Parameters
    ----------
    total : numpy.ndarray of uint64
        The unmasked sum modulo 2^64.
    value_bits : int
        The bound each summand was encoded with.
    participants : int
        Most summands (the bound of the sum is ``participants * (2^value_bits - 1)``).

    Returns
    -------
    numpy.ndarray of int64
        The exact signed sum.

    Raises
    ------
    TypeError
        If ``total`` is not a one-dimensional uint64 array.
    Overflow
        If the bounds break the bit budget, or the sum lies beyond what the
        declared summands can reach (an input broke its bound, or more inputs
        were summed than declared).
    """
    check_bit_budget(value_bits, participants)
    if not is_uint64_vector(total):
        raise TypeError("decode_ints takes a one-dimensional numpy uint64 array")
    signed = np.ascontiguousarray(total).view(np.int64).copy()
    if signed.size:
        limit = participants * ((1 << value_bits) - 1)
        if int(signed.max()) > limit or int(signed.min()) < -limit:
            raise Overflow(
                f"the sum exceeds what {participants} values below 2^{value_bits} "
                "can reach: an input broke its bound or more inputs were summed"
            )
    return signed


@dataclass(frozen=True)
class FixedPointDecoder:
    """Turn a sum of `encode_floats` vectors back into floats.

    Parameters
    ----------
    scale : float
        Units per 1.0: a value ``x`` was encoded as ``round(x * scale)``.
    clip : float
        Values were clipped to ``[-clip, clip]`` before encoding.
    participants : int
        Most vectors in the sum.
    value_bits : int
        Bits of ``round(clip * scale)``, the bound of each encoded value.
    """

    scale: float
    clip: float
    participants: int
    value_bits: int

    @property
    def resolution(self) -> float:
        """Quantisation step ``1 / scale``; each value is off by at most half of it."""
        return 1.0 / self.scale

    def __call__(self, total: NDArray[np.uint64]) -> NDArray[np.float64]:
        """Decode the unmasked sum ``total``.

        Parameters
        ----------
        total : numpy.ndarray of uint64
            The unmasked sum modulo 2^64.

        Returns
        -------
        numpy.ndarray of float64
            The sum of the clipped values, within ``k * resolution / 2`` for ``k``
            summands (plus float64 rounding when a sum exceeds 2^53 units).
        """
        units = decode_ints(
            total, value_bits=self.value_bits, participants=self.participants
        )
        return units.astype(np.float64) / self.scale


def encode_floats(
    values: ArrayLike, *, scale: float, clip: float, participants: int
) -> tuple[NDArray[np.uint64], FixedPointDecoder]:
    """Clip floats to ``[-clip, clip]`` and encode them in fixed point.

    ``x`` becomes ``round(clip(x) * scale)`` (round half to even), stored as a
    two's-complement uint64 word.

    Parameters
    ----------
    values : array_like of float
        A one-dimensional vector of finite floats.
    scale : float
        Units per 1.0 (e.g. ``2**20`` for a resolution of about 1e-6).
    clip : float
        The clipping bound, > 0.
    participants : int
        Most vectors that will be summed (for the bit budget).

    Returns
    -------
    tuple of (numpy.ndarray of uint64, FixedPointDecoder)
        The encoded vector and the decoder for the sum.

    Raises
    ------
    ValueError
        If ``scale`` or ``clip`` is not positive and finite, the vector is not
        one-dimensional, or it holds NaN or an infinity.
    Overflow
        If ``clip * scale`` summed over ``participants`` breaks the bit budget.
    """
    if not (math.isfinite(scale) and scale > 0 and math.isfinite(clip) and clip > 0):
        raise ValueError("scale and clip must be positive and finite")
    max_units = round(clip * scale)
    if max_units < 1:
        raise ValueError(f"clip * scale = {clip * scale} rounds to 0: raise the scale")
    value_bits = max_units.bit_length()
    check_bit_budget(value_bits, participants)
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"a vector has one dimension, not {array.ndim}")
    if not np.isfinite(array).all():
        raise ValueError("cannot encode NaN or infinite values")
    units = np.clip(np.rint(np.clip(array, -clip, clip) * scale), -max_units, max_units)
    encoded = units.astype(np.int64).view(np.uint64)
    return encoded, FixedPointDecoder(scale, clip, participants, value_bits)
