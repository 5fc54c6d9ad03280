"""Logistic regression: one weight per input and a bias, sigmoid output."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from node.training._sgd import AffineModel, Params, sigmoid


class LogisticRegression(AffineModel):
    """Binary logistic regression trained by minibatch SGD on the log loss."""

    classifier = True

    def predict(self, params: Params, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Probability of the positive class."""
        return sigmoid(self.affine(params, x))

    def gradient(
        self, params: Params, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> tuple[Params, float]:
        """Gradient of the mean log loss."""
        p = self.predict(params, x)
        error = (p - y) / len(y)
        clipped = np.clip(p, 1e-7, 1.0 - 1e-7)
        loss = float(-np.mean(y * np.log(clipped) + (1.0 - y) * np.log1p(-clipped)))
        return self.affine_gradient(x, error), loss
