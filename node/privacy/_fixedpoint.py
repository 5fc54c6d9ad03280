"""Fixed-point integer encoding of a bounded numeric column.

A column declared with bounds ``[lower, upper]`` is summed in the data source as
exact integers: each value is clamped, multiplied by ``2^k`` and rounded,
``SUM(CAST(ROUND(clamp(x) * 2^k) AS BIGINT))``. Multiplying a double by a power of
two is exact, and any rounding mode (half-even, half-away-from-zero, floor, ceil)
maps ``[lower * 2^k, upper * 2^k]`` into ``[floor(lower * 2^k), ceil(upper * 2^k)]``:
those are the integer bounds, so the sensitivity holds whatever ``ROUND`` the
engine implements. The sum of squares is taken over the *encoded* integers,
``SUM(v * v)`` with ``v`` as above, at scale ``4^k``, so mean and variance come from
one consistent encoding. This module gives the numbers; it writes no SQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from node.privacy._checks import check_int, check_number

#: The largest value a signed 64-bit integer (SQL BIGINT) holds.
INT64_MAX = 2**63 - 1

#: Per-row encoded values stay below this, so sums of a few rows and noise fit BIGINT.
MAX_ENCODED = 2**62


@dataclass(frozen=True)
class FixedPoint:
    """The integer encoding ``round(clamp(x, lower, upper) * 2^fractional_bits)``.

    Parameters
    ----------
    lower, upper : float
        The column's declared bounds (finite, ``lower < upper``).
    fractional_bits : int
        ``k``: the encoding keeps ``k`` binary digits after the point (resolution
        ``2^-k``); 0 for integer columns.
    """

    lower: float
    upper: float
    fractional_bits: int

    def __post_init__(self) -> None:
        for name in ("lower", "upper"):
            value = check_number(name, getattr(self, name))
            object.__setattr__(self, name, value)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        if not self.lower < self.upper:
            raise ValueError(
                f"lower must be below upper, got [{self.lower!r}, {self.upper!r}]"
            )
        bits = check_int("fractional_bits", self.fractional_bits, 0, 62)
        if self.max_abs > MAX_ENCODED:
            raise ValueError(
                f"[{self.lower!r}, {self.upper!r}] at {bits} fractional bits encodes "
                f"values up to {self.max_abs}, above 2^62: use fewer fractional bits"
            )

    @property
    def scale(self) -> int:
        """``2^k``: encoded integers per unit of the column."""
        return 1 << self.fractional_bits

    @property
    def square_scale(self) -> int:
        """``4^k``: units of the sum of squares of encoded integers."""
        return 1 << (2 * self.fractional_bits)

    @property
    def integer_lower(self) -> int:
        """``floor(lower * 2^k)``: no encoded value is smaller."""
        return math.floor(math.ldexp(float(self.lower), self.fractional_bits))

    @property
    def integer_upper(self) -> int:
        """``ceil(upper * 2^k)``: no encoded value is larger."""
        return math.ceil(math.ldexp(float(self.upper), self.fractional_bits))

    @property
    def max_abs(self) -> int:
        """``max(|integer_lower|, |integer_upper|)``: one row's sum sensitivity."""
        return max(abs(self.integer_lower), abs(self.integer_upper))

    @property
    def max_square(self) -> int:
        """``max_abs^2``: one row's sensitivity for the sum of squared encodings."""
        return self.max_abs * self.max_abs

    @property
    def square_lower(self) -> int:
        """The smallest squared encoding (0 if the range contains 0)."""
        lo, hi = self.integer_lower, self.integer_upper
        return 0 if lo <= 0 <= hi else min(lo * lo, hi * hi)

    def sum_sensitivity(self, max_rows_per_person: int) -> int:
        """Return ``c * max_abs``: the sum's L1 and L2 sensitivity, encoded units."""
        return _check_rows(max_rows_per_person) * self.max_abs

    def sum_of_squares_sensitivity(self, max_rows_per_person: int) -> int:
        """Return ``c * max_abs^2``: the sum of squares' sensitivity, ``4^-k`` units."""
        return _check_rows(max_rows_per_person) * self.max_square

    @property
    def max_rows(self) -> int:
        """How many rows a BIGINT sum of encodings holds with 1 bit of headroom."""
        return (2**62) // self.max_abs

    @property
    def max_rows_squares(self) -> int:
        """How many rows a BIGINT sum of squared encodings holds (0: even one overflows)."""
        return (2**62) // self.max_square

    def encode(self, value: float) -> int:
        """Return ``round(clamp(value) * 2^k)`` (half to even) -- a reference, for tests.

        Parameters
        ----------
        value : float
            A value of the column (NaN is rejected).

        Returns
        -------
        int
            The encoded integer, within ``[integer_lower, integer_upper]``.
        """
        if math.isnan(value):
            raise ValueError("cannot encode NaN")
        clamped = min(max(float(value), float(self.lower)), float(self.upper))
        return round(math.ldexp(clamped, self.fractional_bits))

    def decode(self, encoded: float) -> float:
        """Return ``encoded / 2^k``: a sum of encodings in the column's units."""
        return math.ldexp(float(encoded), -self.fractional_bits)


def _check_rows(max_rows_per_person: int) -> int:
    return check_int("max_rows_per_person", max_rows_per_person, 1)
