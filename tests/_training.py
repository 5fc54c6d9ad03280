"""Shared helpers of the training tests: a federation whose policies permit training."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coordinator
import node
import node.training
from coordinator.training import GrpcTrainingLink, SqlJobStore, Trainer, TrainSpec
from demo import DemoFederation, provision
from demo._incidents import SCHEMA
from tests.conftest import decision_records, start_nodes

FEATURES = ["region", "offence", "severity", "suspects", "damage_eur"]
LABEL = "cross_border"
ROWS = {"agency-a": 1_200, "agency-b": 800, "agency-c": 500}
APPS = node.training.builtin_apps()
LR = APPS["logistic-regression"]


def training_policy(
    *,
    apps: list[dict[str, str]] | None = None,
    purposes: tuple[str, ...] = ("model-training",),
    max_rho: float = 2.0,
    default_rho: float | None = 0.05,
    exact: bool = True,
    min_participants: int | None = 2,
    secure_aggregation_required: bool = False,
    max_rounds: int = 100,
    lifetime_rho: float = 1_000.0,
    dataset: str = "incidents",
    schema: Mapping[str, Mapping[str, Any]] = SCHEMA,
    columns: tuple[str, ...] = (*FEATURES, LABEL),
) -> dict[str, Any]:
    """A node policy that permits training on ``dataset`` (the incidents model)."""
    permission: dict[str, Any] = {
        "uid": f"train-{dataset}",
        "assignees": ["role:coordinator"],
        "datasets": [dataset],
        "actions": ["train"],
        "purposes": list(purposes),
        "columns": list(columns),
        "max_rho": max_rho,
        "exact": exact,
        "max_rounds": max_rounds,
        "secure_aggregation_required": secure_aggregation_required,
        "apps": apps
        if apps is not None
        else [{"name": app.name, "digest": app.digest} for app in APPS.values()],
    }
    if default_rho is not None:
        permission["default_rho"] = default_rho
    if min_participants is not None:
        permission["min_participants"] = min_participants
    return {
        "policy": {"delta": 1e-6, "privacy_unit": {"max_rows_per_person": 1}},
        "datasets": {
            dataset: {
                "never_release": [k for k in schema if k == "incident_id"],
                "columns": {
                    k: dict(v) for k, v in schema.items() if k != "incident_id"
                },
            }
        },
        "permissions": [permission],
        "budgets": [
            {"uid": "training", "assignees": ["*"], "rho_lifetime": lifetime_rho}
        ],
        "duties": {"notify": "mailto:dpo@agency.example"},
    }


@dataclass
class TrainingFederation:
    """Three agencies serving TrainingService over mutual TLS in this process."""

    fed: DemoFederation
    servers: dict[str, node.NodeServer]
    federation_file: Path

    def links(self) -> list[GrpcTrainingLink]:
        config = coordinator.load_federation(self.federation_file)
        material = coordinator.load_tls(config)
        return [
            GrpcTrainingLink(
                coordinator.NodeAddress(
                    n.agency, n.name, n.address, n.server_name, config.federation.name
                ),
                material,
            )
            for n in config.nodes
        ]

    @contextmanager
    def trainer(self, store_url: str = "sqlite://") -> Iterator[Trainer]:
        links = self.links()
        store = SqlJobStore(store_url)
        try:
            yield Trainer(links, store, federation=self.fed.name)
        finally:
            for link in links:
                link.close()
            store.close()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop(0)


def start_training_federation(
    root: Path,
    policies: Mapping[str, dict[str, Any]],
    prepare: Callable[[DemoFederation], None] | None = None,
) -> TrainingFederation:
    """Provision three agencies, let ``prepare`` add to their sites, serve them."""
    fed = provision(root, rows=ROWS, policies=dict(policies))
    if prepare is not None:
        prepare(fed)
    servers = start_nodes(fed)
    path = fed.write_federation_file({a: s.address for a, s in servers.items()})
    return TrainingFederation(fed, servers, path)


def spec(**overrides: Any) -> TrainSpec:
    """A small logistic-regression job on the incidents data."""
    data: dict[str, Any] = {
        "job": {
            "app": LR.name,
            "app_digest": LR.digest,
            "dataset": "incidents",
            "features": FEATURES,
            "label": LABEL,
            "rounds": 3,
            "purpose": "model-training",
            "deadline_seconds": 20.0,
        },
        "strategy": {"name": "fedavg"},
        "train": {"lr": 0.5, "local-epochs": 1, "batch-size": 32, "seed": 7},
        "privacy": {"noise_multiplier": 0.0, "clipping_norm": 5.0},
    }
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    return TrainSpec.model_validate(data)


def decisions(fed: TrainingFederation, agency: str) -> list[dict[str, Any]]:
    """Every DeliverMessage decision record of ``agency``'s node, oldest first."""
    site = next(s for s in fed.fed.sites if s.agency == agency)
    url = node.load_node_config(site.node_config).node.state_url
    return [r.to_dict() for r in decision_records(url) if r.method == "DeliverMessage"]
