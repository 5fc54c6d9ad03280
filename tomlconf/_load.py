"""Load a TOML file into a pydantic model, reporting every problem with its position."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import pydantic

from tomlconf._errors import ConfigError, ConfigFileMissing, Problem
from tomlconf._locate import Position, dotted, locate_position, position_index
from tomlconf._messages import describe

M = TypeVar("M", bound=pydantic.BaseModel)

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


class Locator:
    """Turn field paths of one parsed file into located problems.

    Parameters
    ----------
    path : Path
        The file, named in every problem.
    text : str
        Its text, scanned once for the position of every key.
    columns : bool
        Whether problems carry the column of the offending key (``file:line:column``)
        or only its line (``file:line``).
    fallback : Position | None
        Where to place a problem none of whose path is in the file (a missing table),
        e.g. ``(1, 1)``; ``None`` leaves it unlocated.
    """

    def __init__(
        self,
        path: Path,
        text: str,
        *,
        columns: bool = True,
        fallback: Position | None = None,
    ) -> None:
        self.path = path
        self._index = position_index(text)
        self._columns = columns
        self._fallback = fallback

    def problem(
        self,
        loc: Sequence[str | int],
        message: str,
        *,
        at: Sequence[str | int] | None = None,
    ) -> Problem:
        """Return the problem ``message`` about field ``loc``.

        It is placed at the key of ``loc`` (or of ``at``, when the field itself is not
        in the file), at the longest part of that path found in the file.
        """
        position = locate_position(self._index, loc)
        if position is None and at is not None:
            position = locate_position(self._index, at)
        if position is None:
            position = self._fallback
        line = column = None
        if position is not None:
            line, column = position
        return Problem(
            self.path, line, column if self._columns else None, dotted(loc), message
        )

    def problems(self, exc: pydantic.ValidationError) -> list[Problem]:
        """Return one located problem per error of ``exc``, in file order."""
        found = [
            self.problem(tuple(err["loc"]), describe(err))
            for err in exc.errors(include_url=False)
        ]
        return sort_problems(found)


def sort_problems(problems: Sequence[Problem]) -> list[Problem]:
    """Return ``problems`` in file order, without duplicates."""
    unique = list(dict.fromkeys(problems))
    return sorted(
        unique,
        key=lambda p: (p.line is None, p.line or 0, p.column or 0, p.field),
    )


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
    return text, parse_toml(path, text)


def parse_toml(path: Path, text: str) -> dict[str, Any]:
    """Parse ``text`` (the content of ``path``); syntax errors become a ``ConfigError``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line = column = None
        if pos := _TOML_POS.search(message):
            line, column = int(pos.group(1)), int(pos.group(2))
            message = message[: pos.start()].strip()
        raise ConfigError(
            [Problem(path, line, column, "", f"invalid TOML: {message}")]
        ) from None


def validate(
    path: Path,
    text: str,
    data: dict[str, Any],
    model: type[M],
    *,
    columns: bool = False,
) -> M:
    """Validate parsed ``data`` against ``model``; every error is located in ``text``.

    Parameters
    ----------
    path, text, data
        The file, its text and its parsed content.
    model : type[M]
        The pydantic model of the whole file.
    columns : bool
        Whether problems carry the column of the offending key as well as its line.

    Raises
    ------
    ConfigError
        With every problem found, in file order.
    """
    try:
        return model.model_validate(data, context={"base_dir": path.parent})
    except pydantic.ValidationError as exc:
        raise ConfigError(Locator(path, text, columns=columns).problems(exc)) from None


def load(path: Path, model: type[M], *, columns: bool = False) -> M:
    """Read ``path`` and validate it as ``model``.

    Raises
    ------
    ConfigError
        With every problem found, each naming the file, the line and the field (and
        the column, with ``columns=True``).
    """
    text, data = read_toml(path)
    return validate(path, text, data, model, columns=columns)


def relative_to_file(value: Path, info: pydantic.ValidationInfo) -> Path:
    """Resolve a relative path against the folder of the file being validated.

    For field validators of models loaded with ``load``/``validate``, which pass the
    file's folder in the validation context; other paths are returned unchanged.
    """
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value
