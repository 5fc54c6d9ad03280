"""Conversions between the coordinator's query spec and ``accord.v1`` messages."""

from __future__ import annotations

from accord.v1 import node_service_pb2 as pb
from accord.v1 import types_pb2
from coordinator._spec import Function, Operator, QuerySpec, Scalar

_FUNCTION_CODES: dict[Function, pb.AggregateFunction.ValueType] = {
    "count": pb.AGGREGATE_FUNCTION_COUNT,
    "sum": pb.AGGREGATE_FUNCTION_SUM,
    "mean": pb.AGGREGATE_FUNCTION_MEAN,
    "variance": pb.AGGREGATE_FUNCTION_VARIANCE,
    "stddev": pb.AGGREGATE_FUNCTION_STDDEV,
    "histogram": pb.AGGREGATE_FUNCTION_HISTOGRAM,
    "quantile": pb.AGGREGATE_FUNCTION_QUANTILE,
}
_OPERATOR_CODES: dict[Operator, pb.FilterOperator.ValueType] = {
    "=": pb.FILTER_OPERATOR_EQUAL,
    "!=": pb.FILTER_OPERATOR_NOT_EQUAL,
    "<": pb.FILTER_OPERATOR_LESS,
    "<=": pb.FILTER_OPERATOR_LESS_EQUAL,
    ">": pb.FILTER_OPERATOR_GREATER,
    ">=": pb.FILTER_OPERATOR_GREATER_EQUAL,
    "in": pb.FILTER_OPERATOR_IN,
    "between": pb.FILTER_OPERATOR_BETWEEN,
}

COLUMN_TYPE_NAMES: dict[int, str] = {
    types_pb2.COLUMN_TYPE_INTEGER: "integer",
    types_pb2.COLUMN_TYPE_FLOAT: "float",
    types_pb2.COLUMN_TYPE_CATEGORY: "category",
    types_pb2.COLUMN_TYPE_STRING: "string",
    types_pb2.COLUMN_TYPE_BOOLEAN: "boolean",
}


def value_to_proto(value: Scalar) -> types_pb2.Value:
    """Encode a scalar as a typed ``Value``."""
    if isinstance(value, bool):
        return types_pb2.Value(bool_value=value)
    if isinstance(value, int):
        return types_pb2.Value(int_value=value)
    if isinstance(value, float):
        return types_pb2.Value(double_value=value)
    return types_pb2.Value(string_value=value)


def spec_to_proto(spec: QuerySpec) -> pb.RunQueryRequest:
    """Encode a (typed) spec as the request every node receives."""
    request = pb.RunQueryRequest(
        query_id=spec.query_id,
        dataset_id=spec.dataset,
        group_by=list(spec.group_by),
        access=types_pb2.AccessContext(
            purpose=spec.purpose,
            legal_basis=spec.legal_basis,
            justification=spec.justification,
            on_behalf_of=spec.on_behalf_of,
        ),
    )
    for agg in spec.aggregations:
        request.aggregations.add(
            function=_FUNCTION_CODES[agg.function],
            column=agg.column or "",
            bin_edges=agg.bin_edges,
            quantiles=agg.quantiles,
        )
    for binning in spec.binned_group_by:
        request.binned_group_by.add(column=binning.column, bin_edges=binning.bin_edges)
    if spec.epsilon is not None:
        request.privacy.epsilon = spec.epsilon
    elif spec.rho is not None:
        request.privacy.rho = spec.rho
    request.privacy.exact = spec.exact
    request.dry_run = spec.dry_run
    for flt in spec.filters:
        msg = request.filters.add(column=flt.column, operator=_OPERATOR_CODES[flt.op])
        if flt.op in ("in", "between"):
            msg.values.extend(value_to_proto(v) for v in flt.values)
        else:
            msg.value.CopyFrom(value_to_proto(flt.values[0]))
    return request
