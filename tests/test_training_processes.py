"""`accord train` against node processes: interrupted, then resumed by a new coordinator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from coordinator.training import SqlJobStore
from demo import provision
from demo._processes import NodeFleet, NodeProcess
from tests._training import FEATURES, LABEL, LR, ROWS, training_policy

pytestmark = pytest.mark.slow


def _accord(*args: str) -> list[str]:
    return [sys.executable, "-m", "accord_cli", *args]


def test_interrupted_coordinator_resumes_from_the_last_round(tmp_path: Path) -> None:
    fed = provision(
        tmp_path / "fed",
        rows=ROWS,
        policies={a: training_policy() for a in ("agency-a", "agency-b", "agency-c")},
    )
    spec = tmp_path / "train.toml"
    spec.write_text(
        tomli_w.dumps(
            {
                "job": {
                    "app": LR.name,
                    "dataset": "incidents",
                    "features": FEATURES,
                    "label": LABEL,
                    "rounds": 40,
                    "purpose": "model-training",
                },
                "train": {"lr": 0.5, "local-epochs": 2},
                "privacy": {"clipping_norm": 5.0},
                "secure_aggregation": {"enabled": True},
            }
        )
    )
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    nodes = [NodeProcess(s.agency, s.node_config, s.folder) for s in fed.sites]
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0"}
    with NodeFleet(nodes) as fleet:
        federation = fed.write_federation_file(fleet.wait_ready(60))
        first = subprocess.Popen(
            _accord(
                "train",
                str(spec),
                "-f",
                str(federation),
                "--store",
                store,
                "--job-id",
                "proc-job",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        deadline = time.monotonic() + 60
        done = 0
        while time.monotonic() < deadline and done < 2:
            time.sleep(0.1)
            try:
                jobs = SqlJobStore(store)
                done = jobs.get("proc-job").rounds_done
                jobs.close()
            except Exception:
                continue
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=60)
        assert first.returncode == 213, err.decode()
        jobs = SqlJobStore(store)
        job = jobs.get("proc-job")
        jobs.close()
        assert job.status == "interrupted"
        assert 2 <= job.rounds_done < 40
        second = subprocess.run(
            _accord(
                "train",
                "--resume",
                "proc-job",
                "-f",
                str(federation),
                "--store",
                store,
                "--format",
                "json",
            ),
            capture_output=True,
            env=env,
            timeout=300,
        )
        assert second.returncode == 0, second.stderr.decode()
    data = json.loads(second.stdout)
    assert data["job"]["status"] == "completed"
    assert [r["round"] for r in data["rounds"]] == list(range(1, 41))
