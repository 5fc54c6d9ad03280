"""Linear regression: one weight per input and a bias, squared loss."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from node.training._sgd import AffineModel, Params


class LinearRegression(AffineModel):
    """Least-squares linear regression trained by minibatch SGD."""

    classifier = False

    def predict(self, params: Params, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return the fitted value."""
        return self.affine(params, x)

    def gradient(
        self, params: Params, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> tuple[Params, float]:
        """Gradient of half the mean squared error."""
        residual = self.predict(params, x) - y
        loss = float(0.5 * np.mean(residual**2))
        return self.affine_gradient(x, residual / len(y)), loss
