"""What a node computes for a query: per-group partial aggregates."""

from __future__ import annotations

from dataclasses import dataclass

from node._query import Aggregation, Scalar


@dataclass(frozen=True)
class Partial:
    """One aggregation in one group: value, contributing count and partial sum."""

    aggregation: Aggregation
    value: float | None
    count: int
    sum: float


@dataclass(frozen=True)
class GroupRow:
    """One group of the declared domain (empty key without a group-by)."""

    key: tuple[Scalar, ...]
    partials: tuple[Partial, ...]
