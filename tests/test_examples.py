"""The annotated examples in examples/ parse, resolve their paths and say what they do."""

from __future__ import annotations

import hashlib
import re
import typing
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pydantic
import pytest

import coordinator
import node
import policies
from node._config import FileSource, SqlSource

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

#: Marks the commented-out PostgreSQL dataset at the end of examples/node.toml.
POSTGRES_BLOCK = "# A second dataset in PostgreSQL."


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from another directory: paths must resolve against examples/, not cwd."""
    monkeypatch.chdir(tmp_path)


def _uncomment_postgres(text: str) -> str:
    """Return node.toml with the commented-out ``#key = value`` lines enabled."""
    head, marker, tail = text.partition(POSTGRES_BLOCK)
    assert marker, "examples/node.toml lost its PostgreSQL example"
    enabled = re.sub(r"^#(?=[\[A-Za-z_])", "", tail, flags=re.MULTILINE)
    enabled = re.sub(r"^#$", "", enabled, flags=re.MULTILINE)
    return head + marker + enabled


def test_node_example_parses_with_paths_relative_to_its_folder() -> None:
    config = node.load_node_config(EXAMPLES / "node.toml")

    assert config.node.agency == "agency-a"
    assert config.node.name == "node"
    assert config.node.listen == "127.0.0.1:50051"
    assert config.node.grace_seconds == 5.0
    assert config.node.max_workers == 8
    assert config.node.state_url == f"sqlite:///{EXAMPLES / 'state' / 'node-state.db'}"
    assert config.tls is not None
    assert config.tls.ca == EXAMPLES / "pki" / "ca.crt"
    assert config.tls.cert == EXAMPLES / "pki" / "node.crt"
    assert config.tls.key == EXAMPLES / "pki" / "node.key"
    assert config.policy.file == EXAMPLES / "policy.toml"

    [dataset] = config.datasets
    assert dataset.id == "incidents"
    assert isinstance(dataset.source, FileSource)
    assert dataset.source.kind == "csv"
    assert dataset.source.path == EXAMPLES / "data" / "incidents.csv"
    assert dataset.source.delimiter == ","
    kinds = {column.type for column in dataset.columns.values()}
    assert kinds == {"integer", "float", "category", "string", "boolean"}
    region = dataset.columns["region"]
    assert region.categories == ["north", "south", "east", "west", "central"]
    assert region.nullable is False
    assert dataset.columns["severity"].bounds == (1, 5)
    assert dataset.columns["damage_eur"].bounds == (0.0, 1_000_000.0)
    assert dataset.columns["cross_border"].nullable is True


def test_node_example_postgres_dataset_parses_when_uncommented(tmp_path: Path) -> None:
    text = (EXAMPLES / "node.toml").read_text(encoding="utf-8")
    copy = tmp_path / "node.toml"
    copy.write_text(_uncomment_postgres(text), encoding="utf-8")

    config = node.load_node_config(copy)

    assert [d.id for d in config.datasets] == ["incidents", "seizures"]
    source = config.datasets[1].source
    assert isinstance(source, SqlSource)
    assert source.kind == "sql"
    assert source.url.startswith("postgresql+psycopg://")
    assert source.db_schema == "reporting"
    assert source.table == "seizures"
    columns = config.datasets[1].columns
    assert columns["goods"].type == "category"
    assert columns["quantity_kg"].bounds == (0.0, 5000.0)
    # Relative paths of the copy resolve against the copy's folder.
    assert config.policy.file == tmp_path / "policy.toml"


def test_node_example_names_an_existing_policy_of_its_own_agency() -> None:
    config = node.load_node_config(EXAMPLES / "node.toml")
    loaded = policies.load_policy(config.policy.file)
    assert loaded.policy.policy.agency == config.node.agency


def test_policy_example_parses() -> None:
    path = EXAMPLES / "policy.toml"
    loaded = policies.load_policy(path)

    header = loaded.policy.policy
    assert header.uid == "urn:accord:agency-a:policy:1"
    assert header.agency == "agency-a"
    assert header.version == 1
    assert header.default == "deny"
    assert header.valid_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert header.valid_until is None
    assert [r.uid for r in loaded.policy.permissions] == [
        "a-statistics",
        "a-border-guard-counts",
    ]
    assert [r.uid for r in loaded.policy.prohibitions] == ["a-no-case-ids"]
    assert loaded.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.path == path


def _request(
    who: str,
    *,
    actions: tuple[str, ...] = ("count",),
    columns: tuple[str, ...] = (),
    group_by: tuple[str, ...] = (),
    purpose: str = "statistics",
    legal_basis: str = "LED-2016/680 Art.8(1)",
) -> policies.AccessRequest:
    agency, role, name = who.split("/")
    requester = policies.Requester(
        uri=f"spiffe://demo/agency/{agency}/{role}/{name}", agency=agency, role=role
    )
    return policies.AccessRequest(
        requester=requester,
        dataset="incidents",
        actions=frozenset(actions),
        columns=frozenset(columns) | frozenset(group_by),
        group_by=group_by,
        purpose=purpose,
        legal_basis=legal_basis,
    )


@pytest.mark.parametrize(
    ("request_", "allowed", "rule"),
    [
        pytest.param(
            _request(
                "hub/coordinator/analyst",
                actions=("count", "mean"),
                columns=("severity",),
                group_by=("region",),
            ),
            True,
            "a-statistics",
            id="coordinator-statistics",
        ),
        pytest.param(
            _request("hub/coordinator/analyst", columns=("incident_id",)),
            False,
            "a-no-case-ids",
            id="case-ids-prohibited",
        ),
        pytest.param(
            _request("hub/coordinator/analyst", group_by=("month",)),
            False,
            "",
            id="group-by-not-listed",
        ),
        pytest.param(
            _request("hub/coordinator/analyst", legal_basis="curiosity"),
            False,
            "",
            id="legal-basis-not-listed",
        ),
        pytest.param(
            _request("agency-b/coordinator/ops", purpose="operational-planning"),
            True,
            "a-border-guard-counts",
            id="border-guard-counts",
        ),
        pytest.param(
            _request(
                "agency-b/node/node", actions=("sum",), purpose="operational-planning"
            ),
            False,
            "",
            id="border-guard-no-sums",
        ),
        pytest.param(
            _request("agency-c/node/node"), False, "", id="other-agency-default-deny"
        ),
    ],
)
def test_policy_example_decides_as_its_comments_say(
    request_: policies.AccessRequest, allowed: bool, rule: str
) -> None:
    loaded = policies.load_policy(EXAMPLES / "policy.toml")
    decision = policies.evaluate(
        loaded.policy,
        request_,
        digest=loaded.digest,
        now=datetime(2026, 6, 1, tzinfo=UTC),
    )
    assert decision.allowed is allowed
    if rule:
        assert decision.matched_rules == (rule,)


def test_federation_example_parses_with_paths_relative_to_its_folder() -> None:
    config = coordinator.load_federation(EXAMPLES / "federation.toml")

    assert config.federation.name == "demo"
    assert config.coordinator.ca == EXAMPLES / "pki" / "ca.crt"
    assert config.coordinator.cert == EXAMPLES / "pki" / "analyst.crt"
    assert config.coordinator.key == EXAMPLES / "pki" / "analyst.key"
    assert config.coordinator.deadline_seconds == 10.0
    assert [(n.agency, n.name) for n in config.nodes] == [
        ("agency-a", "node"),
        ("agency-b", "node"),
        ("agency-c", "node"),
    ]
    assert config.nodes[0].address == "node.agency-a.example:50051"
    assert config.nodes[1].server_name == "node.agency-b.example"
    assert config.nodes[2].server_name is None


def _models(annotation: object) -> Iterator[type[pydantic.BaseModel]]:
    """Every pydantic model class inside a field annotation."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models(arg)


def _keys(model: type[pydantic.BaseModel]) -> Iterator[tuple[str, str]]:
    """(model name, TOML key) of every field of ``model`` and the models it nests."""
    seen: set[type[pydantic.BaseModel]] = set()
    todo = [model]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name, info in current.model_fields.items():
            yield current.__name__, info.alias or name
            todo.extend(_models(info.annotation))


@pytest.mark.parametrize(
    ("example", "model"),
    [
        ("node.toml", node.NodeConfig),
        ("policy.toml", policies.Policy),
        ("federation.toml", coordinator.FederationConfig),
    ],
)
def test_examples_show_every_field(
    example: str, model: type[pydantic.BaseModel]
) -> None:
    """A field added to the model must be added (and explained) in the example."""
    text = (EXAMPLES / example).read_text(encoding="utf-8")
    missing = []
    for owner, key in _keys(model):
        setting = rf"^#?\s*{re.escape(key)}\s*="
        header = rf"^#?\[\[?(?:[\w-]+\.)*{re.escape(key)}(?:\.[\w-]+)*\]\]?"
        if not re.search(setting, text, re.MULTILINE) and not re.search(
            header, text, re.MULTILINE
        ):
            missing.append(f"{owner}.{key}")
    assert not missing, f"examples/{example} does not show: {', '.join(missing)}"
