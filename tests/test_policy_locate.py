"""tomlconf finds the line and column of every key, table and array item."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pydantic
import pytest

import tomlconf

TEXT = '''\
# a comment [not.a.table]
[policy]
uid = "x"   # trailing comment with = sign
"quoted.key" = 1
a.b . c = [1,
  # a comment inside an array
  "two", {x = 1, y = [3, 4]}, ]
s = """multi
line \\""" with [brackets] and = signs"""
l = \'\'\'literal
{ not a table }\'\'\'
d = 1979-05-27 07:32:00Z

[[perms]]
uid = "p"

[[perms]]
uid = "q"
cols = {age = {type = "int", bounds = [0, 1]}}

[[perms.apps]]
name = "n"

[datasets."inc".columns.age]
type = "integer"
'''


@pytest.mark.parametrize(
    ("path", "position"),
    [
        (("policy",), (2, 2)),
        (("policy", "uid"), (3, 1)),
        (("policy", "quoted.key"), (4, 1)),
        (("policy", "a", "b", "c"), (5, 7)),
        (("policy", "a", "b", "c", 1), (7, 3)),
        (("policy", "a", "b", "c", 2, "y", 1), (7, 26)),
        (("policy", "s"), (8, 1)),
        (("policy", "l"), (10, 1)),
        (("policy", "d"), (12, 1)),
        (("perms", 0, "uid"), (15, 1)),
        (("perms", 1), (17, 3)),
        (("perms", 1, "cols", "age", "bounds", 1), (19, 43)),
        (("perms", 1, "apps", 0, "name"), (22, 1)),
        (("datasets", "inc", "columns", "age"), (24, 25)),
        (("datasets", "inc", "columns", "age", "type"), (25, 1)),
    ],
)
def test_positions(path: tuple[str | int, ...], position: tuple[int, int]) -> None:
    tomllib.loads(TEXT)  # the scanner only sees valid TOML
    assert tomlconf.position_index(TEXT)[path] == position
    assert tomlconf.line_index(TEXT)[path] == position[0]


def test_longest_prefix() -> None:
    index = tomlconf.position_index(TEXT)
    assert tomlconf.locate_position(index, ("perms", 1, "cols", "age", "nope")) == (
        19,
        9,
    )
    assert tomlconf.locate_position(index, ("nowhere",)) is None


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str
    size: int


def test_columns_are_opt_in(tmp_path: Path) -> None:
    """Line-only problems stay as they were; callers ask for columns."""
    path = tmp_path / "c.toml"
    path.write_text('name = "a"\n  size = "big"\n')
    with pytest.raises(tomlconf.ConfigError) as info:
        tomlconf.load(path, _Model)
    assert str(info.value.problems[0]).startswith(f"{path}:2: size: ")
    with pytest.raises(tomlconf.ConfigError) as info:
        tomlconf.load(path, _Model, columns=True)
    [problem] = info.value.problems
    assert (problem.line, problem.column) == (2, 3)
    assert str(problem) == f"{path}:2:3: size: expected an integer (got 'big')"


def test_a_problem_about_an_absent_key_points_elsewhere(tmp_path: Path) -> None:
    locator = tomlconf.Locator(tmp_path / "f.toml", "[a]\nb = 1\n")
    assert locator.problem(("c", "d"), "m", at=("a", "b")).line == 2
    assert locator.problem(("c",), "m").line is None
    fallback = tomlconf.Locator(tmp_path / "f.toml", "[a]\n", fallback=(1, 1))
    assert (
        fallback.problem(("c",), "m").line,
        fallback.problem(("c",), "m").column,
    ) == (
        1,
        1,
    )
