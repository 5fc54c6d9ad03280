"""Errors of TOML configuration loading.

* ConfigError            -- a configuration file cannot be used; lists every problem
  * ConfigFileMissing    -- the file does not exist or cannot be read
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One problem in a configuration file.

    Parameters
    ----------
    file : Path
        The file.
    line : int | None
        1-based line, when it could be located.
    column : int | None
        1-based column, when known.
    field : str
        Dotted field path, e.g. ``datasets[0].columns.age.type``; empty for syntax.
    message : str
        What is wrong and what was expected.
    """

    file: Path
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = str(self.file)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class ConfigError(Exception):
    """A configuration file cannot be used; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigFileMissing(ConfigError):
    """The configuration file does not exist or cannot be read."""
