"""The apps a node has installed: name, task, model and the digest of their code.

An app's digest is the SHA-256 of its source files (the model, the shared optimiser
and the ``ClientApp`` wiring), so editing any of them changes the digest and a policy
that pinned the old one stops allowing it. Nodes run only apps from their own
registry; nothing is ever loaded from a coordinator (DESIGN.md, D2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

from node.training._features import Task
from node.training._model_linear import LinearRegression
from node.training._model_logistic import LogisticRegression
from node.training._model_mlp import MultilayerPerceptron
from node.training._sgd import Model

#: Source files every built-in app runs.
_SHARED_SOURCES = ("_sgd.py", "_clientapp.py", "_flower.py")


def code_digest(name: str, sources: tuple[str, ...]) -> str:
    """Return ``sha256:<hex>`` over the app's name and source files (package-relative)."""
    digest = hashlib.sha256(b"accord-training-app/1\0" + name.encode() + b"\0")
    package = resources.files("node.training")
    for source in sorted(sources):
        data = package.joinpath(source).read_bytes()
        digest.update(source.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return f"sha256:{digest.hexdigest()}"


@dataclass(frozen=True)
class TrainingApp:
    """An installed training app.

    Parameters
    ----------
    name : str
        The name policies allow-list.
    description : str
        For people.
    task : Task
        What it learns.
    model : Model
        The model it trains.
    sources : tuple[str, ...]
        Its source files, relative to ``node.training`` (hashed into the digest).
    """

    name: str
    description: str
    task: Task
    model: Model = field(repr=False)
    sources: tuple[str, ...] = field(repr=False)

    @cached_property
    def digest(self) -> str:
        """``sha256:<hex>`` of the app's code."""
        return code_digest(self.name, self.sources)

    def initial_arrays(
        self, inputs: int, options: Mapping[str, float], seed: int
    ) -> dict[str, NDArray[np.float64]]:
        """Return the initial parameters for ``inputs`` model inputs.

        Raises
        ------
        ValueError
            If an option is invalid.
        """
        return self.model.initial(inputs, options, np.random.default_rng(seed))

    def check_arrays(self, arrays: Mapping[str, NDArray[Any]], inputs: int) -> None:
        """Check that ``arrays`` are this app's parameters for ``inputs`` inputs.

        Raises
        ------
        ValueError
            Naming what does not fit: names, dtype, shapes, non-finite values.
        """
        names = list(arrays)
        expected = list(self.model.shapes(inputs, {"hidden_units": 1}))
        if names != expected:
            raise ValueError(
                f"expected arrays {', '.join(expected)} in this order, got "
                f"{', '.join(names) or 'none'}"
            )
        for name, array in arrays.items():
            if array.dtype.kind != "f":
                raise ValueError(f"array {name!r} must hold floats")
            if not np.isfinite(array).all():
                raise ValueError(f"array {name!r} holds NaN or infinite values")
        options = self._options_of(arrays)
        shapes = self.model.shapes(inputs, options)
        for name, array in arrays.items():
            if array.shape != shapes[name]:
                raise ValueError(
                    f"array {name!r} has shape {array.shape}, expected {shapes[name]} "
                    f"for {inputs} inputs"
                )

    def _options_of(self, arrays: Mapping[str, NDArray[Any]]) -> dict[str, float]:
        """Recover shape options (the MLP's hidden units) from the arrays themselves."""
        w1 = arrays.get("w1")
        if w1 is not None and w1.ndim == 2:
            return {"hidden_units": float(w1.shape[1])}
        return {}

    def client_app(self, data: Any) -> Any:
        """Return the app's Flower ``ClientApp`` over ``data`` (a ``LocalData``)."""
        from node.training._clientapp import build_client_app

        return build_client_app(self.model, data)


class AppRegistry(Mapping[str, TrainingApp]):
    """The apps installed at a node, by name."""

    def __init__(self, apps: Mapping[str, TrainingApp] | None = None) -> None:
        self._apps = dict(apps or {})

    def __getitem__(self, name: str) -> TrainingApp:
        return self._apps[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._apps))

    def __len__(self) -> int:
        return len(self._apps)

    def install(self, app: TrainingApp) -> None:
        """Add ``app`` (replacing an app of the same name)."""
        self._apps[app.name] = app


def builtin_apps() -> AppRegistry:
    """Return the registry of the built-in apps.

    - ``logistic-regression``: binary logistic regression;
    - ``linear-regression``: least squares;
    - ``mlp``: one tanh hidden layer (``hidden_units``, default 32), binary.
    """
    return AppRegistry(
        {
            app.name: app
            for app in (
                TrainingApp(
                    "logistic-regression",
                    "Binary logistic regression, minibatch SGD (numpy)",
                    "binary-classification",
                    LogisticRegression(),
                    ("_model_logistic.py", *_SHARED_SOURCES),
                ),
                TrainingApp(
                    "linear-regression",
                    "Least-squares linear regression, minibatch SGD (numpy)",
                    "regression",
                    LinearRegression(),
                    ("_model_linear.py", *_SHARED_SOURCES),
                ),
                TrainingApp(
                    "mlp",
                    "Binary classifier with one tanh hidden layer, SGD (numpy)",
                    "binary-classification",
                    MultilayerPerceptron(),
                    ("_model_mlp.py", *_SHARED_SOURCES),
                ),
            )
        }
    )
