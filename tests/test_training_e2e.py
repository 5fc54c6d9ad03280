"""Federated training end to end: three nodes over mutual TLS, each under its policy."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests._training import (
    TrainingFederation,
    spec,
    start_training_federation,
    training_policy,
)


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainingFederation]:
    policy = training_policy()
    fed = start_training_federation(
        tmp_path_factory.mktemp("training"),
        dict.fromkeys(("agency-a", "agency-b", "agency-c"), policy),
    )
    try:
        yield fed
    finally:
        fed.stop()


def test_fedavg_trains_over_mtls_and_records_the_job(
    training: TrainingFederation,
) -> None:
    reports = []
    with training.trainer() as trainer:
        result = trainer.start(spec(), on_round=reports.append)
    assert [r.round for r in reports] == [1, 2, 3]
    assert result.job.status == "completed"
    for report in reports:
        assert report.participants == [
            "agency-a/node",
            "agency-b/node",
            "agency-c/node",
        ]
        assert report.failures == {}
        assert 0.0 <= (report.accuracy or -1) <= 1.0
    assert reports[-1].accuracy is not None and reports[-1].accuracy > 0.6
    nodes = {n["node"]: n for n in result.provenance["nodes"]}
    assert set(nodes) == {"agency-a/node", "agency-b/node", "agency-c/node"}
    for entry in nodes.values():
        assert entry["rounds_contributed"] == 3
        assert entry["rho"] == pytest.approx(6 * 0.05)  # 3 train + 3 evaluate
        assert entry["clipping_norm"] == 5.0
        assert len(entry["policy_digest"]) == 64


def _update_norm(
    training: TrainingFederation, clipping_norm: float, job_id: str
) -> tuple[float, set[float]]:
    from coordinator.training import arrays_from_npz

    job = spec(
        job={"rounds": 1},
        strategy={"name": "fedavg", "params": {"fraction_evaluate": 0.0}},
        train={"lr": 20.0, "local-epochs": 3},
        privacy={"noise_multiplier": 0.0, "clipping_norm": clipping_norm},
    )
    with training.trainer() as trainer:
        result = trainer.start(job, job_id=job_id)
        model = arrays_from_npz(trainer.store.model(job_id).arrays)
    flat = np.concatenate([a.ravel() for a in model.values()])  # started from zeros
    clips = {n["clipping_norm"] for n in result.provenance["nodes"]}
    return float(np.linalg.norm(flat)), clips


def test_nodes_clip_even_when_the_coordinator_asks_for_none(
    training: TrainingFederation,
) -> None:
    unclipped, _ = _update_norm(training, 1_000.0, "unclipped")
    assert unclipped > 2.0
    clipped, clips = _update_norm(training, 0.0, "no-clipping-asked")
    assert clips == {1.0}  # each node's default clipping norm
    assert clipped <= 1.0 + 1e-9


def test_a_flower_serverapp_runs_unchanged_on_accord_grid(
    training: TrainingFederation,
) -> None:
    """A ServerApp written against Flower's public API only: FedAdam, 2 rounds."""
    from flwr.app import Array, ArrayRecord, ConfigRecord, Context, RecordDict
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAdam

    from coordinator.training import AccordGrid, GridJob
    from coordinator.training._flower import quiet_flower, task_identity
    from tests._training import FEATURES, LABEL, LR

    app = ServerApp()
    results = []

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAdam(min_train_nodes=3, min_available_nodes=3, eta=0.1)
        start = ArrayRecord(
            {"weights": Array(np.zeros(LR_WIDTH)), "bias": Array(np.zeros(1))}
        )
        results.append(
            strategy.start(
                grid, start, num_rounds=2, train_config=ConfigRecord({"lr": 0.5})
            )
        )

    links = training.links()
    grid = AccordGrid(
        links,
        GridJob(
            job_id="serverapp",
            app=LR.name,
            app_digest=LR.digest,
            dataset="incidents",
            features=tuple(FEATURES),
            label=LABEL,
            purpose="model-training",
        ),
        run_id=7,
    )
    try:
        with quiet_flower(), task_identity(7):
            app(grid, Context(7, 1, {}, RecordDict(), {}))
    finally:
        grid.close()
        for link in links:
            link.close()
    (result,) = results
    assert sorted(result.evaluate_metrics_clientapp) == [1, 2]
    assert 0.5 < result.evaluate_metrics_clientapp[2]["accuracy"] <= 1.0
    rounds = {d.round for d in grid.deliveries if d.ok}
    assert rounds == {1, 2}


LR_WIDTH = 5 + 6 + 1 + 1 + 1  # region, offence one-hot; severity, suspects, damage
