"""Provision a throw-away federation on disk: CA, certificates, data, configs, policies."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import tomli_w

import pki
from demo._incidents import PROFILES, SCHEMA, generate

SourceKind = Literal["csv", "parquet", "sqlite"]

DATASET = "incidents"
COORDINATOR_AGENCY = "hub"
COORDINATOR_NAME = "analyst"

#: Each demo agency's data source and declared policy rules.
DEMO_SOURCES: dict[str, SourceKind] = {
    "agency-a": "csv",
    "agency-b": "parquet",
    "agency-c": "sqlite",
}


def _declared_dataset(description: str, **extra: Any) -> dict[str, Any]:
    """Return the policy's declaration of the demo dataset: every column of its schema."""
    return {
        DATASET: {
            "description": description,
            **extra,
            "columns": {name: dict(spec) for name, spec in SCHEMA.items()},
        }
    }


#: Each demo agency's declared policy (``[policy]`` gets uid, agency and version at
#: provisioning). They differ on purpose: agency-a prohibits case ids and has a
#: per-30-day budget; agency-b serves the hub for statistics only, on a low lifetime
#: budget; agency-c never releases case ids, answers counts and means only, and
#: budgets each requester per purpose. All allow exact answers: the demo and the
#: end-to-end tests compare results with the pooled data.
DEMO_POLICIES: dict[str, dict[str, Any]] = {
    "agency-a": {
        "policy": {"delta": 1e-6, "privacy_unit": {"max_rows_per_person": 1}},
        "datasets": _declared_dataset("National Police incidents, 2025"),
        "permissions": [
            {
                "uid": "a-statistics",
                "description": "Any federation coordinator, for statistics or evaluation",
                "assignees": ["role:coordinator"],
                "datasets": [DATASET],
                "actions": [
                    "count",
                    "sum",
                    "mean",
                    "variance",
                    "histogram",
                    "quantile",
                ],
                "purposes": ["statistics", "policy-evaluation"],
                "default_rho": 0.01,
                "max_rho": 0.1,
                "exact": True,
            }
        ],
        "prohibitions": [
            {
                "uid": "a-no-case-ids",
                "description": "Case references are never used",
                "assignees": ["*"],
                "columns": ["incident_id"],
            }
        ],
        "budgets": [
            {
                "uid": "a-per-30-days",
                "description": "Each requester: rho 2 every 30 days",
                "assignees": ["*"],
                "rho_per_period": 2.0,
                "period_days": 30,
                "alert_threshold": 0.8,
            }
        ],
        "duties": {"notify": "mailto:dpo@agency-a.example", "log_retention_days": 1095},
    },
    "agency-b": {
        "policy": {"privacy_unit": {"max_rows_per_person": 1}},
        "datasets": _declared_dataset("Border Guard incidents, 2025"),
        "permissions": [
            {
                "uid": "b-statistics-only",
                "description": "The hub, for statistics only",
                "assignees": [COORDINATOR_AGENCY],
                "datasets": [DATASET],
                "actions": [
                    "count",
                    "sum",
                    "mean",
                    "variance",
                    "histogram",
                    "quantile",
                ],
                "purposes": ["statistics"],
                "default_rho": 0.01,
                "exact": True,
            }
        ],
        "budgets": [
            {
                "uid": "b-lifetime",
                "description": "Each requester: rho 1 in all, then nothing more",
                "assignees": ["*"],
                "rho_lifetime": 1.0,
                "alert_threshold": 0.5,
            }
        ],
        "duties": {"notify": "mailto:dpo@agency-b.example", "log_retention_days": 730},
    },
    "agency-c": {
        "policy": {"privacy_unit": {"max_rows_per_person": 1}},
        "datasets": _declared_dataset(
            "Financial Intelligence Unit incidents, 2025", never_release=["incident_id"]
        ),
        "permissions": [
            {
                "uid": "c-counts-and-means",
                "description": "Counts and means by region or offence; no totals",
                "assignees": ["role:coordinator"],
                "datasets": [DATASET],
                "actions": ["count", "mean"],
                "purposes": ["statistics", "policy-evaluation"],
                "group_by": ["region", "offence", "cross_border"],
                "default_rho": 0.01,
                "exact": True,
            }
        ],
        "budgets": [
            {
                "uid": "c-per-purpose",
                "description": "Each requester and purpose: rho 1 a week, 5 in all",
                "assignees": ["*"],
                "per_purpose": True,
                "rho_per_period": 1.0,
                "period_days": 7,
                "rho_lifetime": 5.0,
            }
        ],
        "duties": {"notify": "mailto:dpo@agency-c.example", "log_retention_days": 365},
    },
}


@dataclass(frozen=True)
class AgencySite:
    """Everything provisioned for one agency."""

    agency: str
    title: str
    folder: Path
    node_config: Path
    policy: Path
    source_kind: SourceKind
    rows: int
    table: pa.Table = field(repr=False)


@dataclass(frozen=True)
class DemoFederation:
    """A provisioned federation: sites, coordinator kit and where things are."""

    root: Path
    name: str
    ca_dir: Path
    sites: tuple[AgencySite, ...]
    coordinator_tls: pki.TlsFiles

    def write_federation_file(
        self,
        addresses: Mapping[str, str],
        *,
        path: Path | None = None,
        deadline: float = 10.0,
    ) -> Path:
        """Write ``federation.toml`` for the nodes at ``addresses`` (agency -> host:port)."""
        target = path or self.root / "federation.toml"
        doc = {
            "federation": {"name": self.name},
            "coordinator": {
                "ca": str(self.coordinator_tls.ca),
                "cert": str(self.coordinator_tls.cert),
                "key": str(self.coordinator_tls.key),
                "deadline_seconds": deadline,
            },
            "nodes": [
                {"agency": agency, "address": address}
                for agency, address in addresses.items()
            ],
        }
        target.write_text(tomli_w.dumps(doc), encoding="utf-8")
        return target


def with_training(agency: str, declared: dict[str, Any]) -> dict[str, Any]:
    """Add the demo's training permission (the built-in app, pinned by digest)."""
    from demo._training import training_permission
    from node.training import builtin_apps

    digest = builtin_apps()["logistic-regression"].digest
    assignee = COORDINATOR_AGENCY if agency == "agency-b" else "role:coordinator"
    permission = training_permission(agency, assignee, digest)
    return {**declared, "permissions": [*declared["permissions"], permission]}


def provision(
    root: Path,
    *,
    federation: str = "demo",
    agencies: Sequence[str] = tuple(DEMO_SOURCES),
    sources: Mapping[str, SourceKind] | None = None,
    policies: Mapping[str, dict[str, Any]] | None = None,
    seed: int = 2026,
    rows: Mapping[str, int] | None = None,
    now: datetime | None = None,
) -> DemoFederation:
    """Create a CA, one node per agency and a coordinator certificate under ``root``.

    Each node gets a certificate, generated data, a policy and a node.toml.
    """
    root.mkdir(parents=True, exist_ok=True)
    ca_dir = root / "ca"
    pki.init_ca(federation, ca_dir, now=now)
    sites = []
    for index, agency in enumerate(agencies):
        profile = PROFILES[agency]
        if rows and agency in rows:
            from dataclasses import replace

            profile = replace(profile, rows=rows[agency])
        folder = root / agency
        kit = folder / "pki"
        pki.issue(
            ca_dir,
            pki.Identity(federation, agency, "node", "node"),
            kit,
            hosts=["localhost", "127.0.0.1"],
            now=now,
        )
        kind = (sources or DEMO_SOURCES).get(agency, "csv")
        table = generate(profile, seed + index)
        source = _write_data(folder / "data", table, kind)
        policy_path = folder / "policy.toml"
        if policies is None:
            declared = with_training(agency, DEMO_POLICIES[agency])
        else:
            declared = policies.get(agency) or DEMO_POLICIES["agency-a"]
        policy_path.write_text(_policy_text(agency, declared), encoding="utf-8")
        node_config = folder / "node.toml"
        node_doc = {
            "node": {
                "agency": agency,
                "name": "node",
                "listen": "127.0.0.1:0",
                "state_url": "sqlite:///state/node-state.db",
                "grace_seconds": 2.0,
            },
            "tls": {"ca": "pki/ca.crt", "cert": "pki/node.crt", "key": "pki/node.key"},
            "policy": {"file": "policy.toml"},
            "datasets": [
                {
                    "id": DATASET,
                    "description": f"{profile.title}: recorded incidents, 2025",
                    "source": source,
                    "columns": SCHEMA,
                }
            ],
        }
        (folder / "state").mkdir(exist_ok=True)
        node_config.write_text(tomli_w.dumps(node_doc), encoding="utf-8")
        sites.append(
            AgencySite(
                agency,
                profile.title,
                folder,
                node_config,
                policy_path,
                kind,
                profile.rows,
                table,
            )
        )
    coordinator_kit = root / "coordinator"
    pki.issue(
        ca_dir,
        pki.Identity(federation, COORDINATOR_AGENCY, "coordinator", COORDINATOR_NAME),
        coordinator_kit,
        now=now,
    )
    return DemoFederation(
        root=root,
        name=federation,
        ca_dir=ca_dir,
        sites=tuple(sites),
        coordinator_tls=pki.TlsFiles.from_kit(coordinator_kit, COORDINATOR_NAME),
    )


def _policy_text(agency: str, declared: Mapping[str, Any]) -> str:
    """Return the policy file of ``agency``: its identity, then what it declares."""
    header = {
        "uid": f"urn:accord:{agency}:policy:1",
        "agency": agency,
        "version": 1,
        **declared.get("policy", {}),
    }
    document = {
        "policy": header,
        **{k: v for k, v in declared.items() if k != "policy"},
    }
    return tomli_w.dumps(document)


def _write_data(folder: Path, table: pa.Table, kind: SourceKind) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        path = folder / f"{DATASET}.csv"
        pa_csv.write_csv(table, path)
        return {"kind": "csv", "path": f"data/{path.name}"}
    if kind == "parquet":
        path = folder / f"{DATASET}.parquet"
        pq.write_table(table, path)
        return {"kind": "parquet", "path": f"data/{path.name}"}
    path = folder / f"{DATASET}.db"
    with sqlite3.connect(path) as con:
        columns = ", ".join(
            f"{name} {_sqlite_type(table.schema.field(name).type)}"
            for name in table.column_names
        )
        con.execute(f"CREATE TABLE {DATASET} ({columns})")
        marks = ", ".join("?" for _ in table.column_names)
        con.executemany(
            f"INSERT INTO {DATASET} VALUES ({marks})",
            zip(
                *(table.column(n).to_pylist() for n in table.column_names), strict=True
            ),
        )
    con.close()
    return {"kind": "sql", "url": f"sqlite:///data/{path.name}", "table": DATASET}


def _sqlite_type(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return "INTEGER"
    if pa.types.is_floating(kind):
        return "REAL"
    return "TEXT"
