"""TOML configuration files validated by pydantic, with every error located.

Each problem names the file, the line (and, on request, the column) of the offending
key, the dotted field path and what was expected; all problems are reported at once.
"""

from tomlconf._errors import ConfigError as ConfigError
from tomlconf._errors import ConfigFileMissing as ConfigFileMissing
from tomlconf._errors import Problem as Problem
from tomlconf._load import Locator as Locator
from tomlconf._load import load as load
from tomlconf._load import parse_toml as parse_toml
from tomlconf._load import read_toml as read_toml
from tomlconf._load import relative_to_file as relative_to_file
from tomlconf._load import sort_problems as sort_problems
from tomlconf._load import validate as validate
from tomlconf._locate import FieldPath as FieldPath
from tomlconf._locate import Position as Position
from tomlconf._locate import dotted as dotted
from tomlconf._locate import line_index as line_index
from tomlconf._locate import locate as locate
from tomlconf._locate import locate_position as locate_position
from tomlconf._locate import position_index as position_index
from tomlconf._messages import describe as describe

__all__ = [
    "ConfigError",
    "ConfigFileMissing",
    "FieldPath",
    "Locator",
    "Position",
    "Problem",
    "describe",
    "dotted",
    "line_index",
    "load",
    "locate",
    "locate_position",
    "parse_toml",
    "position_index",
    "read_toml",
    "relative_to_file",
    "sort_problems",
    "validate",
]
