"""Malformed node.toml and federation files get file, line and field; all at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import coordinator
import node
import tomlconf
from accord_cli import app

GOOD_NODE = """\
[node]
agency = "agency-a"
listen = "127.0.0.1:0"

[tls]
ca = "pki/ca.crt"
cert = "pki/node.crt"
key = "pki/node.key"

[policy]
file = "policy.toml"

[[datasets]]
id = "incidents"

[datasets.source]
kind = "csv"
path = "data/incidents.csv"

[datasets.columns.region]
type = "category"
categories = ["north", "south"]

[datasets.columns.severity]
type = "integer"
bounds = [1, 5]
"""


def write(tmp_path: Path, text: str, name: str = "node.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path, loader: object) -> list[tomlconf.Problem]:
    with pytest.raises(tomlconf.ConfigError) as info:
        loader(path)  # type: ignore[operator]
    return info.value.problems


def test_the_good_file_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    config = node.load_node_config(write(tmp_path, GOOD_NODE))
    assert config.tls is not None
    assert config.tls.ca == (tmp_path / "pki/ca.crt").resolve()
    assert config.datasets[0].columns["region"].categories == ["north", "south"]
    assert (
        config.node.state_url == f"sqlite:///{(tmp_path / 'node-state.db').resolve()}"
    )


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "words"),
    [
        ('agency = "agency-a"', 'agency = "Agency A"', 2, "node.agency", "pattern"),
        ('listen = "127.0.0.1:0"', "listen = 50051", 3, "node.listen", "string"),
        ('kind = "csv"', 'kind = "excel"', 16, "datasets[0].source", "csv"),
        (
            'type = "integer"',
            'type = "int"',
            25,
            "datasets[0].columns.severity.type",
            "integer",
        ),
        (
            "bounds = [1, 5]",
            "bounds = [5, 1]",
            24,
            "datasets[0].columns.severity",
            "lower <= upper",
        ),
        (
            'categories = ["north", "south"]',
            "categories = []",
            20,
            "datasets[0].columns.region",
            "public domain",
        ),
        (
            '[policy]\nfile = "policy.toml"',
            '[policy]\nfiles = "policy.toml"',
            11,
            "policy.files",
            "unknown field",
        ),
        ('id = "incidents"', "", 13, "datasets[0].id", "required"),
    ],
)
def test_each_mistake_names_line_and_field(
    tmp_path: Path, old: str, new: str, line: int, field: str, words: str
) -> None:
    assert old in GOOD_NODE
    path = write(tmp_path, GOOD_NODE.replace(old, new))
    found = problems(path, node.load_node_config)
    match = [p for p in found if p.field.startswith(field)]
    assert match, found
    assert match[0].line == line, found
    assert words in match[0].message
    assert str(match[0]).startswith(f"{path}:{line}: ")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD_NODE.replace('type = "integer"', 'type = "int"').replace(
        'agency = "agency-a"', 'agency = "A"'
    )
    found = problems(write(tmp_path, text), node.load_node_config)
    assert {p.field for p in found} >= {
        "node.agency",
        "datasets[0].columns.severity.type",
    }


def test_toml_syntax_errors_have_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_NODE.replace('id = "incidents"', 'id = "incidents'))
    [problem] = problems(path, node.load_node_config)
    assert problem.line == 14
    assert problem.column is not None
    assert "invalid TOML" in problem.message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(tomlconf.ConfigFileMissing, match="file not found"):
        node.load_node_config(tmp_path / "nope.toml")


def test_node_cli_prints_the_problem_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_NODE.replace('type = "integer"', 'type = "int"'))
    result = CliRunner().invoke(app, ["node", "check", "--config", str(path)])
    assert result.exit_code == node.ExitCode.CONFIG_INVALID
    assert f"{path}:25: datasets[0].columns.severity.type" in result.output
    assert "Traceback" not in result.output


FEDERATION = """\
[federation]
name = "demo"

[coordinator]
ca = "ca.crt"
cert = "hub.crt"
key = "hub.key"

[[nodes]]
agency = "agency-a"
address = "127.0.0.1:5001"

[[nodes]]
agency = "agency-b"
address = "127.0.0.1:5002"
"""


def test_federation_file_loads(tmp_path: Path) -> None:
    config = coordinator.load_federation(write(tmp_path, FEDERATION, "federation.toml"))
    assert [n.agency for n in config.nodes] == ["agency-a", "agency-b"]
    assert config.coordinator.cert == (tmp_path / "hub.crt").resolve()


@pytest.mark.parametrize(
    ("old", "new", "line", "field"),
    [
        ('address = "127.0.0.1:5002"', 'address = "127.0.0.1"', 15, "nodes[1].address"),
        ('agency = "agency-b"', 'agency = "agency-a"\nname = "node"', None, ""),
        ('key = "hub.key"\n', "", 4, "coordinator"),
        ('name = "demo"', "name = 7", 2, "federation.name"),
    ],
)
def test_federation_file_mistakes(
    tmp_path: Path, old: str, new: str, line: int | None, field: str
) -> None:
    path = write(tmp_path, FEDERATION.replace(old, new), "federation.toml")
    found = problems(path, coordinator.load_federation)
    assert any(p.field == field and p.line == line for p in found), found


def test_federation_cli_error(tmp_path: Path) -> None:
    path = write(
        tmp_path, FEDERATION.replace('name = "demo"', "name = 7"), "federation.toml"
    )
    result = CliRunner().invoke(app, ["query", "-f", str(path), "-d", "incidents"])
    assert result.exit_code == coordinator.ExitCode.FEDERATION_INVALID
    assert f"{path}:2: federation.name" in result.output


def _log_state(url: str) -> tuple[int, int]:
    from policies import auditlog

    reader = auditlog.open_log_reader(url)
    try:
        latest = reader.latest_checkpoint()
        return reader.size(), latest.tree_size if latest is not None else 0
    finally:
        reader.close()


def test_node_check_beside_a_running_node_changes_nothing(federation: Any) -> None:
    """`accord node check` reads files in place and the log read-only."""
    with federation.coordinator() as hub:  # leave records the log has not signed
        hub.query(
            coordinator.QuerySpec(
                dataset="incidents",
                aggregations=(coordinator.Aggregation("count"),),
                purpose="statistics",
                exact=True,
            )
        )
    for site in federation.fed.sites:
        config = node.load_node_config(site.node_config)
        copies = sorted(config.node.work_dir.glob("*.duckdb"))
        files = [d for d in config.datasets if d.source.kind != "sql"]
        assert len(copies) == len(files)  # the serving node's working copies
        before = [(p, p.stat().st_ino) for p in copies]
        log_before = _log_state(config.node.state_url)
        assert log_before[0] > log_before[1]  # an unsigned tail a writer would sign
        result = CliRunner().invoke(
            app, ["node", "check", "--config", str(site.node_config)]
        )
        assert result.exit_code == 0, result.output
        assert f"decision log of {log_before[0]} records" in result.output
        assert [(p, p.stat().st_ino) for p in copies] == before
        assert sorted(config.node.work_dir.glob("*.duckdb")) == copies
        assert _log_state(config.node.state_url) == log_before


def test_node_check_before_a_first_start_creates_nothing(tmp_path: Path) -> None:
    from demo import provision

    fed = provision(tmp_path / "fed", agencies=("agency-b",), rows={"agency-b": 50})
    site = fed.sites[0]
    config = node.load_node_config(site.node_config)
    result = CliRunner().invoke(
        app, ["node", "check", "--config", str(site.node_config)]
    )
    assert result.exit_code == 0, result.output
    assert "no state yet" in result.output
    state = config.node.state_url.removeprefix("sqlite:///")
    assert not Path(state).exists()
    assert not config.audit.key.exists()
    assert not config.node.work_dir.exists()


def test_node_check_names_a_log_key_that_does_not_match(
    federation: Any, tmp_path: Path
) -> None:
    import tomllib

    import tomli_w
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    site = federation.fed.sites[0]
    other_key = tmp_path / "other.key"
    other_key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    other_key.chmod(0o600)
    config = tomllib.loads(site.node_config.read_text())
    config["audit"] = {**config.get("audit", {}), "key": str(other_key)}
    for name in ("ca", "cert", "key"):
        config["tls"][name] = str(site.node_config.parent / config["tls"][name])
    config["policy"]["file"] = str(site.node_config.parent / config["policy"]["file"])
    config["node"]["state_url"] = node.load_node_config(site.node_config).node.state_url
    for dataset in config["datasets"]:
        source = dataset["source"]
        if "path" in source:
            source["path"] = str(site.node_config.parent / source["path"])
    path = tmp_path / "node.toml"
    path.write_text(tomli_w.dumps(config))
    result = CliRunner().invoke(app, ["node", "check", "--config", str(path)])
    assert result.exit_code == node.ExitCode.STATE_INVALID, result.output
    assert f"{other_key} is not the key of the stored log" in result.output
    assert "Traceback" not in result.output
