"""A small multilayer perceptron: one tanh hidden layer, sigmoid output."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from node.training._sgd import Model, Params, sigmoid

#: Hidden units when the options do not say.
DEFAULT_HIDDEN_UNITS = 32
#: The most hidden units the app accepts.
MAX_HIDDEN_UNITS = 65_536


def hidden_units(options: Mapping[str, float]) -> int:
    """Return the ``hidden_units`` option, checked."""
    value = options.get("hidden_units", DEFAULT_HIDDEN_UNITS)
    units = int(value)
    if units != value or not 1 <= units <= MAX_HIDDEN_UNITS:
        raise ValueError(
            f"hidden_units must be a whole number, 1 to {MAX_HIDDEN_UNITS}"
        )
    return units


class MultilayerPerceptron(Model):
    """Binary classifier ``sigmoid(w2 . tanh(x W1 + b1) + b2)``, trained by SGD."""

    classifier = True

    def shapes(
        self, inputs: int, options: Mapping[str, float]
    ) -> dict[str, tuple[int, ...]]:
        """``w1 (inputs, h)``, ``b1 (h,)``, ``w2 (h,)``, ``b2 (1,)``."""
        h = hidden_units(options)
        return {"w1": (inputs, h), "b1": (h,), "w2": (h,), "b2": (1,)}

    def initial(
        self, inputs: int, options: Mapping[str, float], rng: np.random.Generator
    ) -> Params:
        """Glorot-style normal weights, zero biases."""
        h = hidden_units(options)
        return {
            "w1": rng.normal(0.0, 1.0 / np.sqrt(max(1, inputs)), (inputs, h)),
            "b1": np.zeros(h),
            "w2": rng.normal(0.0, 1.0 / np.sqrt(h), h),
            "b2": np.zeros(1),
        }

    def predict(self, params: Params, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Probability of the positive class."""
        hidden = np.tanh(x @ params["w1"] + params["b1"])
        return sigmoid(hidden @ params["w2"] + params["b2"][0])

    def gradient(
        self, params: Params, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> tuple[Params, float]:
        """Backpropagation of the mean log loss."""
        hidden = np.tanh(x @ params["w1"] + params["b1"])
        p = sigmoid(hidden @ params["w2"] + params["b2"][0])
        error = (p - y) / len(y)
        back = np.outer(error, params["w2"]) * (1.0 - hidden**2)
        clipped = np.clip(p, 1e-7, 1.0 - 1e-7)
        loss = float(-np.mean(y * np.log(clipped) + (1.0 - y) * np.log1p(-clipped)))
        return {
            "w1": x.T @ back,
            "b1": back.sum(axis=0),
            "w2": hidden.T @ error,
            "b2": np.array([error.sum()]),
        }, loss
