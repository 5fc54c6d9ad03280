"""Row filters as SQL conditions: every value a bound parameter.

Identifiers come only from the declared schema (the query was checked against it);
values never enter the SQL text.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement
from sqlalchemy.sql.expression import ColumnClause

from node._query import Filter


def condition(col: ColumnClause[Any], flt: Filter) -> ColumnElement[bool]:
    """Return ``col <op> values`` for one filter.

    Every value is a bound parameter -- booleans too: SQLAlchemy would render a
    literal ``= 1`` for ``True``, which DuckDB compares by casting every row.
    """
    v = [sa.literal(value) for value in flt.values]
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
            return col.in_(v)
        case "between":
            return col.between(v[0], v[1])
    raise AssertionError(flt.op)  # pragma: no cover - Operator is exhaustive
