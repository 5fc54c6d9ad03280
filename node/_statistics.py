"""Released statistics: integer vectors computed in the source, then noised.

A query becomes a release plan (``node.privacy.plan_release``: which integer vectors,
their budget shares and noise) over a public group layout -- the product of the
group-by columns' declared domains and of the public bins of binned columns. One
``SELECT`` computes every vector exactly, as integers, in the data source: counts,
sums and sums of squares of clamped fixed-point values, and per-bin counts. Noise
comes from OpenDP; groups whose noisy count is under the policy's minimum group size
are withheld. Group keys never come from the data.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.sql.expression import TableClause

from accord.v1 import node_service_pb2 as pb
from node import privacy
from node._config import DatasetSpec
from node._errors import InvalidQuery
from node._filters import condition
from node._query import Query, Scalar, group_domain

#: A float column's sum keeps at most this many binary digits per value...
MAX_FRACTION_BITS = 24
#: ...and each encoded value (or its square, for variances) stays under 2^this, so
#: sums over 2^22 rows fit in 64 bits.
VALUE_BITS = 40
#: Under secure aggregation sums are masked mod 2^64 with room for every node's
#: sign and carry: values stay under 2^this, so sums over 2^28 rows per node fit.
SECURE_VALUE_BITS = 28


@dataclass(frozen=True)
class Layout:
    """The public groups of a query, in order, with their key parts."""

    columns: tuple[str, ...]
    keys: tuple[tuple[Scalar, ...], ...]


def layout(query: Query, dataset: DatasetSpec) -> Layout:
    """Return the product of the declared domains and public bins, group-major."""
    domains: list[Sequence[Scalar]] = [
        group_domain(dataset.columns[name]) for name in query.group_by
    ]
    domains += [b.labels() for b in query.binned]
    columns = (*query.group_by, *(b.column for b in query.binned))
    return Layout(columns, tuple(itertools.product(*domains)))


def requested(query: Query) -> list[privacy.Aggregate]:
    """Return the query's aggregates, as the privacy planner names them."""
    out: list[privacy.Aggregate] = []
    for agg in query.aggregations:
        col = agg.column
        if agg.function == "count":
            out.append(privacy.Count())
        elif agg.function == "sum" and col:
            out.append(privacy.Sum(col))
        elif agg.function == "mean" and col:
            out.append(privacy.Mean(col))
        elif agg.function in ("variance", "stddev") and col:
            out.append(privacy.Variance(col))
        elif agg.function == "histogram" and col:
            out.append(privacy.Histogram(col, agg.edges))
        elif agg.function == "quantile" and col:
            out.extend(privacy.Quantile(col, q, agg.edges) for q in agg.quantiles)
    return out


def encodings(
    query: Query,
    dataset: DatasetSpec,
    bounds: Mapping[str, tuple[float, float]],
    *,
    secure: bool = False,
) -> dict[str, privacy.FixedPoint]:
    """Return fixed-point encodings of the summed columns, from public bounds only.

    Secure aggregation leaves fewer bits per value (``SECURE_VALUE_BITS``).
    """
    squared = {
        a.column for a in query.aggregations if a.function in ("variance", "stddev")
    }
    out: dict[str, privacy.FixedPoint] = {}
    for agg in query.aggregations:
        col = agg.column
        if not col or agg.function not in ("sum", "mean", "variance", "stddev"):
            continue
        declared = bounds.get(col) or dataset.columns[col].bounds
        if declared is None:
            raise InvalidQuery(
                "aggregations", f"column {col!r} has no declared bounds to clamp to"
            )
        lower, upper = float(declared[0]), float(declared[1])
        magnitude = max(abs(lower), abs(upper), 1.0)
        limit = SECURE_VALUE_BITS if secure else VALUE_BITS
        budget = limit // 2 if col in squared else limit
        bits = 0
        if dataset.columns[col].type == "float":
            bits = max(
                0, min(MAX_FRACTION_BITS, budget - math.ceil(math.log2(magnitude)))
            )
        if lower == upper:
            upper = lower + 1.0
        out[col] = privacy.FixedPoint(lower, upper, bits)
    return out


def _encoded(
    col: sa.ColumnElement[Any], enc: privacy.FixedPoint
) -> sa.ColumnElement[Any]:
    """``CAST(ROUND(clamp(coalesce(x, lower)) * 2^k) AS BIGINT)`` in portable SQL."""
    value = sa.func.coalesce(col, enc.lower)
    clamped = sa.case(
        (value < enc.lower, enc.lower), (value > enc.upper, enc.upper), else_=value
    )
    if enc.fractional_bits == 0:
        return sa.cast(sa.func.round(clamped), sa.BigInteger)
    return sa.cast(sa.func.round(clamped * float(enc.scale)), sa.BigInteger)


def _bin_index(
    col: sa.ColumnElement[Any], edges: Sequence[float], *, clamp: bool
) -> sa.ColumnElement[Any]:
    """Return the public bin of each value: ``[e_i, e_i+1)``, the last closed."""
    value = sa.func.coalesce(col, edges[0]) if clamp else col
    whens = [(value < edges[i + 1], i) for i in range(len(edges) - 2)]
    return sa.case(*whens, else_=len(edges) - 2)


def split_histogram(plan: privacy.ReleasePlan) -> int | None:
    """Return the index of the histogram whose bin joins the ``GROUP BY``, if any.

    Grouping by one histogram's bin index, rather than summing one ``CASE`` per
    bin, makes that histogram as cheap as a group-by column; the other vectors
    are then summed per (group, bin) row and added up by :func:`exact_vectors`.
    """
    return next((i for i, v in enumerate(plan.vectors) if v.kind == "histogram"), None)


def build_statistics_select(
    query: Query, dataset: DatasetSpec, table: TableClause, plan: privacy.ReleasePlan
) -> sa.Select[Any]:
    """One ``SELECT`` computing every planned vector per group, exactly, as integers.

    An inner select filters the rows and derives, once per row, each group key,
    each clamped fixed-point value and each public bin index; the outer select
    only counts and sums those integers per group (and per bin of the
    :func:`split_histogram`), and keeps the groups of the declared domains
    (``HAVING``: once per group, not per row).

    Output columns: the group keys, then -- with a split histogram -- its bin index
    and the row count, then one column per cell of every other vector (the count
    is the row count when split).
    """
    cols = table.c
    keys: list[sa.ColumnElement[Any]] = [cols[name] for name in query.group_by]
    keys += [_bin_index(cols[b.column], b.edges, clamp=False) for b in query.binned]
    derived: list[sa.ColumnElement[Any]] = [
        k.label(f"g{i}") for i, k in enumerate(keys)
    ]
    for i, vector in enumerate(plan.vectors):
        col = cols[vector.column] if vector.column else None
        if vector.kind in ("sum", "sum_of_squares"):
            assert col is not None and vector.encoding is not None
            value = _encoded(col, vector.encoding)
            if vector.kind == "sum_of_squares":
                value = value * value
            derived.append(value.label(f"x{i}"))
        elif vector.kind != "count":
            assert col is not None and vector.edges is not None
            derived.append(_bin_index(col, vector.edges, clamp=True).label(f"x{i}"))
    conditions = [condition(cols[f.column], f) for f in query.filters]
    for b in query.binned:
        conditions.append(cols[b.column].between(b.edges[0], b.edges[-1]))
    rows = sa.select(*derived) if derived else sa.select(sa.literal(1).label("x"))
    rows = rows.select_from(table)
    if conditions:
        rows = rows.where(sa.and_(*conditions))
    inner = rows.subquery("r")
    split = split_histogram(plan)
    grouping = [inner.c[f"g{i}"] for i in range(len(keys))]
    if split is not None:
        grouping.append(inner.c[f"x{split}"])
    outputs: list[sa.ColumnElement[Any]] = list(grouping)
    if split is not None:
        outputs.append(sa.func.count().label("n"))
    for i, vector in enumerate(plan.vectors):
        if i == split or (vector.kind == "count" and split is not None):
            continue
        if vector.kind == "count":
            outputs.append(sa.func.count().label(f"v{i}_0"))
        elif vector.kind in ("sum", "sum_of_squares"):
            outputs.append(sa.func.sum(inner.c[f"x{i}"]).label(f"v{i}_0"))
        else:
            assert vector.edges is not None
            index = inner.c[f"x{i}"]
            for j in range(len(vector.edges) - 1):
                outputs.append(
                    sa.func.sum(sa.case((index == j, 1), else_=0)).label(f"v{i}_{j}")
                )
    stmt = sa.select(*outputs).select_from(inner)
    if grouping:
        stmt = stmt.group_by(*grouping)
    if query.group_by:
        # Only groups of the declared domains leave the source; checked once per
        # group rather than once per row.
        stmt = stmt.having(
            sa.and_(
                *(
                    inner.c[f"g{i}"].in_(list(group_domain(dataset.columns[name])))
                    for i, name in enumerate(query.group_by)
                )
            )
        )
    return stmt


class StatementCache:
    """Statistics ``SELECT`` statements recently built, by all that shapes them.

    A key holds the dataset, the table, the group-by, bins, filters (with their
    values) and the planned vectors (with their encodings): equal keys build equal
    statements, so a repeated query -- a dashboard's, say -- reuses its statement,
    and the source its compiled SQL.
    """

    def __init__(self, capacity: int = 256) -> None:
        self._items: OrderedDict[Hashable, sa.Select[Any]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def select(
        self,
        query: Query,
        dataset: DatasetSpec,
        table: TableClause,
        plan: privacy.ReleasePlan,
    ) -> sa.Select[Any]:
        """Return the statement of :func:`build_statistics_select`, built at most once."""
        key = (
            dataset.id,
            id(table),
            query.group_by,
            query.binned,
            query.filters,
            tuple((v.kind, v.column, v.edges, v.encoding) for v in plan.vectors),
        )
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        stmt = build_statistics_select(query, dataset, table, plan)
        with self._lock:
            self._items[key] = stmt
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return stmt


def exact_vectors(
    query: Query,
    dataset: DatasetSpec,
    groups: Layout,
    plan: privacy.ReleasePlan,
    rows: Sequence[Sequence[Any]],
) -> dict[str, list[int]]:
    """Spread the source's rows over the public layout; absent groups are zeros."""
    width = len(groups.columns)
    index = {key: i for i, key in enumerate(groups.keys)}
    kinds = [dataset.columns[name].type for name in query.group_by]
    labels = [b.labels() for b in query.binned]
    vectors = {v.name: [0] * v.length for v in plan.vectors}
    per_group = [v.length // len(groups.keys) for v in plan.vectors]
    split = split_histogram(plan)
    for row in rows:
        parts: list[Scalar] = []
        for i, kind in enumerate(kinds):
            parts.append(bool(row[i]) if kind == "boolean" else str(row[i]))
        for j, names in enumerate(labels):
            parts.append(names[int(row[len(kinds) + j])])
        position = index.get(tuple(parts))
        if position is None:
            continue
        column = width
        if split is not None:
            bin_of_rows, count = int(row[column]), int(row[column + 1])
            column += 2
        for v_index, (v, cells) in enumerate(zip(plan.vectors, per_group, strict=True)):
            cells_of = vectors[v.name]
            if split is not None and v_index == split:
                cells_of[position * cells + bin_of_rows] += count
            elif split is not None and v.kind == "count":
                cells_of[position] += count
            else:
                for c in range(cells):
                    cells_of[position * cells + c] += int(row[column] or 0)
                    column += 1
    return vectors


@dataclass(frozen=True)
class Released:
    """A query's statistics as they leave the node."""

    statistics: list[pb.Statistic]
    suppressed: list[bool]


def _statistic(vector: privacy.PlannedVector, groups: int) -> pb.Statistic:
    return pb.Statistic(
        name=vector.name,
        unit=1.0 / vector.unit if vector.unit else 1.0,
        cells_per_group=vector.length // groups,
    )


def plan_statistics(
    plan: privacy.ReleasePlan, groups: int, *, exact: bool
) -> list[pb.Statistic]:
    """Return the plan as statistics without values (the dry run)."""
    out = []
    for vector in plan.vectors:
        stat = _statistic(vector, groups)
        if exact:
            stat.mechanism = "none"
        else:
            stat.mechanism = vector.noise.mechanism
            stat.noise_scale = vector.noise.scale
            stat.half_width = float(vector.half_width)
        out.append(stat)
    return out


def release_statistics(
    plan: privacy.ReleasePlan,
    exact: Mapping[str, list[int]],
    groups: int,
    *,
    noise: bool,
    min_group_size: int | None,
) -> Released:
    """Noise (unless exact answers are allowed and asked for), then suppress."""
    if noise:
        released = privacy.release(plan, exact)
        values = {
            name: np.asarray(r.values, dtype=np.int64) for name, r in released.items()
        }
    else:
        values = {name: np.asarray(v, dtype=np.int64) for name, v in exact.items()}
    suppressed = [False] * groups
    if min_group_size and "count" in values:
        suppressed = [
            bool(x) for x in privacy.suppress(values["count"], min_group_size)
        ]
    statistics = plan_statistics(plan, groups, exact=not noise)
    for stat in statistics:
        vector = values[stat.name]
        cells = stat.cells_per_group
        for g, hidden in enumerate(suppressed):
            if hidden:
                vector[g * cells : (g + 1) * cells] = 0
        stat.values.extend(int(x) for x in vector)
    return Released(statistics, suppressed)
