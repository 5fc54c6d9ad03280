"""``accord train``, ``accord jobs list|show`` and ``accord models export``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from typer.testing import CliRunner

from accord_cli import app
from coordinator.training._export import read_model
from tests._training import (
    FEATURES,
    LABEL,
    LR,
    TrainingFederation,
    start_training_federation,
    training_policy,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainingFederation]:
    fed = start_training_federation(
        tmp_path_factory.mktemp("cli"),
        {a: training_policy() for a in ("agency-a", "agency-b", "agency-c")},
    )
    try:
        yield fed
    finally:
        fed.stop()


def _spec_file(tmp_path: Path, **job: object) -> Path:
    path = tmp_path / "train.toml"
    doc = {
        "job": {
            "app": LR.name,
            "dataset": "incidents",
            "features": FEATURES,
            "label": LABEL,
            "rounds": 2,
            "purpose": "model-training",
            **job,
        },
        "strategy": {"name": "fedprox", "params": {"proximal_mu": 0.1}},
        "train": {"lr": 0.5, "batch-size": 32},
        "privacy": {"noise_multiplier": 4.0, "clipping_norm": 1.0},
        "secure_aggregation": {"enabled": True},
    }
    path.write_text(tomli_w.dumps(doc))
    return path


def test_train_then_list_show_and_export(
    training: TrainingFederation, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    spec = _spec_file(tmp_path)
    result = runner.invoke(
        app,
        [
            "train",
            str(spec),
            "-f",
            str(training.federation_file),
            "--store",
            store,
            "--format",
            "json",
            "--job-id",
            "cli-job",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["job"]["status"] == "completed"
    assert [r["round"] for r in data["rounds"]] == [1, 2]
    assert "round 2/2" in result.stderr
    nodes = data["model"]["nodes"]
    assert {n["noise_multiplier"] for n in nodes} == {4.0}
    assert data["model"]["secure_aggregation"] is True
    assert data["model"]["app"]["digest"] == LR.digest

    listed = runner.invoke(app, ["jobs", "list", "--store", store, "--format", "json"])
    assert listed.exit_code == 0
    assert [j["id"] for j in json.loads(listed.stdout)] == ["cli-job"]

    shown = runner.invoke(app, ["jobs", "show", "cli-job", "--store", store])
    assert shown.exit_code == 0
    assert "status: completed" in shown.stdout

    out = tmp_path / "model.zip"
    exported = runner.invoke(
        app, ["models", "export", "cli-job", "-o", str(out), "--store", store]
    )
    assert exported.exit_code == 0, exported.output
    manifest, arrays = read_model(out)
    assert manifest["format"] == "accord-model/1"
    assert list(arrays) == ["weights", "bias"]
    assert arrays["weights"].shape == (len(manifest["input_names"]),)
    assert np.isfinite(arrays["weights"]).all()


def test_cli_errors_are_one_line_with_a_numbered_exit(
    training: TrainingFederation, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    missing = runner.invoke(app, ["jobs", "show", "nope", "--store", store])
    assert missing.exit_code == 211
    bad = tmp_path / "bad.toml"
    bad.write_text('[job]\napp = "x"\n')
    invalid = runner.invoke(
        app, ["train", str(bad), "-f", str(training.federation_file), "--store", store]
    )
    assert invalid.exit_code == 202
    assert "bad.toml" in invalid.stderr
    refused = runner.invoke(
        app,
        [
            "train",
            str(_spec_file(tmp_path, purpose="investigation")),
            "-f",
            str(training.federation_file),
            "--store",
            store,
        ],
    )
    assert refused.exit_code == 210
    assert "purpose 'investigation'" in refused.stderr
