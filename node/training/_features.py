"""Model inputs from declared, public information only: bounds and category domains.

A feature layout is computed from a dataset's declared schema, never from its rows:

- integer and float columns need declared ``bounds`` and are scaled linearly from
  ``[lower, upper]`` to ``[-1, 1]`` (values outside are clamped first);
- boolean columns become 0 or 1;
- category columns become one-hot over their declared categories (a value outside
  the domain, or NULL, is all zeros);
- string columns are never features.

NULLs of numeric and boolean columns become the middle of the range (0). The label
of a binary classifier is a boolean, or a category with exactly two declared values
(the second is the positive class); a regression label needs declared bounds and is
scaled to ``[-1, 1]`` like a feature. Standardisation with data statistics is not
offered: those statistics would be a release of their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from node._config import ColumnSpec

Task = Literal["binary-classification", "regression"]


class LayoutError(ValueError):
    """A column cannot serve as a feature or label; ``field`` names the request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class _Encoder:
    column: str
    kind: str  # "scaled", "boolean", "one-hot"
    lower: float = 0.0
    upper: float = 0.0
    categories: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        if self.kind == "one-hot":
            return [f"{self.column}={c}" for c in self.categories]
        return [self.column]

    def encode(self, values: Sequence[Any]) -> NDArray[np.float64]:
        if self.kind == "one-hot":
            index = {c: i for i, c in enumerate(self.categories)}
            out = np.zeros((len(values), len(self.categories)))
            for row, value in enumerate(values):
                position = index.get(value) if isinstance(value, str) else None
                if position is not None:
                    out[row, position] = 1.0
            return out
        if self.kind == "boolean":
            return np.array(
                [[1.0 if v is True or v == 1 else 0.0] for v in values], dtype=float
            ).reshape(len(values), 1)
        return _scale(values, self.lower, self.upper).reshape(len(values), 1)


def _scale(values: Sequence[Any], lower: float, upper: float) -> NDArray[np.float64]:
    """Clamp to ``[lower, upper]`` and map linearly to ``[-1, 1]``; NULL becomes 0."""
    raw = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    half = (upper - lower) / 2.0
    middle = (upper + lower) / 2.0
    scaled = (
        np.zeros_like(raw)
        if half == 0
        else (np.clip(raw, lower, upper) - middle) / half
    )
    return np.where(np.isnan(raw), 0.0, scaled)


@dataclass(frozen=True)
class FeatureLayout:
    """How a dataset's declared columns become a model's inputs and target.

    Parameters
    ----------
    features : tuple[str, ...]
        The feature columns, in order.
    label : str
        The label column.
    task : Task
        What the label supports.
    """

    features: tuple[str, ...]
    label: str
    task: Task
    _encoders: tuple[_Encoder, ...]
    _label: _Encoder

    @property
    def input_names(self) -> list[str]:
        """The model's input columns after encoding, in order."""
        return [name for encoder in self._encoders for name in encoder.names]

    @property
    def width(self) -> int:
        """The number of model inputs."""
        return len(self.input_names)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column read: the features, then the label."""
        return (*self.features, self.label)

    def encode(
        self, rows: Sequence[Sequence[Any]]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Encode rows of ``columns`` values into ``(x, y)``."""
        if not rows:
            return np.zeros((0, self.width)), np.zeros(0)
        by_column = list(zip(*rows, strict=True))
        blocks = [enc.encode(by_column[i]) for i, enc in enumerate(self._encoders)]
        x = np.hstack(blocks) if blocks else np.zeros((len(rows), 0))
        labels = by_column[-1]
        if self._label.kind == "one-hot":  # two declared categories: the second is 1
            positive = self._label.categories[1]
            y = np.array([1.0 if v == positive else 0.0 for v in labels])
        elif self._label.kind == "boolean":
            y = self._label.encode(labels)[:, 0]
        else:
            y = _scale(labels, self._label.lower, self._label.upper)
        return x, y


def feature_layout(
    columns: Mapping[str, ColumnSpec], features: Sequence[str], label: str, task: Task
) -> FeatureLayout:
    """Build the layout of ``features`` and ``label`` from the declared ``columns``.

    Raises
    ------
    LayoutError
        If a column is not declared, repeated, or cannot serve its role.
    """
    if not features:
        raise LayoutError("job.features", "name at least one feature column")
    if len(set(features)) != len(features):
        raise LayoutError("job.features", "a feature column is listed twice")
    if label in features:
        raise LayoutError("job.label", f"column {label!r} is also a feature")
    encoders = []
    for name in features:
        spec = columns.get(name)
        if spec is None:
            raise LayoutError(
                "job.features", f"column {name!r} is not declared in the dataset"
            )
        encoders.append(_feature_encoder(name, spec))
    spec = columns.get(label)
    if spec is None:
        raise LayoutError(
            "job.label", f"column {label!r} is not declared in the dataset"
        )
    return FeatureLayout(
        tuple(features), label, task, tuple(encoders), _label_encoder(label, spec, task)
    )


def _feature_encoder(name: str, spec: ColumnSpec) -> _Encoder:
    if spec.type == "category":
        return _Encoder(name, "one-hot", categories=tuple(spec.categories))
    if spec.type == "boolean":
        return _Encoder(name, "boolean")
    if spec.type in ("integer", "float"):
        if spec.bounds is None:
            raise LayoutError(
                "job.features",
                f"column {name!r} has no declared bounds, so it cannot be scaled "
                "without reading statistics of the data",
            )
        return _Encoder(name, "scaled", spec.bounds[0], spec.bounds[1])
    raise LayoutError("job.features", f"column {name!r} is free text: never a feature")


def _label_encoder(name: str, spec: ColumnSpec, task: Task) -> _Encoder:
    if task == "binary-classification":
        if spec.type == "boolean":
            return _Encoder(name, "boolean")
        if spec.type == "category" and len(spec.categories) == 2:
            return _Encoder(name, "one-hot", categories=tuple(spec.categories))
        raise LayoutError(
            "job.label",
            f"column {name!r} is not a binary label (a boolean, or a category with "
            "two declared values)",
        )
    if spec.type in ("integer", "float") and spec.bounds is not None:
        return _Encoder(name, "scaled", spec.bounds[0], spec.bounds[1])
    raise LayoutError(
        "job.label", f"column {name!r} is not a numeric label with declared bounds"
    )
