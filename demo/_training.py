"""The demo's training job: logistic regression across the three agencies.

Each node clips and noises its own update and masks it for secure aggregation, so
the hub learns only the noisy sum; each node's evaluation sums (loss, correct
predictions, examples) are noised and masked the same way, so the hub learns only
the federation's loss and accuracy. Every message is a decision in each node's log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

import coordinator
from coordinator import training
from demo._provision import DATASET

#: What the demo trains on: public, declared columns only (no case ids).
FEATURES = ["region", "offence", "severity", "suspects", "damage_eur"]
LABEL = "cross_border"
ROUNDS = 3


def training_permission(agency: str, assignee: str, digest: str) -> dict[str, Any]:
    """Return a policy permission for the demo's job: node-enforced DP, masked.

    Every message -- train and evaluate -- must be securely aggregated: the hub
    sees only sums of updates and of evaluation metrics.
    """
    return {
        "uid": f"{agency[-1]}-train",
        "description": "Logistic regression on declared columns, noised and masked",
        "assignees": [assignee],
        "datasets": [DATASET],
        "actions": ["train"],
        "purposes": ["model-training"],
        "columns": [*FEATURES, LABEL],
        "apps": [{"name": "logistic-regression", "digest": digest}],
        "max_rho": 0.125,
        "min_participants": 3,
        "max_rounds": 20,
        "secure_aggregation_required": True,
    }


def demo_spec() -> training.TrainSpec:
    """Return the demo's training spec."""
    return training.TrainSpec.model_validate(
        {
            "job": {
                "app": "logistic-regression",
                "dataset": DATASET,
                "features": FEATURES,
                "label": LABEL,
                "rounds": ROUNDS,
                "purpose": "model-training",
                "legal_basis": "LED-2016/680 Art.8(1)",
                "justification": "Which incidents cross borders: a shared risk model",
            },
            "strategy": {"name": "fedavg"},
            "train": {"lr": 0.5},
            "privacy": {"noise_multiplier": 2.0, "clipping_norm": 1.0},
            "secure_aggregation": {"enabled": True},
        }
    )


def run_training(
    config: coordinator.FederationConfig, root: Path, *, err: Console
) -> training.JobResult:
    """Run the demo job with a progress bar on ``err``; return its result."""
    material = coordinator.load_tls(config)
    links = [
        training.GrpcTrainingLink(
            coordinator.NodeAddress(
                n.agency, n.name, n.address, n.server_name, config.federation.name
            ),
            material,
        )
        for n in config.nodes
    ]
    store = training.SqlJobStore(f"sqlite:///{root / 'jobs.db'}")
    trainer = training.Trainer(links, store, federation=config.federation.name)
    progress = Progress(
        TextColumn("[bold]training[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=True,
    )
    try:
        with progress:
            task = progress.add_task("", total=ROUNDS)

            def on_round(report: training.RoundReport) -> None:
                progress.update(
                    task,
                    completed=report.round,
                    description=f"loss {report.loss or 0:.3f}",
                )

            return trainer.start(demo_spec(), on_round=on_round)
    finally:
        for link in links:
            link.close()


def training_table(result: training.JobResult) -> Table:
    """Return the rounds of the job: participants, loss, accuracy and rho charged."""
    table = Table(
        title=f"5. Training job {result.job.id}: logistic regression, "
        "node-enforced DP (noise x2) and secure aggregation",
        title_justify="left",
    )
    for column in ("round", "nodes", "loss", "accuracy", "rho per node"):
        table.add_column(column)
    for report in result.rounds:
        spent = max((s.rho for s in report.privacy.values()), default=0.0)
        table.add_row(
            str(report.round),
            str(len(report.participants)),
            "—" if report.loss is None else f"{report.loss:.3f}",
            "—" if report.accuracy is None else f"{report.accuracy:.3f}",
            f"{spent:.4g}",
        )
    return table
