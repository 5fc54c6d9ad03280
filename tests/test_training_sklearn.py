"""Federated training on a scikit-learn bundled dataset, against scikit-learn itself.

The Wisconsin breast-cancer data (bundled with scikit-learn, offline) is split over
three agencies as CSV files; a held-out quarter stays with the test. FedAvg of the
built-in logistic regression over mutual TLS must classify the held-out rows about
as well as scikit-learn's logistic regression fitted on the pooled training rows,
both reading the same features encoded from the same declared bounds.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import tomli_w
from numpy.typing import NDArray
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from coordinator.training import arrays_from_npz
from demo import DemoFederation
from node._config import ColumnSpec
from node.training._features import feature_layout
from tests._training import (
    TrainingFederation,
    spec,
    start_training_federation,
    training_policy,
)

DATASET = "cancer"
#: sklearn's names, made into column names (letters, digits and _).
FEATURES = [
    "mean_radius",
    "mean_texture",
    "mean_smoothness",
    "mean_concavity",
    "worst_area",
    "worst_concave_points",
]
LABEL = "malignant"
#: Shares of the training rows at each agency (unequal on purpose).
SHARES = {"agency-a": 0.5, "agency-b": 0.3, "agency-c": 0.2}


def _load() -> tuple[dict[str, NDArray[np.float64]], NDArray[np.bool_]]:
    bunch = load_breast_cancer()
    names = [str(n).replace(" ", "_") for n in bunch.feature_names]
    columns = {n: bunch.data[:, names.index(n)] for n in FEATURES}
    return columns, bunch.target == 0  # sklearn: 0 is malignant


def _schema(columns: dict[str, NDArray[np.float64]]) -> dict[str, dict[str, Any]]:
    """Declared columns: bounds are the published ranges, rounded outwards."""
    schema: dict[str, dict[str, Any]] = {
        name: {
            "type": "float",
            "bounds": [
                math.floor(float(values.min()) * 0.9 * 100) / 100,
                math.ceil(float(values.max()) * 1.1 * 100) / 100,
            ],
        }
        for name, values in columns.items()
    }
    schema[LABEL] = {"type": "boolean"}
    return schema


class Split:
    """The rows of each agency and the held-out rows, as columns."""

    def __init__(self) -> None:
        columns, label = _load()
        order = np.random.default_rng(2026).permutation(label.size)
        test, train = order[: label.size // 4], order[label.size // 4 :]
        self.schema = _schema(columns)
        self.columns = columns
        self.label = label
        self.test = test
        self.train = train
        self.parts: dict[str, NDArray[np.int64]] = {}
        start = 0
        for agency, share in SHARES.items():
            stop = start + round(share * train.size)
            self.parts[agency] = train[start:stop]
            start = stop

    def rows(self, index: NDArray[np.int64]) -> list[list[Any]]:
        return [
            [*(float(self.columns[f][i]) for f in FEATURES), bool(self.label[i])]
            for i in index
        ]

    def write(self, path: Path, index: NDArray[np.int64]) -> None:
        table = pa.table(
            {
                **{f: pa.array(self.columns[f][index]) for f in FEATURES},
                LABEL: pa.array(self.label[index]),
            }
        )
        pacsv.write_csv(table, path)


def _add_dataset(fed: DemoFederation, split: Split) -> None:
    """Give every site the cancer dataset: its CSV and a [[datasets]] entry."""
    for site in fed.sites:
        path = site.folder / "data" / f"{DATASET}.csv"
        split.write(path, split.parts[site.agency])
        config = tomllib.loads(site.node_config.read_text())
        config["datasets"].append(
            {
                "id": DATASET,
                "description": "Wisconsin breast cancer (scikit-learn)",
                "source": {"kind": "csv", "path": str(path)},
                "columns": split.schema,
            }
        )
        site.node_config.write_text(tomli_w.dumps(config))


@pytest.fixture(scope="module")
def split() -> Split:
    return Split()


@pytest.fixture(scope="module")
def cancer(
    tmp_path_factory: pytest.TempPathFactory, split: Split
) -> Iterator[TrainingFederation]:
    policy = training_policy(
        dataset=DATASET, schema=split.schema, columns=(*FEATURES, LABEL)
    )
    fed = start_training_federation(
        tmp_path_factory.mktemp("cancer"),
        dict.fromkeys(SHARES, policy),
        prepare=lambda f: _add_dataset(f, split),
    )
    try:
        yield fed
    finally:
        fed.stop()


def _encoded(
    split: Split, index: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    declared = {n: ColumnSpec.model_validate(c) for n, c in split.schema.items()}
    layout = feature_layout(declared, FEATURES, LABEL, "binary-classification")
    return layout.encode(split.rows(index))


def test_fedavg_on_a_bundled_dataset_matches_centralized_scikit_learn(
    cancer: TrainingFederation, split: Split
) -> None:
    job = spec(
        job={"dataset": DATASET, "features": FEATURES, "label": LABEL, "rounds": 40},
        train={"lr": 0.5, "local-epochs": 2, "batch-size": 16, "seed": 7},
    )
    with cancer.trainer() as trainer:
        result = trainer.start(job, job_id="cancer-fedavg")
        model = arrays_from_npz(trainer.store.model("cancer-fedavg").arrays)
    assert result.job.status == "completed"
    assert all(len(r.participants) == 3 for r in result.rounds)

    x_test, y_test = _encoded(split, split.test)
    logits = x_test @ model["weights"] + model["bias"][0]
    federated = float(np.mean((logits > 0) == (y_test == 1)))

    x_train, y_train = _encoded(split, split.train)
    central = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    centralized = float(central.score(x_test, y_test))

    assert centralized > 0.9  # the task is learnable from these features
    assert federated >= centralized - 0.02, (federated, centralized)
    # The nodes' own (securely unaggregated, exact) evaluation agrees.
    last = result.rounds[-1]
    assert last.accuracy is not None and last.accuracy > 0.88
