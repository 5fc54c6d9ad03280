"""Logistic regression: one weight per input and a bias, sigmoid output."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from node.training._sgd import Model, Params, sigmoid


class LogisticRegression(Model):
    """Binary logistic regression trained by minibatch SGD on the log loss."""

    classifier = True

    def shapes(
        self, inputs: int, options: Mapping[str, float]
    ) -> dict[str, tuple[int, ...]]:
        """Weights ``(inputs,)`` and bias ``(1,)``."""
        return {"weights": (inputs,), "bias": (1,)}

    def initial(
        self, inputs: int, options: Mapping[str, float], rng: np.random.Generator
    ) -> Params:
        """All zeros: the log loss is convex, any start converges."""
        return {"weights": np.zeros(inputs), "bias": np.zeros(1)}

    def predict(self, params: Params, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Probability of the positive class."""
        return sigmoid(x @ params["weights"] + params["bias"][0])

    def gradient(
        self, params: Params, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> tuple[Params, float]:
        """Gradient of the mean log loss."""
        p = self.predict(params, x)
        error = (p - y) / len(y)
        clipped = np.clip(p, 1e-7, 1.0 - 1e-7)
        loss = float(-np.mean(y * np.log(clipped) + (1.0 - y) * np.log1p(-clipped)))
        return {"weights": x.T @ error, "bias": np.array([error.sum()])}, loss
