"""Compile a checked query to one SQLAlchemy ``SELECT``, pushed down to the source.

Identifiers come only from the declared schema; every value is a bound parameter.
Group keys come from the declared domain, never from the data: the group-by column is
restricted to its domain in SQL and missing groups are filled in with zeros.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal_column, select
from sqlalchemy.sql.expression import ColumnClause, TableClause

from node._config import DatasetSpec
from node._query import Filter, Query, Scalar, group_domain
from node._result import GroupRow, Partial


def build_select(query: Query, dataset: DatasetSpec, table: TableClause) -> Select[Any]:
    """Return the aggregate ``SELECT`` for ``query`` over ``table``.

    Output columns: one per group-by column (``g0``...), then for aggregation ``i``
    ``n{i}`` (contributing count) and ``s{i}`` (sum, for sum and mean).
    """
    cols = table.c
    outputs: list[ColumnElement[Any]] = [
        cols[name].label(f"g{i}") for i, name in enumerate(query.group_by)
    ]
    for i, agg in enumerate(query.aggregations):
        if agg.column is None:
            outputs.append(func.count().label(f"n{i}"))
        else:
            outputs.append(func.count(cols[agg.column]).label(f"n{i}"))
        if agg.function in ("sum", "mean"):
            assert agg.column is not None
            outputs.append(func.sum(cols[agg.column]).label(f"s{i}"))
        else:
            outputs.append(literal_column("0").label(f"s{i}"))
    conditions = [_condition(cols[f.column], f) for f in query.filters]
    for name in query.group_by:
        domain = group_domain(dataset.columns[name])
        conditions.append(cols[name].in_(list(domain)))
    stmt = select(*outputs).select_from(table)
    if conditions:
        stmt = stmt.where(and_(*conditions))
    if query.group_by:
        stmt = stmt.group_by(*(cols[name] for name in query.group_by))
    return stmt


def _condition(col: ColumnClause[Any], flt: Filter) -> ColumnElement[bool]:
    v = flt.values
    match flt.op:
        case "=":
            return col == v[0]
        case "!=":
            return col != v[0]
        case "<":
            return col < v[0]
        case "<=":
            return col <= v[0]
        case ">":
            return col > v[0]
        case ">=":
            return col >= v[0]
        case "in":
            return col.in_(list(v))
        case "between":
            return col.between(v[0], v[1])
    raise AssertionError(flt.op)  # pragma: no cover - Operator is exhaustive


def assemble(
    query: Query, dataset: DatasetSpec, rows: Sequence[Sequence[Any]]
) -> list[GroupRow]:
    """Turn the source's rows into one ``GroupRow`` per key of the declared domain."""
    width = len(query.group_by)
    by_key: dict[tuple[Scalar, ...], Sequence[Any]] = {}
    for row in rows:
        key = tuple(
            _normalise(row[i], dataset.columns[query.group_by[i]].type)
            for i in range(width)
        )
        by_key[key] = row
    domains = [group_domain(dataset.columns[name]) for name in query.group_by]
    groups = []
    for key in itertools.product(*domains):
        found: Sequence[Any] = by_key.get(key, ())
        partials = []
        for i, agg in enumerate(query.aggregations):
            count = int(found[width + 2 * i]) if found else 0
            raw_sum = found[width + 2 * i + 1] if found else None
            total = float(raw_sum) if raw_sum is not None else 0.0
            if agg.function == "count":
                value: float | None = float(count)
            elif agg.function == "sum":
                value = total
            else:
                value = total / count if count else None
            partials.append(Partial(agg, value, count, total))
        groups.append(GroupRow(tuple(key), tuple(partials)))
    return groups


def _normalise(value: Any, kind: str) -> Scalar:
    if kind == "boolean":
        return bool(value)
    return str(value)
