"""A federated query as the analyst writes it, checked against the nodes' schemas."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Literal

from coordinator._errors import SpecError

Scalar = str | int | float | bool
Function = Literal["count", "sum", "mean"]
Operator = Literal["=", "!=", "<", "<=", ">", ">=", "in", "between"]
FUNCTIONS: tuple[Function, ...] = ("count", "sum", "mean")


@dataclass(frozen=True)
class Aggregation:
    """``function(column)``; a count without column counts rows."""

    function: Function
    column: str | None = None

    @property
    def label(self) -> str:
        """``count``, ``mean(age)``..."""
        return (
            self.function if self.column is None else f"{self.function}({self.column})"
        )


@dataclass(frozen=True)
class Filter:
    """``column op values``; values stay strings until checked against a schema."""

    column: str
    op: Operator
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class QuerySpec:
    """What to compute, over which dataset, why."""

    dataset: str
    aggregations: tuple[Aggregation, ...]
    filters: tuple[Filter, ...] = ()
    group_by: tuple[str, ...] = ()
    purpose: str = ""
    legal_basis: str = ""
    justification: str = ""
    on_behalf_of: str = ""
    query_id: str = field(default_factory=lambda: uuid.uuid4().hex)


_AGG = re.compile(r"^(count|sum|mean)(?:[:(]([A-Za-z_][A-Za-z0-9_]*)\)?)?$")
_FILTER = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|!=|=|<|>| in | between )\s*(.+?)\s*$"
)


def parse_aggregation(text: str) -> Aggregation:
    """Parse ``count``, ``count:col``, ``sum:col``, ``mean(col)``."""
    match = _AGG.match(text.strip())
    if match is None:
        raise SpecError(
            "--aggregate",
            f"{text!r}: expected count, count:COLUMN, sum:COLUMN or mean:COLUMN",
        )
    function: Function = match.group(1)  # type: ignore[assignment]
    column = match.group(2)
    if function != "count" and column is None:
        raise SpecError(
            "--aggregate", f"{text!r}: {function} needs a column ({function}:COLUMN)"
        )
    return Aggregation(function, column)


def parse_filter(text: str) -> Filter:
    """Parse ``col=value``, ``col>=3``, ``col in a,b``, ``col between 1,5``."""
    match = _FILTER.match(text)
    if match is None:
        raise SpecError(
            "--where",
            f"{text!r}: expected COLUMN OP VALUE with OP one of = != < <= > >= in between",
        )
    column, op, raw = match.group(1), match.group(2).strip(), match.group(3)
    values: tuple[Scalar, ...]
    if op in ("in", "between"):
        values = tuple(v.strip() for v in raw.split(",") if v.strip())
    else:
        values = (raw,)
    return Filter(column, op, values)  # type: ignore[arg-type]
