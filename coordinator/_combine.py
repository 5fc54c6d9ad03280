"""Combine the nodes' partial aggregates into one federated result (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from accord.v1 import node_service_pb2 as pb
from accord.v1 import types_pb2
from coordinator._outcome import NodeOutcome
from coordinator._spec import Aggregation, QuerySpec, Scalar


@dataclass(frozen=True)
class CombinedValue:
    """One aggregate over all contributing nodes."""

    aggregation: Aggregation
    value: float | None
    count: int
    sum: float


@dataclass(frozen=True)
class CombinedGroup:
    """One group of the federated result."""

    key: tuple[Scalar, ...]
    values: tuple[CombinedValue, ...]


@dataclass(frozen=True)
class FederatedResult:
    """A federated query's answer and exactly who contributed to it."""

    spec: QuerySpec
    groups: tuple[CombinedGroup, ...]
    outcomes: tuple[NodeOutcome[pb.RunQueryResponse], ...]

    @property
    def contributors(self) -> tuple[str, ...]:
        """Labels (agency/node) of the nodes whose answers are in the totals."""
        return tuple(f"{o.agency}/{o.node}" for o in self.outcomes if o.ok)

    @property
    def policy_digests(self) -> dict[str, str]:
        """The policy digest each contributing node applied."""
        return {
            f"{o.agency}/{o.node}": o.response.policy_digest
            for o in self.outcomes
            if o.ok and o.response is not None
        }


def value_from_proto(value: types_pb2.Value) -> Scalar:
    """Decode a group key value."""
    kind = value.WhichOneof("kind")
    if kind is None:
        return ""
    result: Scalar = getattr(value, kind)
    return result


def combine(
    spec: QuerySpec, outcomes: Sequence[NodeOutcome[pb.RunQueryResponse]]
) -> FederatedResult:
    """Add the partial counts and sums of the nodes that answered.

    Means are Σ sum / Σ count over contributors, never an average of means.
    """
    n_aggs = len(spec.aggregations)
    totals: dict[tuple[Scalar, ...], list[tuple[int, float]]] = {}
    for outcome in outcomes:
        if not outcome.ok or outcome.response is None:
            continue
        for group in outcome.response.groups:
            key = tuple(value_from_proto(v) for v in group.key)
            acc = totals.setdefault(key, [(0, 0.0)] * n_aggs)
            for i, result in enumerate(group.results[:n_aggs]):
                count, total = acc[i]
                acc[i] = (count + result.count, total + result.sum)
    groups = []
    for key, acc in totals.items():
        values = []
        for agg, (count, total) in zip(spec.aggregations, acc, strict=True):
            if agg.function == "count":
                value: float | None = float(count)
            elif agg.function == "sum":
                value = total
            else:
                value = total / count if count else None
            values.append(CombinedValue(agg, value, count, total))
        groups.append(CombinedGroup(key, tuple(values)))
    return FederatedResult(spec, tuple(groups), tuple(outcomes))
