"""Load a TOML file into a pydantic model, reporting every problem with its line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import pydantic

from tomlconf._errors import ConfigError, ConfigFileMissing, Problem
from tomlconf._locate import dotted, line_index, locate

M = TypeVar("M", bound=pydantic.BaseModel)

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    """Read and parse ``path``; syntax errors become a located ``ConfigError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileMissing(
            [Problem(path, None, None, "", "file not found")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileMissing(
            [Problem(path, None, None, "", f"cannot be read: {exc}")]
        ) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line = column = None
        if pos := _TOML_POS.search(message):
            line, column = int(pos.group(1)), int(pos.group(2))
            message = message[: pos.start()].strip()
        raise ConfigError(
            [Problem(path, line, column, "", f"invalid TOML: {message}")]
        ) from None


def validate(path: Path, text: str, data: dict[str, Any], model: type[M]) -> M:
    """Validate parsed ``data`` against ``model``; every error is located in ``text``."""
    try:
        return model.model_validate(data, context={"base_dir": path.parent})
    except pydantic.ValidationError as exc:
        index = line_index(text)
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            problems.append(
                Problem(path, locate(index, loc), None, dotted(loc), _message(err))
            )
        raise ConfigError(problems) from None


def load(path: Path, model: type[M]) -> M:
    """Read ``path`` and validate it as ``model``.

    Raises
    ------
    ConfigError
        With every problem found, each naming the file, the line and the field.
    """
    text, data = read_toml(path)
    return validate(path, text, data, model)


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (check its spelling)"
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    if "input" in err and kind not in {"model_type", "dict_type"}:
        shown = repr(err["input"])
        if len(shown) <= 60:
            msg += f" (got {shown})"
    return msg
