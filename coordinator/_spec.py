"""A federated query as the analyst writes it, checked against the nodes' schemas."""

from __future__ import annotations

import itertools
import re
import uuid
from dataclasses import dataclass, field
from typing import Literal

from coordinator._errors import SpecError

Scalar = str | int | float | bool
Function = Literal[
    "count", "sum", "mean", "variance", "stddev", "histogram", "quantile"
]
Operator = Literal["=", "!=", "<", "<=", ">", ">=", "in", "between"]
FUNCTIONS: tuple[Function, ...] = (
    "count",
    "sum",
    "mean",
    "variance",
    "stddev",
    "histogram",
    "quantile",
)


@dataclass(frozen=True)
class Aggregation:
    """``function(column)``; a count without column counts rows."""

    function: Function
    column: str | None = None
    bin_edges: tuple[float, ...] = ()
    quantiles: tuple[float, ...] = ()

    @property
    def label(self) -> str:
        """``count``, ``mean(age)``..."""
        return (
            self.function if self.column is None else f"{self.function}({self.column})"
        )

    def output_labels(self) -> list[str]:
        """One label per released number: bins of a histogram, levels of quantiles."""
        if self.function == "histogram":
            edges = self.bin_edges
            last = len(edges) - 2
            return [
                f"{self.column}[{_num(a)}, {_num(b)}{']' if i == last else ')'}"
                for i, (a, b) in enumerate(itertools.pairwise(edges))
            ]
        if self.function == "quantile":
            return [f"q{_num(q)}({self.column})" for q in self.quantiles]
        return [self.label]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class Binning:
    """A numeric group-by column binned at public edges."""

    column: str
    bin_edges: tuple[float, ...]


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
    binned_group_by: tuple[Binning, ...] = ()
    epsilon: float | None = None
    rho: float | None = None
    exact: bool = False
    dry_run: bool = False
    secure_aggregation: bool = False
    min_participants: int = 3

    @property
    def group_columns(self) -> tuple[str, ...]:
        """Group-by columns, binned ones last (the order of group keys)."""
        return (*self.group_by, *(b.column for b in self.binned_group_by))


_AGG = re.compile(
    r"^(count|sum|mean|variance|stddev|histogram|quantile|median)"
    r"(?:[:(]([A-Za-z_][A-Za-z0-9_]*)\)?)?(?::(.+))?$"
)
_FILTER = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|!=|=|<|>| in | between )\s*(.+?)\s*$"
)


def parse_aggregation(text: str) -> Aggregation:
    """Parse one ``--aggregate`` option.

    ``count``, ``sum:col``, ``mean:col``, ``variance:col``, ``stddev:col``,
    ``histogram:col:0,10,20``, ``quantile:col:0.25,0.75:0,10,...,100`` (levels, then
    the public grid) and ``median:col:GRID``.
    """
    match = _AGG.match(text.strip())
    if match is None:
        raise SpecError(
            "--aggregate",
            f"{text!r}: expected count, FUNCTION:COLUMN (sum, mean, variance, stddev), "
            "histogram:COLUMN:EDGES or quantile:COLUMN:LEVELS:GRID",
        )
    name, column, rest = match.group(1), match.group(2), match.group(3)
    if name != "count" and column is None:
        raise SpecError(
            "--aggregate", f"{text!r}: {name} needs a column ({name}:COLUMN)"
        )
    try:
        if name == "histogram":
            return Aggregation("histogram", column, bin_edges=_floats(rest))
        if name == "median":
            return Aggregation(
                "quantile", column, bin_edges=_floats(rest), quantiles=(0.5,)
            )
        if name == "quantile":
            levels, _, grid = (rest or "").partition(":")
            return Aggregation(
                "quantile", column, bin_edges=_floats(grid), quantiles=_floats(levels)
            )
    except ValueError:
        raise SpecError(
            "--aggregate", f"{text!r}: expected comma-separated numbers"
        ) from None
    if rest:
        raise SpecError("--aggregate", f"{text!r}: {name} takes no extra arguments")
    function: Function = name  # type: ignore[assignment]
    return Aggregation(function, column)


def _floats(text: str | None) -> tuple[float, ...]:
    if not text:
        raise ValueError("numbers expected")
    return tuple(float(v) for v in text.split(","))


def parse_binning(text: str) -> Binning:
    """Parse ``column:e0,e1,...`` (public bin edges of a numeric group-by)."""
    column, _, edges = text.partition(":")
    try:
        return Binning(column.strip(), _floats(edges))
    except ValueError:
        raise SpecError(
            "--bin", f"{text!r}: expected COLUMN:EDGE,EDGE,... (public bin edges)"
        ) from None


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
