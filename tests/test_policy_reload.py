"""A node swaps its policy atomically on reload; an invalid policy is refused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import coordinator
import node
from demo import provision
from tests.conftest import TEST_ROWS, decision_records


def test_reload_puts_a_valid_policy_in_force_and_refuses_an_invalid_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fed = provision(
        tmp_path, agencies=["agency-b"], rows={"agency-b": TEST_ROWS["agency-b"]}
    )
    site = fed.sites[0]
    server = node.create_server(
        node.load_node_config(site.node_config), listen="127.0.0.1:0"
    )
    server.start()
    path = fed.write_federation_file({"agency-b": server.address})
    spec = coordinator.QuerySpec(
        "incidents", (coordinator.Aggregation("count"),), purpose="policy-evaluation"
    )
    caplog.set_level(logging.INFO, logger="accord")
    try:
        with coordinator.Coordinator.from_config(
            coordinator.load_federation(path)
        ) as hub:
            assert hub.query(spec).outcomes[0].status == "refused"
            original = server.servicer.policy_digest()

            # Widen the purposes: the next query is allowed under the new digest.
            text = site.policy.read_text()
            site.policy.write_text(
                text.replace('"statistics"', '"statistics", "policy-evaluation"')
            )
            assert server.reload_policy()
            widened = server.servicer.policy_digest()
            assert widened != original
            result = hub.query(spec)
            assert result.outcomes[0].status == "ok"
            assert result.policy_digests == {"agency-b/node": widened}

            # A broken file is refused; the widened policy stays in force.
            site.policy.write_text(text.replace("[policy]", "[policy]\nbogus = 1", 1))
            assert not server.reload_policy()
            assert server.servicer.policy_digest() == widened
            assert hub.query(spec).outcomes[0].status == "ok"
    finally:
        server.stop(0)
    messages = [r.getMessage() for r in caplog.records]
    assert "policy reloaded" in messages
    assert "policy reload refused; the previous policy stays in force" in messages


def test_reloads_are_recorded_in_the_decision_log(tmp_path: Path) -> None:

    fed = provision(tmp_path, agencies=["agency-b"], rows={"agency-b": 50})
    site = fed.sites[0]
    config = node.load_node_config(site.node_config)
    server = node.create_server(config, listen="127.0.0.1:0")
    server.start()
    text = site.policy.read_text()
    try:
        site.policy.write_text(text.replace('"statistics"', '"statistics", "research"'))
        assert server.reload_policy()
        site.policy.write_text("[policy]\nbogus = 1\n")
        assert not server.reload_policy()
    finally:
        server.stop(0)
    records = decision_records(config.node.state_url)
    reloads = [r for r in records if r.method == "ReloadPolicy"]
    assert [(r.operation, r.decision) for r in reloads] == [
        ("alteration", "allow"),
        ("alteration", "deny"),
    ]
    assert reloads[0].requester == "spiffe://demo/agency/agency-b/node/node"
