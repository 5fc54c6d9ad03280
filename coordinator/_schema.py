"""Check a spec against the schema the nodes publish and type its values (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from accord.v1 import node_service_pb2 as pb
from accord.v1 import types_pb2
from coordinator._errors import SchemaMismatch
from coordinator._serde import COLUMN_TYPE_NAMES
from coordinator._spec import Filter, QuerySpec, Scalar


def find_dataset(
    infos: Sequence[pb.GetNodeInfoResponse], dataset: str
) -> types_pb2.Dataset | None:
    """Return the first published schema of ``dataset`` among the nodes' infos."""
    for info in infos:
        for ds in info.datasets:
            if ds.dataset_id == dataset:
                return ds
    return None


def typed_spec(spec: QuerySpec, schema: types_pb2.Dataset) -> QuerySpec:
    """Check column names and convert string filter values to the declared types.

    Raises
    ------
    SchemaMismatch
        Naming the spec field and what the schema expects.
    """
    columns = {c.name: c for c in schema.columns}

    def known(field: str, name: str) -> types_pb2.Column:
        column = columns.get(name)
        if column is None:
            raise SchemaMismatch(
                field,
                f"unknown column {name!r} in dataset {schema.dataset_id!r}; it has "
                + ", ".join(columns),
            )
        return column

    for i, agg in enumerate(spec.aggregations):
        if agg.column is not None:
            known(f"aggregations[{i}].column", agg.column)
    for i, name in enumerate(spec.group_by):
        known(f"group_by[{i}]", name)
    filters = []
    for i, flt in enumerate(spec.filters):
        column = known(f"filters[{i}].column", flt.column)
        kind = COLUMN_TYPE_NAMES.get(column.type, "string")
        values = tuple(
            _coerce(f"filters[{i}].values[{j}]", v, kind)
            for j, v in enumerate(flt.values)
        )
        filters.append(Filter(flt.column, flt.op, values))
    return dataclasses.replace(spec, filters=tuple(filters))


def _coerce(field: str, value: Scalar, kind: str) -> Scalar:
    if not isinstance(value, str):
        return value
    try:
        if kind == "integer":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError:
        raise SchemaMismatch(field, f"{value!r} is not a valid {kind}") from None
    if kind == "boolean":
        lowered = value.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise SchemaMismatch(field, f"{value!r} is not a boolean (true or false)")
    return value
