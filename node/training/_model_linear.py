"""Linear regression: one weight per input and a bias, squared loss."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from node.training._sgd import Model, Params


class LinearRegression(Model):
    """Least-squares linear regression trained by minibatch SGD."""

    classifier = False

    def shapes(
        self, inputs: int, options: Mapping[str, float]
    ) -> dict[str, tuple[int, ...]]:
        """Weights ``(inputs,)`` and bias ``(1,)``."""
        return {"weights": (inputs,), "bias": (1,)}

    def initial(
        self, inputs: int, options: Mapping[str, float], rng: np.random.Generator
    ) -> Params:
        """All zeros."""
        return {"weights": np.zeros(inputs), "bias": np.zeros(1)}

    def predict(self, params: Params, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return the fitted value."""
        return np.asarray(x @ params["weights"] + params["bias"][0])

    def gradient(
        self, params: Params, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> tuple[Params, float]:
        """Gradient of half the mean squared error."""
        residual = self.predict(params, x) - y
        error = residual / len(y)
        loss = float(0.5 * np.mean(residual**2))
        return {"weights": x.T @ error, "bias": np.array([error.sum()])}, loss
