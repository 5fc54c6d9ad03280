"""Shared fixtures: a clean environment, a provisioned federation, PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import coordinator
import node
from demo import DemoFederation, provision
from policies import auditlog

os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
os.environ["FLWR_DISABLE_UPDATE_CHECK"] = "1"

#: Small agencies keep the suite fast; sizes still differ per agency.
TEST_ROWS = {"agency-a": 1_500, "agency-b": 900, "agency-c": 400}

PROVISIONED_AT = datetime.now(UTC) - timedelta(days=40)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ACCORD_ setting leaks into a test; Flower never phones home."""
    for key in list(os.environ):
        if key.startswith("ACCORD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("FLWR_TELEMETRY_ENABLED", "0")
    monkeypatch.setenv("FLWR_DISABLE_UPDATE_CHECK", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the quick subset first, slow end-to-end runs last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


@dataclass
class RunningFederation:
    """A provisioned federation whose nodes serve in this process over mTLS."""

    fed: DemoFederation
    servers: dict[str, node.NodeServer]
    federation_file: Path

    def coordinator(self, deadline: float = 10.0) -> coordinator.Coordinator:
        """A coordinator with the federation's coordinator certificate."""
        config = coordinator.load_federation(self.federation_file)
        return coordinator.Coordinator.from_config(config, deadline=deadline)

    def address(self, agency: str) -> str:
        """Where ``agency``'s node listens."""
        return self.servers[agency].address


def decision_records(url: str) -> list[auditlog.DecisionRecord]:
    """Every record of the decision log at ``url`` (a node's state URL), oldest first."""
    reader = auditlog.open_log_reader(url)
    out: list[auditlog.DecisionRecord] = []
    token = ""
    try:
        while True:
            page = reader.records(page_size=1000, page_token=token)
            out.extend(r.record() for r in page.records)
            token = page.next_page_token
            if not token:
                return out
    finally:
        reader.close()


def start_nodes(fed: DemoFederation) -> dict[str, node.NodeServer]:
    """Build and start every site's node on 127.0.0.1:0."""
    servers = {}
    for site in fed.sites:
        config = node.load_node_config(site.node_config)
        server = node.create_server(config, listen="127.0.0.1:0")
        server.start()
        servers[site.agency] = server
    return servers


@pytest.fixture(scope="session")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFederation]:
    """Three agencies (CSV, Parquet, SQLite) serving with mutual TLS, for the session."""
    root = tmp_path_factory.mktemp("federation")
    # Provisioned 40 days ago, so tests can also issue certificates that have expired.
    fed = provision(root, rows=TEST_ROWS, now=PROVISIONED_AT)
    servers = start_nodes(fed)
    try:
        path = fed.write_federation_file({a: s.address for a, s in servers.items()})
        yield RunningFederation(fed, servers, path)
    finally:
        for server in servers.values():
            server.stop(0)


POSTGRES_URL = os.environ.get(
    "ACCORD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL server; under CI=true an unreachable server fails the test."""
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    finally:
        engine.dispose()
    return POSTGRES_URL
