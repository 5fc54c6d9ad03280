"""The Flower ``ClientApp`` of every built-in app: local SGD and local evaluation.

Train messages carry one ``ArrayRecord`` (the global model) and a ``ConfigRecord``
(``lr``, ``local-epochs``, ``batch-size``, ``proximal-mu``, ``l2``, ``seed``); the
reply holds the locally trained arrays under the same key and a ``MetricRecord``
with ``num-examples`` and ``train-loss``. Evaluate replies hold sums --
``loss-sum`` (each example's loss clipped to `LOSS_BOUND`), ``correct`` (for
classifiers) and ``num-examples`` -- so the node can noise them before they leave.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from node.training._sgd import LocalTraining, Model, train

#: Each example's loss is clipped to this before it is summed (bounds sensitivity).
LOSS_BOUND = 10.0


@dataclass(frozen=True)
class LocalData:
    """A node's training data, encoded from declared information only.

    Parameters
    ----------
    x : numpy.ndarray
        Inputs, one row per example.
    y : numpy.ndarray
        Targets (0/1 for classifiers, scaled to [-1, 1] for regression).
    input_names : tuple[str, ...]
        The inputs' names after encoding.
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    input_names: tuple[str, ...]

    @property
    def rows(self) -> int:
        """The number of examples."""
        return len(self.y)


def _only(records: Mapping[str, Any], kind: str) -> tuple[str, Any]:
    if len(records) != 1:
        raise ValueError(f"expected exactly one {kind} in the message")
    return next(iter(records.items()))


def _number(config: Mapping[str, Any], key: str, default: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"config {key!r} must be a number")
    return float(value)


def local_training(config: Mapping[str, Any]) -> LocalTraining:
    """Read the local training settings of a config record, within safe limits."""
    settings = LocalTraining(
        learning_rate=_number(config, "lr", 0.1),
        epochs=int(_number(config, "local-epochs", 1)),
        batch_size=int(_number(config, "batch-size", 64)),
        proximal_mu=_number(config, "proximal-mu", 0.0),
        l2=_number(config, "l2", 0.0),
    )
    if not 0 < settings.learning_rate <= 100 or not 1 <= settings.epochs <= 1000:
        raise ValueError("lr must be in (0, 100] and local-epochs in 1..1000")
    if settings.batch_size < 1 or settings.proximal_mu < 0 or settings.l2 < 0:
        raise ValueError("batch-size must be >= 1, proximal-mu and l2 >= 0")
    return settings


def build_client_app(model: Model, data: LocalData) -> Any:
    """Return a ``ClientApp`` that trains and evaluates ``model`` on ``data``."""
    from node.training import _flower as fl

    app = fl.ClientApp()

    @app.train()
    def _train(message: Any, context: Any) -> Any:
        key, record = _only(message.content.array_records, "ArrayRecord")
        config = dict(next(iter(message.content.config_records.values()), {}))
        params = fl.numpy_arrays(record)
        seed = config.get("seed")
        rng = np.random.default_rng(
            None
            if not isinstance(seed, int)
            else [seed, int(config.get("server-round", 0))]
        )
        new, loss = train(model, params, data.x, data.y, local_training(config), rng)
        arrays = {k: new[k].astype(params[k].dtype, copy=False) for k in params}
        content = fl.RecordDict(
            {
                key: fl.record_of_arrays(arrays),
                "metrics": fl.MetricRecord(
                    {"num-examples": data.rows, "train-loss": loss}
                ),
            }
        )
        return fl.Message(content, reply_to=message)

    @app.evaluate()
    def _evaluate(message: Any, context: Any) -> Any:
        _, record = _only(message.content.array_records, "ArrayRecord")
        params = {k: v.astype(np.float64) for k, v in fl.numpy_arrays(record).items()}
        metrics: dict[str, fl.MetricRecordValues] = {"num-examples": data.rows}
        if data.rows:
            losses = np.minimum(model.losses(params, data.x, data.y), LOSS_BOUND)
            metrics["loss-sum"] = float(losses.sum())
            if model.classifier:
                predicted = model.predict(params, data.x) >= 0.5
                metrics["correct"] = int((predicted == (data.y >= 0.5)).sum())
        else:
            metrics["loss-sum"] = 0.0
            if model.classifier:
                metrics["correct"] = 0
        content = fl.RecordDict({"metrics": fl.MetricRecord(metrics)})
        return fl.Message(content, reply_to=message)

    return app
