"""TOML configuration files validated by pydantic, with every error located by line."""

from tomlconf._errors import ConfigError as ConfigError
from tomlconf._errors import ConfigFileMissing as ConfigFileMissing
from tomlconf._errors import Problem as Problem
from tomlconf._load import load as load
from tomlconf._load import read_toml as read_toml
from tomlconf._load import validate as validate
from tomlconf._locate import dotted as dotted
from tomlconf._locate import line_index as line_index
from tomlconf._locate import locate as locate

__all__ = [
    "ConfigError",
    "ConfigFileMissing",
    "Problem",
    "dotted",
    "line_index",
    "load",
    "locate",
    "read_toml",
    "validate",
]
