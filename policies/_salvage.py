"""Keep what is valid of an invalid table, so contradictions elsewhere are still found.

Only the consistency checks read salvaged parts, and only to report problems: a
salvaged value never becomes a policy in force.
"""

from __future__ import annotations

from functools import cache
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import pydantic
from pydantic.fields import FieldInfo

M = TypeVar("M", bound=pydantic.BaseModel)

_MISSING: Any = object()


def valid(model: type[M], raw: object) -> M | None:
    """Return ``raw`` validated as ``model``, or ``None``."""
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError:
        return None


def salvage(model: type[M], raw: object) -> M | None:
    """Return ``raw`` as ``model``, keeping valid fields and neutral stand-ins for others.

    Invalid optional fields fall back to their defaults; invalid required fields get
    an empty value of their type (``""``, ``[]``, ...). ``None`` when ``raw`` is not a
    table or a required field has no neutral value (a missing column type).
    """
    if not isinstance(raw, dict):
        return None
    whole = valid(model, raw)
    if whole is not None:
        return whole
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        value = _field(model, name, info, raw[name]) if name in raw else _MISSING
        if value is _MISSING:
            if not info.is_required():
                values[name] = info.get_default(call_default_factory=True)
                continue
            value = _neutral(info.annotation)
            if value is _MISSING:
                return None
        values[name] = value
    return model.model_construct(**values)


@cache
def _adapter(model: type[pydantic.BaseModel], name: str) -> pydantic.TypeAdapter[Any]:
    info = model.model_fields[name]
    annotation: Any = info.annotation
    if info.metadata:
        annotation = Annotated[annotation, *info.metadata]
    return pydantic.TypeAdapter(annotation)


def _field(
    model: type[pydantic.BaseModel], name: str, info: FieldInfo, raw: Any
) -> Any:
    try:
        return _adapter(model, name).validate_python(raw, strict=True)
    except pydantic.ValidationError:
        pass
    annotation: Any = info.annotation
    origin = get_origin(annotation)
    args = get_args(annotation)
    if _is_model(annotation):
        result = salvage(annotation, raw)
        return _MISSING if result is None else result
    if origin is list and args and _is_model(args[0]) and isinstance(raw, list):
        return [item for item in (valid(args[0], r) for r in raw) if item is not None]
    if (
        origin is dict
        and len(args) == 2
        and _is_model(args[1])
        and isinstance(raw, dict)
    ):
        kept = {str(k): valid(args[1], v) for k, v in raw.items()}
        return {k: v for k, v in kept.items() if v is not None}
    return _MISSING


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)


def _neutral(annotation: Any) -> Any:
    """Return an empty value of ``annotation``'s type, or ``_MISSING``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _neutral(get_args(annotation)[0])
    if origin in (Union, UnionType) and NoneType in get_args(annotation):
        return None
    if origin is list or annotation is list:
        return []
    if origin is dict or annotation is dict:
        return {}
    if origin is Literal:
        return _MISSING
    if _is_model(annotation):
        result = salvage(annotation, {})
        return _MISSING if result is None else result
    return {str: "", bool: False, int: 1, float: 1.0}.get(annotation, _MISSING)
