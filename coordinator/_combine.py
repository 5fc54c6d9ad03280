"""Combine the nodes' released statistics into one federated result (pure).

Each node releases integer vectors over the same public group layout (counts, sums
and sums of squares of clamped fixed-point values, per-bin counts), each with its
noise. The coordinator adds the vectors of the nodes that answered -- or receives
only their sum under secure aggregation -- and derives means, variances, quantiles
and their 95% intervals by post-processing, which costs no privacy.

Uncertainty across nodes: independent noises add, and so do their variances. With
discrete Gaussian noise everywhere the sum's 95% half-width is ``1.96 * sqrt(sum of
sigma_i^2)`` (the recipe of ``node.privacy._intervals``); with discrete Laplace noise
(variance ``2 b^2``) the same normal approximation is stated as approximate. Means,
variances and standard deviations get conservative intervals from the corners of
the box formed by the intervals of the vectors they use (each at 1 - 0.05/k, so the
box holds with at least 95%). Quantiles are read off the summed histogram's CDF; their
interval comes from the CDF band of the same confidence.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

from accord.v1 import node_service_pb2 as pb
from accord.v1 import types_pb2
from coordinator._outcome import NodeOutcome
from coordinator._spec import Aggregation, QuerySpec, Scalar

CONFIDENCE = 0.95


def z_for(confidence: float) -> float:
    """Return the two-sided normal quantile for ``confidence``."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


@dataclass(frozen=True)
class CombinedValue:
    """One released number of the federated result, with its 95% interval."""

    aggregation: Aggregation
    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    exact: bool = False


@dataclass(frozen=True)
class CombinedGroup:
    """One group of the federated result."""

    key: tuple[Scalar, ...]
    values: tuple[CombinedValue, ...]
    suppressed_at: tuple[str, ...] = ()


@dataclass(frozen=True)
class FederatedResult:
    """A federated query's answer and exactly who contributed to it."""

    spec: QuerySpec
    groups: tuple[CombinedGroup, ...]
    outcomes: tuple[NodeOutcome[pb.RunQueryResponse], ...]
    secure_aggregation: bool = False
    notes: tuple[str, ...] = field(default=())

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

    @property
    def privacy_spent(self) -> dict[str, float]:
        """The rho each contributing node charged."""
        return {
            f"{o.agency}/{o.node}": o.response.privacy.rho_charged
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


@dataclass
class Cells:
    """One statistic summed over nodes: values and noise variance per cell."""

    unit: float
    per_group: int
    exact: bool
    values: dict[tuple[Scalar, ...], list[float]] = field(default_factory=dict)
    variance: dict[tuple[Scalar, ...], list[float]] = field(default_factory=dict)


def noise_variance(stat: pb.Statistic) -> float:
    """Variance of one cell's noise, in integer units."""
    if stat.mechanism == "discrete_laplace":
        return 2.0 * stat.noise_scale**2
    return stat.noise_scale**2


def sum_statistics(
    responses: Sequence[tuple[str, pb.RunQueryResponse]],
) -> tuple[
    dict[str, Cells], list[tuple[Scalar, ...]], dict[tuple[Scalar, ...], list[str]]
]:
    """Add the nodes' vectors cell by cell, matching groups by their public keys."""
    totals: dict[str, Cells] = {}
    order: list[tuple[Scalar, ...]] = []
    suppressed: dict[tuple[Scalar, ...], list[str]] = {}
    for label, response in responses:
        keys = [tuple(value_from_proto(v) for v in g.key) for g in response.groups]
        for key in keys:
            if key not in suppressed:
                suppressed[key] = []
                order.append(key)
        for g, hidden in enumerate(response.suppressed):
            if hidden:
                suppressed[keys[g]].append(label)
        for stat in response.statistics:
            cells = stat.cells_per_group or 1
            total = totals.setdefault(
                stat.name,
                Cells(stat.unit or 1.0, cells, exact=stat.mechanism in ("", "none")),
            )
            total.exact = total.exact and stat.mechanism in ("", "none")
            var = noise_variance(stat)
            for g, key in enumerate(keys):
                chunk = stat.values[g * cells : (g + 1) * cells]
                values = total.values.setdefault(key, [0.0] * cells)
                variances = total.variance.setdefault(key, [0.0] * cells)
                for c, x in enumerate(chunk):
                    values[c] += float(x)
                    variances[c] += (
                        0.0 if response.suppressed and response.suppressed[g] else var
                    )
    return totals, order, suppressed


def add_secure_total(
    responses: Sequence[pb.RunQueryResponse], totals: dict[str, list[int]]
) -> list[tuple[str, pb.RunQueryResponse]]:
    """Build one synthetic response holding a securely aggregated total.

    ``totals`` maps statistic names to the unmasked sum vectors; noise variances of
    the contributors still add up, so the synthetic statistic carries the combined
    scale (sqrt of the summed variances) with the Gaussian convention.
    """
    first = responses[0]
    merged = pb.RunQueryResponse()
    merged.CopyFrom(first)
    del merged.statistics[:]
    del merged.suppressed[:]
    for stat in first.statistics:
        variance = sum(
            noise_variance(s)
            for r in responses
            for s in r.statistics
            if s.name == stat.name
        )
        merged.statistics.add(
            name=stat.name,
            values=totals[stat.name],
            unit=stat.unit,
            mechanism=stat.mechanism,
            noise_scale=math.sqrt(variance),
            cells_per_group=stat.cells_per_group,
        )
    return [("secure-aggregate", merged)]


def _interval(value: float, variance: float, z: float) -> tuple[float, float]:
    half = z * math.sqrt(variance)
    return value - half, value + half


def derive(
    spec: QuerySpec,
    totals: dict[str, Cells],
    key: tuple[Scalar, ...],
    *,
    confidence: float = CONFIDENCE,
) -> list[CombinedValue]:
    """Every requested number of one group, with its interval."""
    z1 = z_for(confidence)
    out: list[CombinedValue] = []

    def cell(name: str, c: int = 0) -> tuple[float, float, float, bool]:
        stat = totals.get(name)
        if stat is None or key not in stat.values:
            return math.nan, math.nan, 0.0, True
        return stat.values[key][c], stat.variance[key][c], stat.unit, stat.exact

    for agg in spec.aggregations:
        col = agg.column
        labels = agg.output_labels()
        if agg.function == "count":
            v, var, _, exact = cell("count")
            lo, hi = _interval(v, var, z1)
            out.append(CombinedValue(agg, labels[0], v, lo, hi, exact))
        elif agg.function == "sum":
            v, var, unit, exact = cell(f"sum({col})")
            lo, hi = _interval(v, var, z1)
            out.append(
                CombinedValue(agg, labels[0], v * unit, lo * unit, hi * unit, exact)
            )
        elif agg.function == "mean":
            out.append(
                _mean(agg, labels[0], cell("count"), cell(f"sum({col})"), confidence)
            )
        elif agg.function in ("variance", "stddev"):
            out.append(
                _variance(
                    agg,
                    labels[0],
                    cell("count"),
                    cell(f"sum({col})"),
                    cell(f"sum_of_squares({col})"),
                    confidence,
                )
            )
        elif agg.function == "histogram":
            name = _histogram_name(totals, col, agg.bin_edges)
            for b, label in enumerate(labels):
                v, var, _, exact = cell(name, b)
                lo, hi = _interval(v, var, z1)
                out.append(CombinedValue(agg, label, v, lo, hi, exact))
        elif agg.function == "quantile":
            name = _histogram_name(totals, col, agg.bin_edges)
            stat = totals.get(name)
            for q, label in zip(agg.quantiles, labels, strict=True):
                if stat is None or key not in stat.values:
                    out.append(CombinedValue(agg, label, None))
                    continue
                out.append(
                    _quantile(
                        agg,
                        label,
                        q,
                        stat.values[key],
                        stat.variance[key],
                        stat.exact,
                        z1,
                    )
                )
    return out


def _histogram_name(
    totals: dict[str, Cells], column: str | None, edges: Sequence[float]
) -> str:
    prefix = f"histogram({column};"
    for name in totals:
        if name.startswith(prefix):
            numbers = [float(x) for x in name[len(prefix) : -1].split(",")]
            if len(numbers) == len(edges) and all(
                math.isclose(a, b) for a, b in zip(numbers, edges, strict=True)
            ):
                return name
    return f"{prefix} ?)"


def _mean(
    agg: Aggregation,
    label: str,
    count: tuple[float, float, float, bool],
    total: tuple[float, float, float, bool],
    confidence: float,
) -> CombinedValue:
    c, cvar, _, cexact = count
    s, svar, unit, sexact = total
    if not c > 0:
        return CombinedValue(agg, label, None)
    z = z_for(1 - (1 - confidence) / 2)
    mean = s * unit / c
    clo, chi = _interval(c, cvar, z)
    slo, shi = _interval(s * unit, svar * unit**2, z)
    if clo <= 0:
        return CombinedValue(agg, label, mean, None, None, cexact and sexact)
    corners = [a / b for a in (slo, shi) for b in (clo, chi)]
    return CombinedValue(
        agg, label, mean, min(corners), max(corners), cexact and sexact
    )


def _variance(
    agg: Aggregation,
    label: str,
    count: tuple[float, float, float, bool],
    total: tuple[float, float, float, bool],
    squares: tuple[float, float, float, bool],
    confidence: float,
) -> CombinedValue:
    c, cvar, _, cexact = count
    s, svar, unit, sexact = total
    q, qvar, qunit, qexact = squares
    if not c > 0:
        return CombinedValue(agg, label, None)
    mean = s * unit / c
    var = max(0.0, q * qunit / c - mean**2)
    z = z_for(1 - (1 - confidence) / 3)
    clo, chi = _interval(c, cvar, z)
    slo, shi = _interval(s * unit, svar * unit**2, z)
    qlo, qhi = _interval(q * qunit, qvar * qunit**2, z)
    exact = cexact and sexact and qexact
    low = high = None
    if clo > 0:
        biggest = max(abs(slo), abs(shi))
        smallest = 0.0 if slo <= 0 <= shi else min(abs(slo), abs(shi))
        low = max(0.0, qlo / chi - (biggest / clo) ** 2)
        high = max(0.0, qhi / clo - (smallest / chi) ** 2)
    if agg.function == "stddev":
        root = math.sqrt
        return CombinedValue(
            agg,
            label,
            root(var),
            None if low is None else root(low),
            None if high is None else root(high),
            exact,
        )
    return CombinedValue(agg, label, var, low, high, exact)


def _quantile(
    agg: Aggregation,
    label: str,
    q: float,
    counts: Sequence[float],
    variances: Sequence[float],
    exact: bool,
    z: float,
) -> CombinedValue:
    edges = agg.bin_edges
    clipped = [max(0.0, x) for x in counts]
    total = sum(clipped)
    if total <= 0:
        return CombinedValue(agg, label, None)
    band = z * math.sqrt(sum(variances)) / total
    value = _read_quantile(edges, clipped, q)
    low = _read_quantile(edges, clipped, max(0.0, q - band))
    high = _read_quantile(edges, clipped, min(1.0, q + band))
    return CombinedValue(agg, label, value, low, high, exact)


def _read_quantile(edges: Sequence[float], counts: Sequence[float], q: float) -> float:
    """Return the q-quantile of a histogram, interpolating inside the bin."""
    total = sum(counts)
    target = q * total
    running = 0.0
    for i, n in enumerate(counts):
        if running + n >= target and n > 0:
            fraction = (target - running) / n
            return edges[i] + fraction * (edges[i + 1] - edges[i])
        running += n
    return edges[-1]


def combine(
    spec: QuerySpec,
    outcomes: Sequence[NodeOutcome[pb.RunQueryResponse]],
    *,
    secure_totals: dict[str, list[int]] | None = None,
    min_group_size: int = 0,
) -> FederatedResult:
    """Add the statistics of the nodes that answered and derive every aggregate.

    With ``secure_totals`` (the unmasked sum of the contributors' vectors) the
    per-node values are never seen; cells whose total noisy count is under
    ``min_group_size`` are then withheld here, as each node would have done.
    """
    answered = [
        (f"{o.agency}/{o.node}", o.response)
        for o in outcomes
        if o.ok and o.response is not None
    ]
    if secure_totals is not None and answered:
        answered = add_secure_total([r for _, r in answered], secure_totals)
    totals, order, suppressed = sum_statistics(answered)
    groups = []
    for key in order:
        values = derive(spec, totals, key)
        hidden = tuple(suppressed[key])
        count = totals.get("count")
        if (
            min_group_size
            and count is not None
            and count.values[key][0] < min_group_size
        ):
            hidden = ("secure aggregate",)
            values = [
                dataclasses.replace(v, value=None, low=None, high=None) for v in values
            ]
        groups.append(CombinedGroup(key, tuple(values), hidden))
    return FederatedResult(
        spec,
        tuple(groups),
        tuple(outcomes),
        secure_aggregation=secure_totals is not None,
    )
