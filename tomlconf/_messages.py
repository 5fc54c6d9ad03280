"""Say what a pydantic error expected, in words for people who write TOML."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, time
from typing import Any

_TYPES = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "int_parsing": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected an array",
    "tuple_type": "expected an array",
    "set_type": "expected an array",
    "frozen_set_type": "expected an array",
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
    "datetime_type": (
        "expected a date-time with a UTC offset, e.g. 2026-01-01T00:00:00Z"
    ),
    "missing": "required field is missing",
    "extra_forbidden": "unknown field (check its spelling)",
}

_BOUNDS = {
    "greater_than": ("gt", "expected a number > {}"),
    "greater_than_equal": ("ge", "expected a number >= {}"),
    "less_than": ("lt", "expected a number < {}"),
    "less_than_equal": ("le", "expected a number <= {}"),
}

#: Types whose input is a whole table or array: not worth echoing back.
_NO_ECHO = frozenset({"model_type", "dict_type", "missing"})


def describe(err: Mapping[str, Any]) -> str:
    """Return one line saying what was expected, with the offending value if short.

    Parameters
    ----------
    err : Mapping[str, Any]
        One item of ``pydantic.ValidationError.errors()``.
    """
    kind = str(err["type"])
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    if kind in ("missing", "extra_forbidden"):
        return _TYPES[kind]
    if kind in _TYPES:
        message = _TYPES[kind]
    elif kind in _BOUNDS:
        key, template = _BOUNDS[kind]
        message = template.format(ctx.get(key, "?"))
    elif kind == "literal_error":
        message = f"expected one of {ctx.get('expected', '?')}"
    elif kind == "string_pattern_mismatch":
        message = f"expected a string matching the pattern {ctx.get('pattern', '?')}"
    elif kind == "too_short":
        count = ctx.get("min_length", 1)
        message = f"expected at least {count} item{'' if count == 1 else 's'}"
    elif kind == "too_long":
        count = ctx.get("max_length", 1)
        message = f"expected at most {count} item{'' if count == 1 else 's'}"
    elif kind == "string_too_short":
        count = ctx.get("min_length", 1)
        message = f"expected at least {count} character{'' if count == 1 else 's'}"
    elif kind == "string_too_long":
        count = ctx.get("max_length", 1)
        message = f"expected at most {count} character{'' if count == 1 else 's'}"
    else:
        message = str(err["msg"]).removeprefix("Value error, ")
    if "input" in err and kind not in _NO_ECHO:
        shown = _shown(err["input"])
        if len(shown) <= 60:
            message += f" (got {shown})"
    return message


def _shown(value: object) -> str:
    """Render an offending value as it looks in the file."""
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
