"""Malformed policies: every problem at once, each at the line and column of its key."""

from __future__ import annotations

import copy
import random
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

import policies
import tomlconf

GOOD = """\
[policy]
uid = "urn:accord:agency-a:policy:1"
agency = "agency-a"
version = 2
valid_from = 2026-01-01T00:00:00Z
valid_until = 2027-01-01T00:00:00Z
delta = 1e-6

[policy.privacy_unit]
max_rows_per_person = 1
id_column = "person_id"

[datasets.incidents]
never_release = ["name"]

[datasets.incidents.columns.region]
type = "category"
categories = ["north", "south"]

[datasets.incidents.columns.severity]
type = "integer"
bounds = [1, 5]

[datasets.incidents.columns.note]
type = "string"

[[permissions]]
uid = "a-stats"
assignees = ["role:coordinator", "agency-b"]
purposes = ["statistics"]
actions = ["count", "mean"]
datasets = ["incidents"]
columns = ["region", "severity"]
group_by = ["region"]
max_rho = 0.05
default_rho = 0.01

[[permissions]]
uid = "a-train"
assignees = ["role:coordinator"]
purposes = ["training"]
actions = ["train"]
datasets = ["incidents"]
apps = [{ name = "lr", digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111" }]
max_rounds = 3

[[prohibitions]]
uid = "a-no-notes"
assignees = ["*"]
columns = ["note"]

[[budgets]]
uid = "a-budget"
assignees = ["*"]
rho_per_period = 1.0
period_days = 30
rho_lifetime = 5.0

[duties]
notify = "mailto:dpo@agency-a.example"
log_retention_days = 365
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[tomlconf.Problem]:
    with pytest.raises(policies.PolicyInvalid) as info:
        policies.load_policy(path)
    assert isinstance(info.value, tomlconf.ConfigError)  # node loaders catch this
    return info.value.problems


def position(text: str, marker: str) -> tuple[int, int]:
    """1-based line and column of the first occurrence of ``marker``."""
    assert text.count(marker) >= 1, marker
    offset = text.index(marker)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def test_the_good_policy_loads(tmp_path: Path) -> None:
    loaded = policies.load_policy(write(tmp_path, GOOD))
    assert loaded.policy.policy.uid == "urn:accord:agency-a:policy:1"


# (old text, new text, marker where the problem must point, field, words expected)
CASES = [
    # wrong types
    (
        "version = 2",
        'version = "2"',
        "version",
        "policy.version",
        "expected an integer",
    ),
    ("delta = 1e-6", "delta = true", "delta", "policy.delta", "expected a number"),
    ("delta = 1e-6", "delta = 0.5", "delta", "policy.delta", "<= 0.001"),
    (
        'columns = ["note"]',
        'columns = "note"',
        'columns = "note"',
        "prohibitions[0].columns",
        "expected an array",
    ),
    (
        "max_rows_per_person = 1",
        "max_rows_per_person = 1.5",
        "max_rows_per_person",
        "policy.privacy_unit.max_rows_per_person",
        "expected an integer",
    ),
    (
        "max_rho = 0.05",
        'max_rho = "0.05"',
        "max_rho",
        "permissions[0].max_rho",
        "expected a number",
    ),
    (
        "period_days = 30",
        "period_days = 0",
        "period_days",
        "budgets[0].period_days",
        ">= 1",
    ),
    (
        'notify = "mailto',
        'alert_threshold = 1.5\nnotify = "mailto',
        "alert_threshold",
        "duties.alert_threshold",
        "unknown field",
    ),
    (
        "rho_lifetime = 5.0",
        "rho_lifetime = 5.0\nalert_threshold = 1.5",
        "alert_threshold",
        "budgets[0].alert_threshold",
        "<= 1",
    ),
    (
        'actions = ["count", "mean"]',
        'actions = ["count", "median"]',
        '"median"',
        "permissions[0].actions[1]",
        "expected one of 'count', 'sum'",
    ),
    (
        'type = "string"',
        'type = "text"',
        'type = "text"',
        "datasets.incidents.columns.note.type",
        "'integer'",
    ),
    # unknown fields
    (
        "max_rho = 0.05",
        "max_rho = 0.05\nmax_epsilion = 1.0",
        "max_epsilion",
        "permissions[0].max_epsilion",
        "unknown field",
    ),
    ("[duties]", "[extras]\nx = 1\n\n[duties]", "extras", "extras", "unknown field"),
    (
        '[datasets.incidents]\nnever_release = ["name"]',
        '[datasets.incidents]\nnever_release = ["name"]\nowner = "x"',
        "owner",
        "datasets.incidents.owner",
        "unknown field",
    ),
    (
        'apps = [{ name = "lr", ',
        'apps = [{ nom = "lr", ',
        "nom",
        "permissions[1].apps[0].nom",
        "unknown field",
    ),
    # bad dates
    (
        "valid_from = 2026-01-01T00:00:00Z",
        "valid_from = 2026-01-01",
        "valid_from",
        "policy.valid_from",
        "date without a time",
    ),
    (
        "valid_from = 2026-01-01T00:00:00Z",
        "valid_from = 2026-01-01T00:00:00",
        "valid_from",
        "policy.valid_from",
        "no offset",
    ),
    (
        "valid_from = 2026-01-01T00:00:00Z",
        'valid_from = "next monday"',
        "valid_from",
        "policy.valid_from",
        "UTC offset",
    ),
    (
        "max_rounds = 3",
        "max_rounds = 3\nexpires = 12",
        "expires",
        "permissions[1].expires",
        "UTC offset",
    ),
    # names and identities
    (
        '"role:coordinator", "agency-b"',
        '"role:coordinator", "Agency B"',
        '"Agency B"',
        "permissions[0].assignees[1]",
        "agency name",
    ),
    (
        '"role:coordinator", "agency-b"',
        '"role:coordinator", "role:boss"',
        '"role:boss"',
        "permissions[0].assignees[1]",
        "role:officer",
    ),
    (
        '"role:coordinator", "agency-b"',
        '"role:coordinator", "spiffe://demo/agency-b"',
        '"spiffe://demo/agency-b"',
        "permissions[0].assignees[1]",
        "spiffe://<federation>",
    ),
    (
        'uid = "a-stats"',
        'uid = "a stats"',
        'uid = "a stats"',
        "permissions[0].uid",
        "pattern",
    ),
    (
        'digest = "sha256:1111',
        'digest = "md5:1111',
        "digest",
        "permissions[1].apps[0].digest",
        "sha256:",
    ),
    (
        'assignees = ["*"]\nrho_per',
        "assignees = []\nrho_per",
        "assignees = []",
        "budgets[0].assignees",
        "at least 1 item",
    ),
    (
        'uid = "a-budget"\n',
        "",
        "[[budgets]]",
        "budgets[0].uid",
        "required field is missing",
    ),
    # contradictions
    (
        "valid_until = 2027-01-01T00:00:00Z",
        "valid_until = 2025-01-01T00:00:00Z",
        "valid_until",
        "policy.valid_until",
        "later than valid_from",
    ),
    (
        "bounds = [1, 5]",
        "bounds = [5, 1]",
        "bounds",
        "datasets.incidents.columns.severity.bounds",
        "lower <= upper",
    ),
    (
        "bounds = [1, 5]",
        "bounds = [1.5, 5]",
        "bounds",
        "datasets.incidents.columns.severity.bounds",
        "whole numbers",
    ),
    (
        'type = "string"',
        'type = "string"\nbounds = [0, 1]',
        "bounds = [0, 1]",
        "datasets.incidents.columns.note.bounds",
        "only for integer and float",
    ),
    (
        'type = "string"',
        'type = "string"\ncategories = ["a"]',
        'categories = ["a"]',
        "datasets.incidents.columns.note.categories",
        "only for category",
    ),
    (
        'categories = ["north", "south"]',
        'categories = ["north", "north"]',
        '"north"]',
        "datasets.incidents.columns.region.categories[1]",
        "listed twice",
    ),
    (
        'columns = ["region", "severity"]',
        'columns = ["region", "severity", "name"]',
        '"name"]\ngroup',
        "permissions[0].columns[2]",
        "never_release",
    ),
    (
        'columns = ["region", "severity"]',
        'columns = ["region", "severity", "person_id"]',
        '"person_id"]',
        "permissions[0].columns[2]",
        "id_column",
    ),
    (
        'columns = ["region", "severity"]',
        'columns = ["region", "severity", "age"]',
        '"age"]',
        "permissions[0].columns[2]",
        "not declared in dataset incidents",
    ),
    (
        'group_by = ["region"]',
        'group_by = ["region", "severity"]',
        '"severity"]\nmax',
        "permissions[0].group_by[1]",
        "grouping needs a category",
    ),
    (
        'columns = ["region", "severity"]',
        'columns = ["severity"]',
        '"region"]\nmax',
        "permissions[0].group_by[0]",
        "not among the rule's columns",
    ),
    (
        'datasets = ["incidents"]\ncolumns',
        'datasets = ["incidents", "arrests"]\ncolumns',
        '"arrests"',
        "permissions[0].datasets[1]",
        "not declared under [datasets]",
    ),
    (
        'uid = "a-train"',
        'uid = "a-stats"',
        'uid = "a-stats"\nassignees = ["role:coordinator"]\n',
        "permissions[1].uid",
        "already used by permissions[0]",
    ),
    (
        'uid = "a-budget"',
        'uid = "a-no-notes"',
        'uid = "a-no-notes"\nassignees = ["*"]\nrho',
        "budgets[0].uid",
        "already used by prohibitions[0]",
    ),
    (
        "max_rho = 0.05",
        "max_rho = 0.05\nmax_epsilon = 3.0",
        "max_epsilon",
        "permissions[0].max_epsilon",
        "disagree at delta",
    ),
    (
        "default_rho = 0.01",
        "default_rho = 0.1",
        "default_rho",
        "permissions[0].default_rho",
        "exceeds the rule's cap",
    ),
    (
        'actions = ["train"]',
        'actions = ["count"]',
        "apps",
        "permissions[1].apps",
        "only for action train",
    ),
    (
        'apps = [{ name = "lr", digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111" }]\n',
        "",
        '"train"',
        "permissions[1].actions[0]",
        "needs the allowed apps",
    ),
    (
        'actions = ["train"]',
        'actions = ["count"]',
        "max_rounds",
        "permissions[1].max_rounds",
        "only for action train",
    ),
    (
        ', digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111" }',
        " }",
        "{ name",
        "permissions[1].apps[0].digest",
        "pins each app's code digest",
    ),
    (
        "max_rounds = 3",
        "max_rounds = 3\nexpires = 2025-06-01T00:00:00Z",
        "expires",
        "permissions[1].expires",
        "before the policy is valid",
    ),
    (
        "rho_per_period = 1.0\nperiod_days = 30\nrho_lifetime = 5.0\n",
        "",
        "[[budgets]]",
        "budgets[0]",
        "a budget needs a limit",
    ),
    (
        "period_days = 30\n",
        "",
        "rho_per_period",
        "budgets[0].rho_per_period",
        "needs period_days",
    ),
    (
        "rho_lifetime = 5.0",
        "rho_lifetime = 0.5",
        "rho_per_period",
        "budgets[0].rho_per_period",
        "exceeds rho_lifetime",
    ),
    (
        'notify = "mailto:dpo@agency-a.example"\n',
        "",
        "[duties]",
        "duties.notify",
        "under [duties]",
    ),
    (
        '[duties]\nnotify = "mailto:dpo@agency-a.example"\nlog_retention_days = 365\n',
        "",
        "[[budgets]]",
        "duties.notify",
        "under [duties]",
    ),
    (
        'columns = ["note"]',
        'columns = ["notes"]',
        '"notes"',
        "prohibitions[0].columns[0]",
        "not declared",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "marker", "field", "words"),
    CASES,
    ids=[f"{c[3]}: {c[4]}" for c in CASES],
)
def test_each_mistake_is_located_at_its_key(
    tmp_path: Path, old: str, new: str, marker: str, field: str, words: str
) -> None:
    assert old in GOOD, old
    text = GOOD.replace(old, new, 1)
    path = write(tmp_path, text)
    found = problems_of(path)
    match = [p for p in found if p.field == field]
    assert match, "\n".join(map(str, found))
    problem = match[0]
    assert words in problem.message, str(problem)
    line, column = position(text, marker.lstrip("\n"))
    if marker.startswith("["):  # a table header: its last key
        column += marker.rfind("[") + 1
    assert (problem.line, problem.column) == (line, column), str(problem)
    assert str(problem).startswith(f"{path}:{line}:{column}: {field}: ")


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    text = (
        GOOD.replace("version = 2", 'version = "two"')
        .replace('actions = ["count", "mean"]', 'actions = ["count", "median"]')
        .replace("bounds = [1, 5]", "bounds = [5, 1]")
        .replace('uid = "a-train"', 'uid = "a-stats"')
        .replace('columns = ["note"]', 'columns = ["note", "age"]')
        .replace("max_rho = 0.05", "max_rho = 0.05\ncolour = 1")
    )
    found = problems_of(write(tmp_path, text))
    assert [p.field for p in found] == [
        "policy.version",
        "datasets.incidents.columns.severity.bounds",
        "permissions[0].actions[1]",
        "permissions[0].colour",
        "permissions[1].uid",
        "prohibitions[0].columns[1]",
    ]
    lines = [p.line or 0 for p in found]
    assert lines == sorted(lines)


def test_a_typo_in_a_rule_hides_none_of_its_contradictions(tmp_path: Path) -> None:
    text = GOOD.replace(
        'actions = ["count", "mean"]', 'actions = ["count", 7]'
    ).replace(
        'columns = ["region", "severity"]', 'columns = ["region", "severity", "name"]'
    )
    fields = {p.field for p in problems_of(write(tmp_path, text))}
    assert fields == {"permissions[0].actions[1]", "permissions[0].columns[2]"}


def test_toml_syntax_errors_have_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('uid = "a-stats"', 'uid = "a-stats'))
    [problem] = problems_of(path)
    assert problem.line == position(GOOD, 'uid = "a-stats"')[0]
    assert problem.column is not None
    assert "invalid TOML" in problem.message


def test_a_missing_table_points_at_the_top_of_the_file(tmp_path: Path) -> None:
    text = GOOD.split("[datasets.incidents]")[1]
    found = problems_of(write(tmp_path, "[datasets.incidents]" + text))
    [missing] = [p for p in found if p.field == "policy"]
    assert (missing.line, missing.column) == (1, 1)
    assert missing.message == "required field is missing"


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(tomlconf.ConfigFileMissing, match="file not found"):
        policies.load_policy(tmp_path / "nope.toml")


def _corruptions(
    value: Any, path: tuple[Any, ...]
) -> list[tuple[tuple[Any, ...], Any]]:
    """One wrong-typed replacement per leaf of ``value``, and one extra key per table."""
    out: list[tuple[tuple[Any, ...], Any]] = []
    if isinstance(value, dict):
        out.append(((*path, "bogus_key"), 1))
        for key, item in value.items():
            out += _corruptions(item, (*path, key))
    elif isinstance(value, list):
        out.append((path, {"not": "a list"}))
        for index, item in enumerate(value):
            out += _corruptions(item, (*path, index))
    else:
        wrong: list[Any] = [[], {"x": 1}, "text", 12, -1.5, True]
        out += [(path, w) for w in wrong if type(w) is not type(value)][:3]
    return out


def test_no_malformed_policy_crashes_the_loader(tmp_path: Path) -> None:
    """Every corruption of every field gives located problems, never a traceback."""
    base = tomllib.loads(GOOD)
    rng = random.Random(2026)
    corruptions = _corruptions(base, ())
    for count in (1, 1, 2, 3):
        for _ in range(len(corruptions) // 4):
            data = copy.deepcopy(base)
            for path, wrong in rng.sample(corruptions, count):
                target: Any = data
                try:
                    for key in path[:-1]:
                        target = target[key]
                    target[path[-1]] = wrong
                except (KeyError, IndexError, TypeError):
                    continue  # an earlier corruption replaced the parent
            text = tomli_w.dumps(data)
            try:
                policies.parse_policy(text)
            except policies.PolicyInvalid as exc:
                assert exc.problems
                assert all(p.line is not None and p.column for p in exc.problems)
