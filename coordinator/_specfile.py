"""Query spec files (YAML or JSON): the same structure as the Python SDK's QuerySpec.

```yaml
dataset: incidents
aggregates:
  - count
  - {function: mean, column: severity}
  - {function: histogram, column: damage_eur, bin_edges: [0, 1000, 10000, 1000000]}
  - {function: quantile, column: severity, quantiles: [0.5], bin_edges: [1, 2, 3, 4, 5]}
filters:
  - {column: region, op: in, values: [north, east]}
  - {column: severity, op: ">=", value: 3}
group_by: [region]
binned_group_by:
  - {column: suspects, bin_edges: [0, 1, 3, 20]}
purpose: statistics
legal_basis: "LED-2016/680 Art.8(1)"
justification: Quarterly trends
privacy: {epsilon: 1.0}        # or {rho: 0.05}, or {exact: true} where policies allow
secure_aggregation: false
```

Errors name the field path and, for YAML and JSON files, the line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from coordinator._errors import SpecError
from coordinator._spec import Aggregation, Binning, Filter, Function, QuerySpec

_Scalar = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AggregateEntry(_Strict):
    """One aggregate of a spec file."""

    function: Literal[
        "count", "sum", "mean", "variance", "stddev", "histogram", "quantile", "median"
    ]
    column: str | None = None
    bin_edges: list[float] = Field(default_factory=list)
    quantiles: list[float] = Field(default_factory=list)


class FilterEntry(_Strict):
    """One filter of a spec file."""

    column: str
    op: Literal["=", "!=", "<", "<=", ">", ">=", "in", "between"]
    value: _Scalar | None = None
    values: list[_Scalar] = Field(default_factory=list)

    @model_validator(mode="after")
    def _operands(self) -> FilterEntry:
        if self.op in ("in", "between"):
            if self.value is not None or not self.values:
                raise ValueError(f"{self.op} takes `values`, a list")
        elif self.value is None or self.values:
            raise ValueError(f"{self.op} takes one `value`")
        return self


class BinningEntry(_Strict):
    """A numeric group-by column of a spec file."""

    column: str
    bin_edges: list[float] = Field(min_length=2)


class PrivacyEntry(_Strict):
    """The privacy request of a spec file."""

    epsilon: float | None = Field(default=None, gt=0)
    rho: float | None = Field(default=None, gt=0)
    exact: bool = False

    @model_validator(mode="after")
    def _one(self) -> PrivacyEntry:
        if self.epsilon is not None and self.rho is not None:
            raise ValueError("give epsilon or rho, not both")
        return self


class SpecFile(_Strict):
    """A whole query spec file."""

    dataset: str
    aggregates: list[str | AggregateEntry] = Field(min_length=1)
    filters: list[FilterEntry] = Field(default_factory=list)
    group_by: list[str] = Field(default_factory=list)
    binned_group_by: list[BinningEntry] = Field(default_factory=list)
    purpose: str = ""
    legal_basis: str = ""
    justification: str = ""
    on_behalf_of: str = ""
    privacy: PrivacyEntry = PrivacyEntry()
    secure_aggregation: bool = False

    def to_spec(self) -> QuerySpec:
        """Return the SDK's QuerySpec."""
        aggregations = []
        for entry in self.aggregates:
            if isinstance(entry, str):
                entry = AggregateEntry(function=entry)  # type: ignore[arg-type]
            function: Function = (
                "quantile" if entry.function == "median" else entry.function
            )
            quantiles = (0.5,) if entry.function == "median" else tuple(entry.quantiles)
            aggregations.append(
                Aggregation(function, entry.column, tuple(entry.bin_edges), quantiles)
            )
        return QuerySpec(
            dataset=self.dataset,
            aggregations=tuple(aggregations),
            filters=tuple(
                Filter(f.column, f.op, tuple(f.values) if f.values else (f.value,))  # type: ignore[arg-type]
                for f in self.filters
            ),
            group_by=tuple(self.group_by),
            binned_group_by=tuple(
                Binning(b.column, tuple(b.bin_edges)) for b in self.binned_group_by
            ),
            purpose=self.purpose,
            legal_basis=self.legal_basis,
            justification=self.justification,
            on_behalf_of=self.on_behalf_of,
            epsilon=self.privacy.epsilon,
            rho=self.privacy.rho,
            exact=self.privacy.exact,
            secure_aggregation=self.secure_aggregation,
        )


def _lines(
    node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]
) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value
            out[(*path, name)] = key.start_mark.line + 1
            _lines(value, (*path, name), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out)


def load_spec(path: Path) -> QuerySpec:
    """Read a YAML or JSON spec file.

    Raises
    ------
    SpecError
        Naming the file, the line and the field of every problem.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(str(path), f"cannot be read: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        tree = yaml.compose(text) if path.suffix != ".json" else None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(
            str(path),
            f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}",
        ) from None
    if not isinstance(data, dict):
        raise SpecError(str(path), "expected a mapping with dataset, aggregates, ...")
    lines: dict[tuple[Any, ...], int] = {}
    if tree is not None:
        _lines(tree, (), lines)
    try:
        return SpecFile.model_validate(data).to_spec()
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(
                p
                for p in err["loc"]
                if not (isinstance(p, str) and p in {"str", "AggregateEntry"})
            )
            line = next(
                (lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines),
                None,
            )
            where = f"{path}:{line}" if line else str(path)
            field = ".".join(
                str(p) if isinstance(p, str) else f"[{p}]" for p in loc
            ).replace(".[", "[")
            problems.append(
                f"{where}: {field}: {err['msg'].removeprefix('Value error, ')}"
            )
        raise SpecError("spec", "\n".join(problems)) from None
