"""The release plan of one aggregate query: which integer vectors, what budget, what noise.

``plan_release`` needs no data: from the requested aggregates, the number of
(public) groups, the columns' fixed-point encodings, the contribution bound ``c`` and
the budget, it derives the integer vectors the node will compute exactly in the data
source, their sensitivities, an even split of the budget and each vector's noise
scale and 95% half-width. The dry run shows it as is; ``release`` then adds the noise
to the exact vectors.

Aggregates and the vectors they need (each vector released once, shared):

==================================  ============================================
aggregate                           vectors (per group, group-major layout)
==================================  ============================================
``Count()``                         ``count``
``Sum(col)``                        ``sum(col)``
``Mean(col)``                       ``count``, ``sum(col)`` -- mean = sum / count
``Variance(col)``                   ``count``, ``sum(col)``, ``sum_of_squares(col)``
``Histogram(col, edges)``           ``histogram(col; edges)``: groups x bins cells
``Quantile(col, q, grid)``          ``histogram(col; grid)``: the CDF of the noisy
                                    histogram over the public grid
==================================  ============================================

What the data source computes per group, exactly, as BIGINT: ``count`` is the number
of rows; ``sum(col)`` is ``SUM(v)`` and ``sum_of_squares(col)`` is ``SUM(v * v)`` with
``v = CAST(ROUND(clamp(col) * 2^k) AS BIGINT)`` (``PlannedVector.encoding``); a
histogram counts rows per bin, bins ``[e_i, e_i+1)`` with the last one closed, after
clamping values to ``[e_0, e_n]`` so every row lands in exactly one bin. Rows where
the column is NULL must be treated the same way in every vector of a query (excluded
everywhere, or replaced by a public value) so that mean = sum / count holds; the
sensitivities hold either way. With a minimum group size the plan always releases
``count``: suppression is decided on the group's noisy count.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy.typing as npt

from node.privacy._accounting import rho_for_epsilon, split_budget
from node.privacy._checks import check_int, check_number
from node.privacy._fixedpoint import FixedPoint
from node.privacy._mechanisms import (
    Release,
    as_int64_vector,
    gaussian_scale,
    laplace_scale,
    noisy_integers,
)
from node.privacy._noise import (
    CONFIDENCE,
    DISCRETE_GAUSSIAN,
    DISCRETE_LAPLACE,
    Mechanism,
    Noise,
    check_confidence,
)
from node.privacy._sensitivity import (
    Sensitivity,
    count_sensitivity,
    histogram_sensitivity,
    sum_of_squares_sensitivity,
    sum_sensitivity,
)
from node.privacy._suppression import at_risk_below

VectorKind = Literal["count", "sum", "sum_of_squares", "histogram"]


def _edges(name: str, values: Sequence[float]) -> tuple[float, ...]:
    edges = tuple(float(v) for v in values)
    if len(edges) < 2:
        raise ValueError(f"{name} needs at least two edges")
    if not all(math.isfinite(e) for e in edges):
        raise ValueError(f"{name} must be finite")
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"{name} must be strictly increasing")
    return edges


@dataclass(frozen=True)
class Count:
    """The number of rows per group."""


@dataclass(frozen=True)
class Sum:
    """The sum of a bounded numeric column per group (clamped, fixed-point)."""

    column: str


@dataclass(frozen=True)
class Mean:
    """The mean of a bounded numeric column per group: noisy sum / noisy count."""

    column: str


@dataclass(frozen=True)
class Variance:
    """The population variance per group, from noisy count, sum and sum of squares."""

    column: str


@dataclass(frozen=True)
class Histogram:
    """Counts per group over public bin edges (``len(edges) - 1`` bins)."""

    column: str
    edges: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "edges", _edges("histogram edges", self.edges))


@dataclass(frozen=True)
class Quantile:
    """The ``q``-quantile per group, read off a noisy histogram over a public grid."""

    column: str
    q: float
    grid: tuple[float, ...]

    def __post_init__(self) -> None:
        q = check_number("quantile q", self.q)
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile q must lie in [0, 1], got {self.q!r}")
        object.__setattr__(self, "q", q)
        object.__setattr__(self, "grid", _edges("quantile grid", self.grid))


Aggregate = Count | Sum | Mean | Variance | Histogram | Quantile


@dataclass(frozen=True)
class PlannedVector:
    """One integer vector of the plan, with its share of the budget and its noise.

    Parameters
    ----------
    name : str
        Key of the vector: ``count``, ``sum(col)``, ``sum_of_squares(col)`` or
        ``histogram(col; e0, e1, ...)``.
    kind : {"count", "sum", "sum_of_squares", "histogram"}
        What the data source computes.
    column : str or None
        The column it reads (``None`` for the count).
    encoding : FixedPoint or None
        The column's encoding (sums only).
    edges : tuple of float or None
        Bin edges (histograms only).
    length : int
        Number of integers: groups, or groups x bins (group-major).
    unit : int
        Integer units per natural unit: 1, ``2^k`` (sum) or ``4^k`` (sum of squares).
    sensitivity : Sensitivity
        L1 and L2 sensitivity under add/remove-one-person.
    rho : float
        zCDP cost of this vector.
    epsilon : float or None
        Pure-DP epsilon of this vector (discrete Laplace plans).
    noise : Noise
        Mechanism and scale.
    half_width : int
        Half-width of the interval at the plan's confidence, in integer units.
    """

    name: str
    kind: VectorKind
    column: str | None
    encoding: FixedPoint | None
    edges: tuple[float, ...] | None
    length: int
    unit: int
    sensitivity: Sensitivity
    rho: float
    epsilon: float | None
    noise: Noise
    half_width: int

    @property
    def natural_half_width(self) -> float:
        """The half-width in the column's units (counts: rows)."""
        return self.half_width / self.unit

    @property
    def natural_std(self) -> float:
        """The noise's standard deviation in the column's units."""
        return self.noise.std / self.unit


@dataclass(frozen=True)
class ReleasePlan:
    """Which vectors one query releases, how the budget is split, and their noise.

    Parameters
    ----------
    aggregates : tuple of Aggregate
        The requested aggregates, deduplicated, in request order.
    vectors : tuple of PlannedVector
        The released vectors (``count`` first when present).
    sources : tuple of tuple of str
        For each aggregate, the names of the vectors it is derived from.
    groups : int
        Number of public groups (1 without group-by).
    max_rows_per_person : int
        The contribution bound ``c``.
    mechanism : {"discrete_gaussian", "discrete_laplace"}
        Gaussian for a rho budget, Laplace for a pure epsilon.
    rho : float
        Total zCDP cost: the sum of the vectors' rho (what the ledger charges).
    epsilon : float or None
        Total pure-DP epsilon (Laplace plans), the sum of the vectors' epsilon.
    confidence : float
        Confidence of the half-widths.
    min_group_size : int or None
        The policy's minimum group size.
    at_risk_below : int or None
        Groups whose true count is below this are suppressed with probability above
        ``(1 - confidence) / 2`` (``None`` without a minimum group size).
    """

    aggregates: tuple[Aggregate, ...]
    vectors: tuple[PlannedVector, ...]
    sources: tuple[tuple[str, ...], ...]
    groups: int
    max_rows_per_person: int
    mechanism: Mechanism
    rho: float
    epsilon: float | None
    confidence: float
    min_group_size: int | None
    at_risk_below: int | None
    _by_name: dict[str, PlannedVector] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {v.name: v for v in self.vectors})

    @property
    def names(self) -> tuple[str, ...]:
        """The vectors' names, in release order."""
        return tuple(v.name for v in self.vectors)

    def vector(self, name: str) -> PlannedVector:
        """Return the planned vector called ``name`` (``KeyError`` if absent)."""
        return self._by_name[name]

    def vectors_for(self, aggregate: Aggregate) -> tuple[PlannedVector, ...]:
        """Return the vectors ``aggregate`` is derived from."""
        index = self.aggregates.index(aggregate)
        return tuple(self._by_name[name] for name in self.sources[index])


@dataclass(frozen=True)
class _Need:
    name: str
    kind: VectorKind
    column: str | None
    encoding: FixedPoint | None
    edges: tuple[float, ...] | None
    length: int
    unit: int
    sensitivity: Sensitivity


def _histogram_name(column: str, edges: tuple[float, ...]) -> str:
    return f"histogram({column}; {', '.join(repr(e) for e in edges)})"


def _encoding(columns: Mapping[str, FixedPoint], column: str, what: str) -> FixedPoint:
    try:
        encoding = columns[column]
    except KeyError:
        raise ValueError(
            f"{what}({column}) needs bounds: no encoding for {column!r}"
        ) from None
    if not isinstance(encoding, FixedPoint):
        raise TypeError(f"encoding of {column!r} must be a FixedPoint")
    return encoding


def _needs(
    aggregate: Aggregate,
    *,
    groups: int,
    c: int,
    columns: Mapping[str, FixedPoint],
) -> list[_Need]:
    count = _Need("count", "count", None, None, None, groups, 1, count_sensitivity(c))
    if isinstance(aggregate, Count):
        return [count]
    if isinstance(aggregate, Histogram | Quantile):
        column = aggregate.column
        edges = aggregate.edges if isinstance(aggregate, Histogram) else aggregate.grid
        name = _histogram_name(column, edges)
        length = groups * (len(edges) - 1)
        return [
            _Need(
                name,
                "histogram",
                column,
                None,
                edges,
                length,
                1,
                histogram_sensitivity(c),
            )
        ]
    what = type(aggregate).__name__.lower()
    enc = _encoding(columns, aggregate.column, what)
    total = _Need(
        f"sum({aggregate.column})", "sum", aggregate.column, enc, None, groups,
        enc.scale, sum_sensitivity(enc, c),
    )  # fmt: skip
    if isinstance(aggregate, Sum):
        return [total]
    if isinstance(aggregate, Mean):
        return [count, total]
    squares = _Need(
        f"sum_of_squares({aggregate.column})", "sum_of_squares", aggregate.column, enc,
        None, groups, enc.square_scale, sum_of_squares_sensitivity(enc, c),
    )  # fmt: skip
    return [count, total, squares]


def plan_release(
    aggregates: Sequence[Aggregate],
    *,
    groups: int,
    max_rows_per_person: int,
    columns: Mapping[str, FixedPoint] | None = None,
    rho: float | None = None,
    epsilon: float | None = None,
    min_group_size: int | None = None,
    confidence: float = CONFIDENCE,
) -> ReleasePlan:
    """Plan the release of one query's aggregates, without touching any data.

    Parameters
    ----------
    aggregates : sequence of Aggregate
        What the query asks for (``Count()``, ``Sum(col)``, ``Mean(col)``,
        ``Variance(col)``, ``Histogram(col, edges)``, ``Quantile(col, q, grid)``).
    groups : int
        Number of public groups (product of the group-by domains; 1 without).
    max_rows_per_person : int
        The policy's contribution bound ``c``.
    columns : mapping of str to FixedPoint, optional
        Encodings (bounds and fractional bits) of the columns summed.
    rho : float, optional
        Total zCDP budget: discrete Gaussian noise.
    epsilon : float, optional
        Total pure-DP budget: discrete Laplace noise.
    min_group_size : int, optional
        The policy's minimum group size; forces the ``count`` vector.
    confidence : float
        Confidence of the reported half-widths.

    Returns
    -------
    ReleasePlan
        Vectors, budget shares (summing to the total, never above it), noise scales
        and half-widths.

    Raises
    ------
    ValueError
        Bad budget, sizes, columns without bounds, or sensitivities beyond int64.
    """
    if (rho is None) == (epsilon is None):
        raise ValueError(
            "give exactly one of rho (discrete Gaussian) or epsilon (discrete Laplace)"
        )
    confidence = check_confidence(confidence)
    groups = check_int("groups", groups, 1)
    if min_group_size is not None:
        min_group_size = check_int("min_group_size", min_group_size, 0)
    columns = dict(columns or {})
    requested: list[Aggregate] = []
    for aggregate in aggregates:
        if not isinstance(
            aggregate, Count | Sum | Mean | Variance | Histogram | Quantile
        ):
            raise TypeError(f"not an aggregate: {aggregate!r}")
        if aggregate not in requested:
            requested.append(aggregate)
    if not requested:
        raise ValueError("a query needs at least one aggregate")

    needs: dict[str, _Need] = {}
    sources: list[tuple[str, ...]] = []
    if min_group_size is not None or any(
        isinstance(a, Count | Mean | Variance) for a in requested
    ):
        needs["count"] = _needs(
            Count(), groups=groups, c=max_rows_per_person, columns=columns
        )[0]
    for aggregate in requested:
        found = _needs(aggregate, groups=groups, c=max_rows_per_person, columns=columns)
        for need in found:
            needs.setdefault(need.name, need)
        sources.append(tuple(need.name for need in found))

    mechanism: Mechanism = DISCRETE_GAUSSIAN if rho is not None else DISCRETE_LAPLACE
    total = rho if rho is not None else epsilon
    assert total is not None  # exactly one was given, checked above
    shares = split_budget(total, len(needs))
    vectors = []
    for need, share in zip(needs.values(), shares, strict=True):
        if mechanism == DISCRETE_GAUSSIAN:
            noise = Noise(mechanism, gaussian_scale(need.sensitivity.l2, share))
            cost, pure = share, None
        else:
            noise = Noise(mechanism, laplace_scale(need.sensitivity.l1, share))
            cost, pure = rho_for_epsilon(share), share
        vectors.append(
            PlannedVector(
                name=need.name,
                kind=need.kind,
                column=need.column,
                encoding=need.encoding,
                edges=need.edges,
                length=need.length,
                unit=need.unit,
                sensitivity=need.sensitivity,
                rho=cost,
                epsilon=pure,
                noise=noise,
                half_width=noise.half_width(confidence),
            )
        )
    risk = None
    if min_group_size is not None:
        risk = at_risk_below(vectors[0].noise, min_group_size, confidence)
    return ReleasePlan(
        aggregates=tuple(requested),
        vectors=tuple(vectors),
        sources=tuple(sources),
        groups=groups,
        max_rows_per_person=max_rows_per_person,
        mechanism=mechanism,
        rho=math.fsum(v.rho for v in vectors),
        epsilon=None if epsilon is None else math.fsum(s for s in shares),
        confidence=confidence,
        min_group_size=min_group_size,
        at_risk_below=risk,
    )


def release(
    plan: ReleasePlan, exact_vectors: Mapping[str, Sequence[int] | npt.NDArray[Any]]
) -> dict[str, Release]:
    """Add the planned noise to the exact vectors.

    Parameters
    ----------
    plan : ReleasePlan
        From ``plan_release``.
    exact_vectors : mapping of str to integer vectors
        One exact vector per planned name, of the planned length (group-major).

    Returns
    -------
    dict of str to Release
        The noisy vectors with their noise, in the plan's order.

    Raises
    ------
    ValueError
        Missing, unexpected or mis-sized vectors (checked before any noise is drawn).
    """
    expected, given = set(plan.names), set(exact_vectors)
    if expected != given:
        missing = ", ".join(sorted(expected - given)) or "none"
        extra = ", ".join(sorted(given - expected)) or "none"
        raise ValueError(
            f"vectors do not match the plan: missing {missing}; unexpected {extra}"
        )
    arrays = {}
    for vector in plan.vectors:
        array = as_int64_vector(exact_vectors[vector.name])
        if array.size != vector.length:
            raise ValueError(
                f"vector {vector.name} has {array.size} entries, the plan says {vector.length}"
            )
        arrays[vector.name] = array
    out: dict[str, Release] = {}
    for vector in plan.vectors:
        if plan.mechanism == DISCRETE_GAUSSIAN:
            result = noisy_integers(
                arrays[vector.name],
                l2_sensitivity=vector.sensitivity.l2,
                rho=vector.rho,
            )
        else:
            result = noisy_integers(
                arrays[vector.name],
                l1_sensitivity=vector.sensitivity.l1,
                epsilon=vector.epsilon,
            )
        if result.noise != vector.noise:  # same calibration, same numbers
            raise RuntimeError(f"noise of {vector.name} differs from the plan")
        out[vector.name] = result
    return out


@functools.lru_cache(maxsize=512)
def cached_plan_release(
    aggregates: tuple[Aggregate, ...],
    *,
    groups: int,
    max_rows_per_person: int,
    columns: tuple[tuple[str, FixedPoint], ...] = (),
    rho: float | None = None,
    epsilon: float | None = None,
    min_group_size: int | None = None,
) -> ReleasePlan:
    """Return :func:`plan_release` of the same arguments, computed once for each.

    Planning is pure and a node meets the same queries again and again; plans are
    immutable, so one may serve many requests. ``columns`` is given as items.
    """
    return plan_release(
        aggregates,
        groups=groups,
        max_rows_per_person=max_rows_per_person,
        columns=dict(columns),
        rho=rho,
        epsilon=epsilon,
        min_group_size=min_group_size,
    )
