"""``[datasets.<id>]``: the columns an agency declares, and those it never releases."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from policies._types import NUMERIC_TYPES, ColumnType, Name, Strict


def _pair(value: object) -> object:
    """TOML arrays arrive as lists; bounds are a pair."""
    return tuple(value) if isinstance(value, list) else value


Bounds = Annotated[
    tuple[Annotated[float, Field(allow_inf_nan=False)], float],
    BeforeValidator(_pair),
]


class Column(Strict):
    """``[datasets.<id>.columns.<name>]``: one declared column."""

    type: ColumnType = Field(
        description=(
            "integer, float, category, boolean or string. Sum, mean, variance and "
            "quantile need integer or float with bounds; group-by needs category "
            "with categories, or boolean."
        )
    )
    description: str = Field(default="", description="Free text, for people.")
    bounds: Bounds | None = Field(
        default=None,
        description=(
            "[lower, upper]: values are clamped to this range before aggregation "
            "(integer and float columns only)."
        ),
    )
    categories: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        description=(
            "The public domain of a category column: the only values reported as "
            "groups. Without it the column cannot be grouped by."
        ),
    )

    @property
    def numeric(self) -> bool:
        """Whether the column holds integers or floats."""
        return self.type in NUMERIC_TYPES

    @property
    def groupable(self) -> bool:
        """Whether the column has a public domain, so results may be grouped by it."""
        return self.type == "boolean" or (
            self.type == "category" and self.categories is not None
        )


class Dataset(Strict):
    """``[datasets.<id>]``: a dataset the policy governs."""

    description: str = Field(default="", description="Free text, for people.")
    never_release: list[Name] = Field(
        default_factory=list,
        description=(
            "Columns never used by any request, whatever the rules say (names, "
            "identifiers, addresses). They need not be declared under columns."
        ),
    )
    columns: dict[Name, Column] = Field(
        default_factory=dict,
        description=(
            "The columns requests may use. A request using an undeclared column is "
            "denied."
        ),
    )
