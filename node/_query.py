"""A validated aggregate query, checked against a dataset's declared schema."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

from accord.v1 import types_pb2
from node._config import ColumnSpec, DatasetSpec
from node._errors import InvalidQuery

Scalar = str | int | float | bool
Function = Literal[
    "count", "sum", "mean", "variance", "stddev", "histogram", "quantile"
]
Operator = Literal["=", "!=", "<", "<=", ">", ">=", "in", "between"]

NUMERIC = ("integer", "float")
GROUPABLE = ("category", "boolean")
MAX_AGGREGATIONS = 32
MAX_FILTERS = 32
MAX_GROUP_BY = 3
MAX_IN_VALUES = 1000
MAX_BINS = 256
MAX_CELLS = 100_000
VALUE_FUNCTIONS = ("sum", "mean", "variance", "stddev", "histogram", "quantile")
#: The policy action each function needs.
ACTION_OF: dict[str, str] = {"stddev": "variance"}


@dataclass(frozen=True)
class Aggregation:
    """One aggregate: a function over a column (``None``: rows).

    Histograms and quantiles carry public ``edges``; quantiles their levels.
    """

    function: Function
    column: str | None
    edges: tuple[float, ...] = ()
    quantiles: tuple[float, ...] = ()


@dataclass(frozen=True)
class Binning:
    """A numeric group-by column binned at public edges."""

    column: str
    edges: tuple[float, ...]

    def labels(self) -> tuple[str, ...]:
        """One label per bin: ``[a, b)``, the last closed."""
        pairs = list(zip(self.edges, self.edges[1:], strict=False))
        return tuple(
            f"[{_num(a)}, {_num(b)}{']' if i == len(pairs) - 1 else ')'}"
            for i, (a, b) in enumerate(pairs)
        )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@dataclass(frozen=True)
class Filter:
    """``column <op> values``; ``values`` has one item except for in and between."""

    column: str
    op: Operator
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Access:
    """Purpose, legal basis, justification and on-behalf-of of a request."""

    purpose: str = ""
    legal_basis: str = ""
    justification: str = ""
    on_behalf_of: str = ""


@dataclass(frozen=True)
class Query:
    """A query as received: structurally decoded, not yet checked against a schema."""

    query_id: str
    dataset: str
    aggregations: tuple[Aggregation, ...]
    filters: tuple[Filter, ...]
    group_by: tuple[str, ...]
    access: Access
    binned: tuple[Binning, ...] = ()
    dry_run: bool = False
    exact: bool = False

    def columns(self) -> frozenset[str]:
        """Every column the query reads."""
        cols = {a.column for a in self.aggregations if a.column}
        cols.update(f.column for f in self.filters)
        cols.update(self.group_by)
        cols.update(b.column for b in self.binned)
        return frozenset(cols)

    def value_columns(self) -> frozenset[str]:
        """Columns whose values are summed or ranked (they need declared bounds)."""
        return frozenset(
            a.column
            for a in self.aggregations
            if a.column and a.function in VALUE_FUNCTIONS
        )

    def actions(self) -> frozenset[str]:
        """Return the aggregate functions used, as policy actions."""
        return frozenset(
            ACTION_OF.get(a.function, a.function) for a in self.aggregations
        )


def check_query(query: Query, datasets: dict[str, DatasetSpec]) -> DatasetSpec:
    """Check ``query`` against the declared schema; return the dataset.

    Raises
    ------
    InvalidQuery
        Naming the first offending field (``aggregations[1].column`` ...).
    """
    if len(query.query_id) > 128:
        raise InvalidQuery("query_id", "at most 128 characters")
    dataset = datasets.get(query.dataset)
    if dataset is None:
        raise InvalidQuery(
            "dataset_id",
            f"unknown dataset {query.dataset!r}; this node declares "
            + ", ".join(sorted(datasets)),
            types_pb2.ERROR_REASON_UNKNOWN_DATASET,
        )
    if not query.aggregations:
        raise InvalidQuery("aggregations", "at least one aggregation is required")
    if len(query.aggregations) > MAX_AGGREGATIONS:
        raise InvalidQuery("aggregations", f"at most {MAX_AGGREGATIONS} aggregations")
    if len(query.filters) > MAX_FILTERS:
        raise InvalidQuery("filters", f"at most {MAX_FILTERS} filters")
    for i, agg in enumerate(query.aggregations):
        _check_aggregation(f"aggregations[{i}]", agg, dataset)
    for i, flt in enumerate(query.filters):
        _check_filter(f"filters[{i}]", flt, dataset)
    if len(query.group_by) > MAX_GROUP_BY:
        raise InvalidQuery(
            "group_by", f"at most {MAX_GROUP_BY} group-by column for now"
        )
    if len(set(query.group_by)) != len(query.group_by):
        raise InvalidQuery("group_by", "a column is listed twice")
    for i, name in enumerate(query.group_by):
        spec = _column(f"group_by[{i}]", name, dataset)
        if spec.type not in GROUPABLE:
            raise InvalidQuery(
                f"group_by[{i}]",
                f"column {name!r} is {spec.type}; group-by needs a category or boolean "
                "column with a declared domain",
                types_pb2.ERROR_REASON_TYPE_MISMATCH,
            )
    cells = 1
    for name in query.group_by:
        cells *= max(1, len(group_domain(dataset.columns[name])))
    for i, binning in enumerate(query.binned):
        spec = _column(f"binned_group_by[{i}].column", binning.column, dataset)
        if spec.type not in NUMERIC:
            raise InvalidQuery(
                f"binned_group_by[{i}].column",
                f"column {binning.column!r} is {spec.type}; binning needs a number column",
                types_pb2.ERROR_REASON_TYPE_MISMATCH,
            )
        _check_edges(f"binned_group_by[{i}].bin_edges", binning.edges)
        if (
            binning.column in query.group_by
            or [b.column for b in query.binned].count(binning.column) > 1
        ):
            raise InvalidQuery(
                f"binned_group_by[{i}].column", "a column is grouped twice"
            )
        cells *= len(binning.edges) - 1
    for i, agg in enumerate(query.aggregations):
        if agg.function == "histogram":
            cells_agg = cells * (len(agg.edges) - 1)
            if cells_agg > MAX_CELLS:
                raise InvalidQuery(
                    f"aggregations[{i}].bin_edges",
                    f"{cells_agg} cells (groups x bins); at most {MAX_CELLS}",
                )
    if cells > MAX_CELLS:
        raise InvalidQuery("group_by", f"{cells} groups; at most {MAX_CELLS}")
    return dataset


def _check_edges(field: str, edges: tuple[float, ...]) -> None:
    if not 2 <= len(edges) <= MAX_BINS + 1:
        raise InvalidQuery(field, f"expected 2 to {MAX_BINS + 1} public bin edges")
    if any(e != e or e in (float("inf"), float("-inf")) for e in edges):
        raise InvalidQuery(field, "bin edges must be finite numbers")
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise InvalidQuery(field, "bin edges must be strictly increasing")


def group_domain(spec: ColumnSpec) -> tuple[Scalar, ...]:
    """Return the declared, public keys of a group-by column."""
    if spec.type == "boolean":
        return (False, True)
    return tuple(spec.categories)


def _column(field: str, name: str, dataset: DatasetSpec) -> ColumnSpec:
    spec = dataset.columns.get(name)
    if spec is None:
        raise InvalidQuery(
            field,
            f"unknown column {name!r} in dataset {dataset.id!r}",
            types_pb2.ERROR_REASON_UNKNOWN_COLUMN,
        )
    return spec


def _check_aggregation(field: str, agg: Aggregation, dataset: DatasetSpec) -> None:
    if agg.column is None:
        if agg.function != "count":
            raise InvalidQuery(f"{field}.column", f"{agg.function} needs a column")
        return
    spec = _column(f"{field}.column", agg.column, dataset)
    if agg.function in VALUE_FUNCTIONS and spec.type not in NUMERIC:
        raise InvalidQuery(
            f"{field}.column",
            f"{agg.function} needs an integer or float column; {agg.column!r} is {spec.type}",
            types_pb2.ERROR_REASON_TYPE_MISMATCH,
        )
    if agg.function in ("histogram", "quantile"):
        _check_edges(f"{field}.bin_edges", agg.edges)
    elif agg.edges:
        raise InvalidQuery(f"{field}.bin_edges", f"{agg.function} takes no bin edges")
    if agg.function == "quantile":
        if not agg.quantiles or len(agg.quantiles) > 99:
            raise InvalidQuery(f"{field}.quantiles", "expected 1 to 99 quantile levels")
        if any(not 0.0 < q < 1.0 for q in agg.quantiles):
            raise InvalidQuery(f"{field}.quantiles", "quantile levels lie in (0, 1)")
    elif agg.quantiles:
        raise InvalidQuery(f"{field}.quantiles", f"{agg.function} takes no quantiles")


def _check_filter(field: str, flt: Filter, dataset: DatasetSpec) -> None:
    spec = _column(f"{field}.column", flt.column, dataset)
    if flt.op == "in":
        if not 1 <= len(flt.values) <= MAX_IN_VALUES:
            raise InvalidQuery(
                f"{field}.values", f"in needs 1 to {MAX_IN_VALUES} values"
            )
    elif flt.op == "between":
        if len(flt.values) != 2:
            raise InvalidQuery(f"{field}.values", "between needs exactly two values")
    elif len(flt.values) != 1:
        raise InvalidQuery(f"{field}.value", f"{flt.op} needs one value")
    if flt.op in ("<", "<=", ">", ">=", "between") and spec.type not in NUMERIC:
        raise InvalidQuery(
            f"{field}.operator",
            f"{flt.op} needs an integer or float column; {flt.column!r} is {spec.type}",
            types_pb2.ERROR_REASON_TYPE_MISMATCH,
        )
    for j, value in enumerate(flt.values):
        where = (
            f"{field}.value"
            if flt.op not in ("in", "between")
            else f"{field}.values[{j}]"
        )
        _check_value(where, value, spec, flt.column)
    if flt.op == "between" and flt.values[0] > flt.values[1]:  # type: ignore[operator]
        raise InvalidQuery(f"{field}.values", "between needs lower <= upper")


def _check_value(field: str, value: Scalar, spec: ColumnSpec, name: str) -> None:
    ok = {
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "category": isinstance(value, str),
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
    }[spec.type]
    if not ok:
        raise InvalidQuery(
            field,
            f"column {name!r} is {spec.type}; got a {type(value).__name__} value",
            types_pb2.ERROR_REASON_TYPE_MISMATCH,
        )
    if spec.type == "category" and value not in spec.categories:
        raise InvalidQuery(
            field,
            f"value is not in the declared domain of {name!r}",
            types_pb2.ERROR_REASON_TYPE_MISMATCH,
        )
