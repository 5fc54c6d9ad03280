"""``accord policy check|explain|schema`` through ``typer.testing.CliRunner``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import policies
from accord_cli import app
from tests.test_policy_errors import GOOD

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "policy.toml"

HUB = "spiffe://demo/agency/hub/coordinator/analyst"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["policy", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def request_file(tmp_path: Path, **fields: object) -> Path:
    body = {
        "requester": HUB,
        "dataset": "incidents",
        "actions": ["count", "mean"],
        "columns": ["severity"],
        "value_columns": ["severity"],
        "group_by": ["region"],
        "purpose": "statistics",
        "legal_basis": "LED-2016/680 Art.8(1)",
        **fields,
    }
    return write(tmp_path, "request.json", json.dumps(body))


# --- check -----------------------------------------------------------------------------


def test_check_summarises_a_valid_policy(tmp_path: Path) -> None:
    code, out, _ = run("check", str(EXAMPLE))
    assert code == 0
    assert f"{EXAMPLE}: valid" in out
    assert "policy urn:accord:agency-a:policy:1 of agency-a, version 1" in out
    assert "a-statistics: role:coordinator may count, sum, mean on incidents" in out
    assert "a-no-case-ids: never for *: columns incident_id" in out
    assert "a-per-requester: each requester: rho 1" in out
    assert "never released: suspect_name, address, person_id" in out


def test_check_json_of_a_valid_policy() -> None:
    code, out, _ = run("check", str(EXAMPLE), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["valid"] is True
    assert data["digest"] == policies.load_policy(EXAMPLE).digest
    assert data["policy"]["policy"]["uid"] == "urn:accord:agency-a:policy:1"
    assert [p["uid"] for p in data["policy"]["permissions"]] == [
        "a-statistics",
        "a-border-guard-counts",
    ]
    assert any(line.startswith("a-statistics:") for line in data["summary"])


def test_check_reports_every_error_with_line_and_column(tmp_path: Path) -> None:
    text = GOOD.replace("version = 2", 'version = "2"').replace(
        "bounds = [1, 5]", "bounds = [5, 1]"
    )
    path = write(tmp_path, "policy.toml", text)
    code, out, err = run("check", str(path))
    assert code == 1
    assert out.splitlines() == [
        f"{path}:4:1: policy.version: expected an integer (got '2')",
        f"{path}:22:1: datasets.incidents.columns.severity.bounds: expected "
        "[lower, upper] with lower <= upper (got [5, 1])",
    ]
    assert "2 problems; exit 1" in err


def test_check_json_of_an_invalid_policy(tmp_path: Path) -> None:
    path = write(tmp_path, "policy.toml", GOOD.replace("version = 2", "version = 0"))
    code, out, _ = run("check", str(path), "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert data == {
        "valid": False,
        "problems": [
            {
                "file": str(path),
                "line": 4,
                "column": 1,
                "field": "policy.version",
                "message": "expected a number >= 1 (got 0)",
            }
        ],
    }


def test_check_of_a_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "policy.toml", "[policy]\nuid = \n")
    code, out, _ = run("check", str(path))
    assert code == 1
    assert out.startswith(f"{path}:2:7: invalid TOML")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("check", str(tmp_path / "missing.toml"))[0] == 2
    assert run("check", str(EXAMPLE), "--format", "yaml")[0] == 2
    assert run("explain", str(EXAMPLE))[0] == 2  # --request is required


def test_help(tmp_path: Path) -> None:
    code, out, _ = run("-h")
    assert code == 0
    for command in ("check", "explain", "schema"):
        assert command in out
    bare = CliRunner().invoke(policies.cli, [])  # no_args_is_help: help, as usage
    assert bare.exit_code == 2
    assert "Usage" in bare.output


# --- explain ---------------------------------------------------------------------------


def test_explain_an_allowed_request(tmp_path: Path) -> None:
    request = request_file(tmp_path, privacy={"rho": 0.02})
    code, out, _ = run(
        "explain",
        str(EXAMPLE),
        "--request",
        str(request),
        "--at",
        "2026-06-01T00:00:00Z",
    )
    assert code == 0
    assert "decision  ALLOW: permitted by rule a-statistics" in out
    assert "cost      rho 0.02 per query = epsilon 1.071 at delta 1e-06" in out
    assert (
        f"a-per-requester [{HUB}] 2026-05-07T00:00:00+00:00 to "
        "2026-06-06T00:00:00+00:00: rho 0.02 of a limit of rho 1" in out
    )
    assert f"a-per-requester [{HUB}] lifetime: rho 0.02 of a limit of rho 6" in out
    assert "min_group_size: 10" in out


def test_explain_json(tmp_path: Path) -> None:
    request = request_file(tmp_path)
    code, out, _ = run(
        "explain",
        str(EXAMPLE),
        "-r",
        str(request),
        "--at",
        "2026-06-01T00:00:00+02:00",
        "--format",
        "json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["decision"] == "allow"
    assert data["matched_rules"] == ["a-statistics"]
    assert data["rho"] == 0.01
    assert data["epsilon"] == pytest.approx(policies.epsilon_at(0.01, 1e-6))
    assert data["at"] == "2026-06-01T00:00:00+02:00"
    assert [c["period"] for c in data["charges"]] == [
        "2026-05-07T00:00:00+00:00",
        "lifetime",
    ]
    assert data["charges"][0]["limit_epsilon"] == pytest.approx(
        policies.epsilon_at(1.0, 1e-6)
    )
    assert data["obligations"]["clamp_bounds"] == [
        {"column": "severity", "lower": 1.0, "upper": 5.0}
    ]
    assert data["policy_digest"] == policies.load_policy(EXAMPLE).digest


def test_explain_a_denial_names_the_rule_and_charges_nothing(tmp_path: Path) -> None:
    request = request_file(tmp_path, privacy={"epsilon": 1.0})
    code, out, _ = run(
        "explain", str(EXAMPLE), "-r", str(request), "--at", "2026-06-01T00:00:00Z"
    )
    assert code == 0
    assert "decision  DENY: rule a-statistics does not permit rho 0.5 per query" in out
    assert "the cap is rho 0.05" in out
    assert "unmet     privacy" in out
    assert "charges   none: a refused request spends nothing" in out


def test_explain_at_another_time(tmp_path: Path) -> None:
    request = request_file(tmp_path)
    code, out, _ = run(
        "explain",
        str(EXAMPLE),
        "-r",
        str(request),
        "--at",
        "2025-06-01T00:00:00Z",
        "--format",
        "json",
    )
    assert code == 0
    assert json.loads(out)["reason"].startswith(
        "policy urn:accord:agency-a:policy:1 is not in force before"
    )


def test_explain_needs_an_offset_in_at(tmp_path: Path) -> None:
    request = request_file(tmp_path)
    code, _, err = run(
        "explain", str(EXAMPLE), "-r", str(request), "--at", "2026-06-01T00:00:00"
    )
    assert code == 2
    assert "UTC offset" in err


def test_explain_of_an_invalid_policy_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, "policy.toml", GOOD.replace("version = 2", "version = 0"))
    code, out, _ = run("explain", str(path), "-r", str(request_file(tmp_path)))
    assert code == 1
    assert f"{path}:4:1: policy.version" in out


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"requester": ', "request.json:1:15: invalid JSON: Expecting value"),
        (
            json.dumps({"requester": HUB, "dataset": "incidents", "actions": ["drop"]}),
            "request.json: actions[0]: expected one of 'count'",
        ),
        (
            json.dumps(
                {"requester": "hub", "dataset": "incidents", "actions": ["count"]}
            ),
            "request.json: requester: ",
        ),
        (
            json.dumps(
                {
                    "requester": HUB,
                    "dataset": "incidents",
                    "actions": ["count"],
                    "privacy": {"epsilon": 1, "rho": 1},
                }
            ),
            "request.json: privacy: expected exactly one of epsilon and rho",
        ),
        (
            json.dumps(
                {"requester": HUB, "dataset": "d", "actions": ["count"], "purpose": 7}
            ),
            "request.json: purpose: expected a string",
        ),
    ],
)
def test_explain_of_an_invalid_request_exits_2(
    tmp_path: Path, body: str, expected: str
) -> None:
    request = write(tmp_path, "request.json", body)
    code, out, _ = run("explain", str(EXAMPLE), "-r", str(request))
    assert code == 2
    assert expected in out


# --- schema ----------------------------------------------------------------------------


def test_the_published_schema_is_up_to_date() -> None:
    """Regenerate with: accord policy schema --out policies/schema/policy-v1.schema.json."""
    assert policies.SCHEMA_PATH.read_text(encoding="utf-8") == (
        policies.policy_schema_text()
    )
    assert run("schema", "--check")[0] == 0


def test_schema_prints_and_writes(tmp_path: Path) -> None:
    code, out, _ = run("schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["$id"] == "urn:accord:schema:policy:v1"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "policy",
        "datasets",
        "permissions",
        "prohibitions",
        "budgets",
        "duties",
    }
    target = tmp_path / "schema.json"
    assert run("schema", "--out", str(target))[0] == 0
    assert target.read_text() == out
    target.write_text("{}")
    code, _, err = run("schema", "--check", "--out", str(target))
    assert code == 1
    assert "out of date" in err
