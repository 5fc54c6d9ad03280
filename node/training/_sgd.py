"""The local optimiser every built-in app shares: minibatch SGD with a proximal term."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Params = dict[str, NDArray[np.float64]]


@dataclass(frozen=True)
class LocalTraining:
    """How one node trains in one round (from the message's config record).

    Parameters
    ----------
    learning_rate : float
        SGD step size (``lr``).
    epochs : int
        Passes over the local data (``local-epochs``).
    batch_size : int
        Rows per step (``batch-size``).
    proximal_mu : float
        FedProx's proximal weight (``proximal-mu``): the gradient gains
        ``mu * (w - w_global)``.
    l2 : float
        L2 penalty on the weights (``l2``).
    """

    learning_rate: float = 0.1
    epochs: int = 1
    batch_size: int = 64
    proximal_mu: float = 0.0
    l2: float = 0.0


class Model(abc.ABC):
    """A differentiable model over dense float inputs, as numpy arithmetic."""

    #: Whether predictions are probabilities of the positive class.
    classifier: bool = True

    @abc.abstractmethod
    def shapes(
        self, inputs: int, options: Mapping[str, float]
    ) -> dict[str, tuple[int, ...]]:
        """Return the parameter shapes for ``inputs`` inputs, by name, in order."""

    @abc.abstractmethod
    def initial(
        self, inputs: int, options: Mapping[str, float], rng: np.random.Generator
    ) -> Params:
        """Return initial parameters."""

    @abc.abstractmethod
    def predict(self, params: Params, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return predictions (probabilities for a classifier)."""

    @abc.abstractmethod
    def gradient(
        self, params: Params, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> tuple[Params, float]:
        """Return the gradient of the mean loss on ``(x, y)`` and that loss."""

    def losses(
        self, params: Params, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Return the loss of every example."""
        prediction = self.predict(params, x)
        if self.classifier:
            p = np.clip(prediction, 1e-7, 1.0 - 1e-7)
            return np.asarray(-(y * np.log(p) + (1.0 - y) * np.log1p(-p)))
        return np.asarray(0.5 * (prediction - y) ** 2)

    def input_width(self, params: Params) -> int:
        """Return how many inputs ``params`` expect."""
        first = next(iter(params.values()))
        return int(first.shape[0])


class AffineModel(Model):
    """A model of one weight per input and a bias: ``x @ weights + bias``.

    Its gradient, for any loss whose derivative in the affine output is ``error``
    per example, is ``x.T @ error`` and ``sum(error)``.
    """

    def shapes(
        self, inputs: int, options: Mapping[str, float]
    ) -> dict[str, tuple[int, ...]]:
        """Weights ``(inputs,)`` and bias ``(1,)``."""
        return {"weights": (inputs,), "bias": (1,)}

    def initial(
        self, inputs: int, options: Mapping[str, float], rng: np.random.Generator
    ) -> Params:
        """All zeros: the losses of both affine models are convex."""
        return {"weights": np.zeros(inputs), "bias": np.zeros(1)}

    @staticmethod
    def affine(params: Params, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return ``x @ weights + bias``."""
        return np.asarray(x @ params["weights"] + params["bias"][0])

    @staticmethod
    def affine_gradient(x: NDArray[np.float64], error: NDArray[np.float64]) -> Params:
        """Return the gradient of ``sum(error * affine(x))`` in the parameters."""
        return {"weights": x.T @ error, "bias": np.array([error.sum()])}


def sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return the logistic function of ``z``, without overflow."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


def train(
    model: Model,
    params: Params,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    settings: LocalTraining,
    rng: np.random.Generator,
) -> tuple[Params, float]:
    """Run local SGD from ``params``; return the new parameters and the mean batch loss.

    The proximal term pulls towards the parameters the round started from.
    """
    start = {k: v.copy() for k, v in params.items()}
    current = {k: v.astype(np.float64, copy=True) for k, v in params.items()}
    n = len(y)
    if n == 0:
        return current, 0.0
    batch = max(1, min(settings.batch_size, n))
    total, steps = 0.0, 0
    for _ in range(max(1, settings.epochs)):
        order = rng.permutation(n)
        for begin in range(0, n, batch):
            rows = order[begin : begin + batch]
            grads, loss = model.gradient(current, x[rows], y[rows])
            total += loss
            steps += 1
            for name, grad in grads.items():
                if settings.proximal_mu:
                    grad = grad + settings.proximal_mu * (current[name] - start[name])
                if settings.l2 and name.startswith("w"):
                    grad = grad + settings.l2 * current[name]
                current[name] -= settings.learning_rate * grad
    return current, total / max(1, steps)
