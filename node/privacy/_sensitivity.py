"""Sensitivities of the released integer vectors, under add/remove-one-person.

Neighbouring relation: two datasets are neighbours when one is the other plus or
minus *all* the rows of one person, and a person has at most ``c`` rows
(``max_rows_per_person`` in the policy's privacy unit). Add/remove rather than
change-one, because the number of rows (in total and per group) is itself private:
change-one would assume a public ``n`` the node does not know. Groups and bins are
public (declared domains and edges), so a person can move no key in or out; each of
their rows falls into exactly one cell of a vector. Hence, with ``M`` the largest
absolute encoded value of one row:

* count over disjoint groups: L1 = c (each row moves one cell by 1) and L2 = c
  (worst case: all c rows in one group; spread out they give only sqrt(c));
* histogram over public bins (and groups): the same, c and c;
* sum of encoded values: L1 = L2 = c * M (``FixedPoint.max_abs``);
* sum of squared encodings: L1 = L2 = c * M^2 (``FixedPoint.max_square``).

Integers only: the vectors are computed exactly in the data source, so no
floating-point summation can exceed these bounds (REFERENCES c.2, Casacuberta et
al. 2022).
"""

from __future__ import annotations

from dataclasses import dataclass

from node.privacy._checks import check_int
from node.privacy._fixedpoint import INT64_MAX, FixedPoint, _check_rows


@dataclass(frozen=True)
class Sensitivity:
    """How far one person can move a released vector.

    Parameters
    ----------
    l1 : int
        Bound on the L1 distance (calibrates the discrete Laplace).
    l2 : int
        Bound on the L2 distance (calibrates the discrete Gaussian).
    """

    l1: int
    l2: int

    def __post_init__(self) -> None:
        for name in ("l1", "l2"):
            value = check_int(f"{name} sensitivity", getattr(self, name), 1)
            if value > INT64_MAX:
                raise ValueError(
                    f"{name} sensitivity {value} does not fit a 64-bit integer: "
                    "use fewer fractional bits or narrower bounds"
                )


def count_sensitivity(max_rows_per_person: int) -> Sensitivity:
    """Return the sensitivity of a count vector over disjoint public groups: (c, c)."""
    c = _check_rows(max_rows_per_person)
    return Sensitivity(l1=c, l2=c)


def histogram_sensitivity(max_rows_per_person: int) -> Sensitivity:
    """Return the sensitivity of a histogram over public bins (and groups): (c, c)."""
    c = _check_rows(max_rows_per_person)
    return Sensitivity(l1=c, l2=c)


def sum_sensitivity(encoding: FixedPoint, max_rows_per_person: int) -> Sensitivity:
    """Return the sensitivity of a sum of encodings: (c * M, c * M)."""
    s = encoding.sum_sensitivity(max_rows_per_person)
    return Sensitivity(l1=s, l2=s)


def sum_of_squares_sensitivity(
    encoding: FixedPoint, max_rows_per_person: int
) -> Sensitivity:
    """Return the sensitivity of a sum of squared encodings: (c * M^2, c * M^2)."""
    s = encoding.sum_of_squares_sensitivity(max_rows_per_person)
    return Sensitivity(l1=s, l2=s)
