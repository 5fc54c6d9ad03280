"""Conversions between ``accord.v1`` messages and the node's own types, in pairs."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

import policies
from accord.v1 import node_service_pb2 as pb
from accord.v1 import types_pb2
from node._config import ColumnSpec, DatasetSpec
from node._errors import InvalidQuery
from node._query import (
    Access,
    Aggregation,
    Binning,
    Filter,
    Function,
    Operator,
    Query,
    Scalar,
)

_FUNCTIONS: dict[int, Function] = {
    pb.AGGREGATE_FUNCTION_COUNT: "count",
    pb.AGGREGATE_FUNCTION_SUM: "sum",
    pb.AGGREGATE_FUNCTION_MEAN: "mean",
    pb.AGGREGATE_FUNCTION_VARIANCE: "variance",
    pb.AGGREGATE_FUNCTION_STDDEV: "stddev",
    pb.AGGREGATE_FUNCTION_HISTOGRAM: "histogram",
    pb.AGGREGATE_FUNCTION_QUANTILE: "quantile",
}
_FUNCTION_CODES: dict[Function, pb.AggregateFunction.ValueType] = {
    name: pb.AggregateFunction.ValueType(code) for code, name in _FUNCTIONS.items()
}
_OPERATORS: dict[int, Operator] = {
    pb.FILTER_OPERATOR_EQUAL: "=",
    pb.FILTER_OPERATOR_NOT_EQUAL: "!=",
    pb.FILTER_OPERATOR_LESS: "<",
    pb.FILTER_OPERATOR_LESS_EQUAL: "<=",
    pb.FILTER_OPERATOR_GREATER: ">",
    pb.FILTER_OPERATOR_GREATER_EQUAL: ">=",
    pb.FILTER_OPERATOR_IN: "in",
    pb.FILTER_OPERATOR_BETWEEN: "between",
}
_COLUMN_TYPES = {
    "integer": types_pb2.COLUMN_TYPE_INTEGER,
    "float": types_pb2.COLUMN_TYPE_FLOAT,
    "category": types_pb2.COLUMN_TYPE_CATEGORY,
    "string": types_pb2.COLUMN_TYPE_STRING,
    "boolean": types_pb2.COLUMN_TYPE_BOOLEAN,
}


def value_from_proto(field: str, value: types_pb2.Value) -> Scalar:
    """Decode a ``Value``; an unset value is an error naming ``field``."""
    kind = value.WhichOneof("kind")
    if kind is None:
        raise InvalidQuery(field, "a value is required")
    result: Scalar = getattr(value, kind)
    return result


def privacy_from_proto(privacy: pb.PrivacyRequest) -> policies.PrivacyLoss | None:
    """Decode the privacy loss a request asks for; unset means the policy's default."""
    kind = privacy.WhichOneof("loss")
    if kind is None:
        return None
    value = float(getattr(privacy, kind))
    if not value > 0 or value != value or value == float("inf"):
        raise InvalidQuery(f"privacy.{kind}", "expected a positive, finite number")
    if kind == "epsilon":
        return policies.PrivacyLoss(epsilon=value)
    return policies.PrivacyLoss(rho=value)


def value_to_proto(value: Scalar) -> types_pb2.Value:
    """Encode a scalar as a ``Value``."""
    if isinstance(value, bool):
        return types_pb2.Value(bool_value=value)
    if isinstance(value, int):
        return types_pb2.Value(int_value=value)
    if isinstance(value, float):
        return types_pb2.Value(double_value=value)
    return types_pb2.Value(string_value=value)


def query_from_proto(request: pb.RunQueryRequest) -> Query:
    """Decode a ``RunQueryRequest`` structurally (the schema check comes after)."""
    aggregations = []
    for i, agg in enumerate(request.aggregations):
        function = _FUNCTIONS.get(agg.function)
        if function is None:
            raise InvalidQuery(
                f"aggregations[{i}].function",
                "expected COUNT, SUM, MEAN, VARIANCE, STDDEV, HISTOGRAM or QUANTILE",
            )
        aggregations.append(
            Aggregation(
                function,
                agg.column or None,
                tuple(agg.bin_edges),
                tuple(agg.quantiles),
            )
        )
    filters = []
    for i, flt in enumerate(request.filters):
        op = _OPERATORS.get(flt.operator)
        if op is None:
            raise InvalidQuery(f"filters[{i}].operator", "an operator is required")
        if op in ("in", "between"):
            values = tuple(
                value_from_proto(f"filters[{i}].values[{j}]", v)
                for j, v in enumerate(flt.values)
            )
        else:
            values = (value_from_proto(f"filters[{i}].value", flt.value),)
        filters.append(Filter(flt.column, op, values))
    if not request.dataset_id:
        raise InvalidQuery("dataset_id", "a dataset is required")
    access = Access(
        purpose=request.access.purpose,
        legal_basis=request.access.legal_basis,
        justification=request.access.justification,
        on_behalf_of=request.access.on_behalf_of,
    )
    return Query(
        query_id=request.query_id,
        dataset=request.dataset_id,
        aggregations=tuple(aggregations),
        filters=tuple(filters),
        group_by=tuple(request.group_by),
        access=access,
        binned=tuple(
            Binning(g.column, tuple(g.bin_edges)) for g in request.binned_group_by
        ),
        dry_run=request.dry_run,
        exact=request.privacy.exact,
    )


def column_to_proto(name: str, spec: ColumnSpec) -> types_pb2.Column:
    """Publish one column's metadata."""
    column = types_pb2.Column(
        name=name,
        type=_COLUMN_TYPES[spec.type],
        description=spec.description,
        categories=spec.categories,
        nullable=spec.nullable,
    )
    if spec.bounds is not None:
        column.lower_bound, column.upper_bound = spec.bounds
    return column


def dataset_to_proto(agency: str, spec: DatasetSpec) -> types_pb2.Dataset:
    """Publish a dataset's metadata: never its source or rows."""
    return types_pb2.Dataset(
        name=f"agencies/{agency}/datasets/{spec.id}",
        dataset_id=spec.id,
        description=spec.description,
        columns=[column_to_proto(n, c) for n, c in spec.columns.items()],
    )


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """Convert an aware datetime to a ``Timestamp``."""
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment)
    return ts
