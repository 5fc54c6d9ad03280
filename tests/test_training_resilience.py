"""Secure aggregation, a node dropping out, and a coordinator restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from coordinator.training import RoundReport, SqlJobStore, Trainer, arrays_from_npz
from tests._training import (
    TrainingFederation,
    decisions,
    spec,
    start_training_federation,
    training_policy,
)

AGENCIES = ("agency-a", "agency-b", "agency-c")


@pytest.fixture
def training(tmp_path: Path) -> Iterator[TrainingFederation]:
    fed = start_training_federation(
        tmp_path / "fed", {a: training_policy() for a in AGENCIES}
    )
    try:
        yield fed
    finally:
        fed.stop()


def _model(trainer: Trainer, job_id: str) -> np.ndarray:
    arrays = arrays_from_npz(trainer.store.model(job_id).arrays)
    return np.concatenate([a.ravel() for a in arrays.values()])


def test_secure_aggregation_gives_the_plain_fedavg_model(
    training: TrainingFederation,
) -> None:
    with training.trainer() as trainer:
        trainer.start(spec(), job_id="plain")
        secure = trainer.start(
            spec(secure_aggregation={"enabled": True}), job_id="secure"
        )
        plain_model, secure_model = _model(trainer, "plain"), _model(trainer, "secure")
    assert secure.job.status == "completed"
    assert [r.participants for r in secure.rounds] == [
        [f"{a}/node" for a in AGENCIES]
    ] * 3
    np.testing.assert_allclose(secure_model, plain_model, atol=1e-6)
    records = [
        d
        for d in decisions(training, "agency-b")
        if d["query_id"].startswith("secure/")
    ]
    assert records and all(d["decision"] == "allow" for d in records)


def test_a_node_dropping_out_leaves_the_others_training(
    training: TrainingFederation,
) -> None:
    def stop_agency_c(report: RoundReport) -> None:
        if report.round == 1:
            training.servers["agency-c"].stop(0)

    with training.trainer() as trainer:
        result = trainer.start(
            spec(
                job={"rounds": 3, "deadline_seconds": 5.0},
                secure_aggregation={"enabled": True},
            ),
            on_round=stop_agency_c,
        )
    first, second, third = result.rounds
    assert first.participants == [f"{a}/node" for a in AGENCIES]
    for later in (second, third):
        assert later.participants == ["agency-a/node", "agency-b/node"]
        assert "agency-c/node (train)" in later.failures
    assert result.job.status == "completed"


def test_a_restarted_coordinator_resumes_from_the_last_completed_round(
    training: TrainingFederation, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"

    def crash_after_round_2(report: RoundReport) -> None:
        if report.round == 2:
            raise KeyboardInterrupt

    with training.trainer(url) as trainer, pytest.raises(KeyboardInterrupt):
        trainer.start(
            spec(job={"rounds": 4}), job_id="restarted", on_round=crash_after_round_2
        )
    store = SqlJobStore(url)
    try:
        job = store.get("restarted")
        assert (job.status, job.rounds_done) == ("interrupted", 2)
    finally:
        store.close()
    seen: list[int] = []
    with training.trainer(url) as trainer:  # a new coordinator: new links, new store
        result = trainer.resume("restarted", on_round=lambda r: seen.append(r.round))
    assert seen == [3, 4]
    assert [r.round for r in result.rounds] == [1, 2, 3, 4]
    assert result.job.status == "completed"
    assert result.provenance["rounds"] == 4
    trained = [
        d["query_id"]
        for d in decisions(training, "agency-a")
        if d["query_id"].startswith("restarted/")
    ]
    # train + evaluate per round; no round repeated, rounds numbered across restarts
    assert trained == [f"restarted/round-{r}" for r in (1, 1, 2, 2, 3, 3, 4, 4)]
