"""node.privacy plans: vectors, budget split, noise scales; release; suppression."""

from __future__ import annotations

import math

import numpy as np
import pytest

import node.privacy
from node.privacy import (
    DISCRETE_GAUSSIAN,
    DISCRETE_LAPLACE,
    Count,
    FixedPoint,
    Histogram,
    Mean,
    Noise,
    Quantile,
    Sum,
    Variance,
    gaussian_scale,
    laplace_scale,
    plan_release,
    release,
    suppress,
)

DAMAGE = FixedPoint(0.0, 50_000.0, 4)  # encodings in [0, 800_000]
AGE = FixedPoint(0.0, 120.0, 0)
EDGES = (0.0, 18.0, 30.0, 50.0, 120.0)


def full_plan(**kwargs: object) -> node.privacy.ReleasePlan:
    options: dict[str, object] = {
        "groups": 5,
        "max_rows_per_person": 3,
        "columns": {"damage": DAMAGE, "age": AGE},
        "rho": 0.5,
    }
    options.update(kwargs)
    return plan_release(
        [
            Count(),
            Sum("damage"),
            Mean("damage"),
            Variance("age"),
            Histogram("age", EDGES),
            Quantile("age", 0.5, EDGES),
            Quantile("age", 0.9, EDGES),
            Mean("damage"),  # duplicate: planned once
        ],
        **options,  # type: ignore[arg-type]
    )


def test_public_surface() -> None:
    for name in node.privacy.__all__:
        assert hasattr(node.privacy, name), name
    assert len(set(node.privacy.__all__)) == len(node.privacy.__all__)


def test_vectors_are_shared_and_ordered() -> None:
    plan = full_plan()
    assert plan.names == (
        "count",
        "sum(damage)",
        "sum(age)",
        "sum_of_squares(age)",
        "histogram(age; 0.0, 18.0, 30.0, 50.0, 120.0)",
    )
    assert len(plan.aggregates) == 7
    assert [v.name for v in plan.vectors_for(Mean("damage"))] == [
        "count",
        "sum(damage)",
    ]
    assert [v.name for v in plan.vectors_for(Quantile("age", 0.9, EDGES))] == [
        "histogram(age; 0.0, 18.0, 30.0, 50.0, 120.0)"
    ]
    hist = plan.vector("histogram(age; 0.0, 18.0, 30.0, 50.0, 120.0)")
    assert (hist.kind, hist.length, hist.edges, hist.unit) == (
        "histogram",
        20,
        EDGES,
        1,
    )
    assert plan.vector("sum_of_squares(age)").unit == 1  # 0 fractional bits
    assert plan.vector("sum(damage)").unit == 16


def test_sensitivities_follow_c_and_bounds() -> None:
    plan = full_plan()
    c = 3
    assert plan.vector("count").sensitivity.l2 == c
    assert plan.vector("sum(damage)").sensitivity.l2 == c * 800_000
    assert plan.vector("sum(age)").sensitivity.l1 == c * 120
    assert plan.vector("sum_of_squares(age)").sensitivity.l2 == c * 120**2
    assert (
        plan.vector("histogram(age; 0.0, 18.0, 30.0, 50.0, 120.0)").sensitivity.l1 == c
    )


def test_rho_split_sums_to_the_total_and_calibrates_each_vector() -> None:
    plan = full_plan(rho=0.37)
    shares = [v.rho for v in plan.vectors]
    assert len(set(shares)) == 1
    assert math.fsum(shares) <= 0.37
    assert math.fsum(shares) == pytest.approx(0.37, rel=1e-15)
    assert plan.rho == math.fsum(shares)
    assert plan.epsilon is None and plan.mechanism == DISCRETE_GAUSSIAN
    for v in plan.vectors:
        assert v.noise == Noise(
            DISCRETE_GAUSSIAN, gaussian_scale(v.sensitivity.l2, v.rho)
        )
        assert v.half_width == v.noise.half_width(0.95)
        assert v.natural_half_width == v.half_width / v.unit
        assert v.natural_std == pytest.approx(v.noise.std / v.unit)
        assert v.epsilon is None


def test_epsilon_split_uses_laplace_and_charges_rho_by_composition() -> None:
    plan = full_plan(rho=None, epsilon=1.0)
    k = len(plan.vectors)
    assert plan.mechanism == DISCRETE_LAPLACE
    assert plan.epsilon is not None and plan.epsilon <= 1.0
    assert plan.epsilon == pytest.approx(1.0, rel=1e-15)
    # k pure (1/k)-DP releases: each (1/k)^2/2-zCDP, so rho = 1/(2k) in total.
    assert plan.rho == pytest.approx(1.0 / (2 * k), rel=1e-12)
    for v in plan.vectors:
        assert v.epsilon is not None
        assert v.noise == Noise(
            DISCRETE_LAPLACE, laplace_scale(v.sensitivity.l1, v.epsilon)
        )


def test_dry_run_numbers_for_a_single_count() -> None:
    # REFERENCES c.3: a count with sigma = 3 is rho = 1/18.
    plan = plan_release([Count()], groups=1, max_rows_per_person=1, rho=1 / 18)
    (count,) = plan.vectors
    assert count.noise.scale == pytest.approx(3.0, rel=1e-12)
    assert count.half_width == 6  # exact: P(|X| <= 6) = 0.9705, P(|X| <= 5) = 0.9345
    assert plan.at_risk_below is None


def test_minimum_group_size_forces_the_count_and_reports_the_risk() -> None:
    plan = plan_release(
        [Sum("damage")],
        groups=3,
        max_rows_per_person=1,
        columns={"damage": DAMAGE},
        rho=0.25,
        min_group_size=10,
    )
    assert plan.names == ("count", "sum(damage)")
    assert plan.at_risk_below == 10 + plan.vector("count").half_width


def test_confidence_changes_half_widths_only() -> None:
    wide = full_plan(confidence=0.99)
    narrow = full_plan(confidence=0.9)
    for a, b in zip(wide.vectors, narrow.vectors, strict=True):
        assert a.noise == b.noise
        assert a.half_width > b.half_width


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rho": None}, ValueError, "exactly one of rho"),
        ({"epsilon": 1.0}, ValueError, "exactly one of rho"),
        ({"groups": 0}, ValueError, "groups must be >= 1"),
        ({"max_rows_per_person": 0}, ValueError, "max_rows_per_person must be >= 1"),
        ({"columns": {"age": AGE}}, ValueError, r"sum\(damage\) needs bounds"),
        ({"min_group_size": -1}, ValueError, "min_group_size must be >= 0"),
        ({"confidence": 1.0}, ValueError, "confidence must lie strictly"),
        ({"rho": -1.0}, ValueError, "budget must be positive"),
        (
            {"columns": {"damage": FixedPoint(0.0, 1e6, 42), "age": AGE}},
            ValueError,
            "does not fit a 64-bit integer",
        ),
    ],
)
def test_bad_plans_are_refused(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        full_plan(**kwargs)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Histogram("age", (1.0,)), "at least two edges"),
        (lambda: Histogram("age", (0.0, 5.0, 5.0)), "strictly increasing"),
        (lambda: Histogram("age", (0.0, math.inf)), "must be finite"),
        (lambda: Quantile("age", 1.5, (0.0, 1.0)), r"q must lie in \[0, 1\]"),
    ],
)
def test_bad_aggregates_are_refused(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_no_aggregate_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one aggregate"):
        plan_release([], groups=1, max_rows_per_person=1, rho=1.0)
    with pytest.raises(TypeError, match="not an aggregate"):
        plan_release(["count"], groups=1, max_rows_per_person=1, rho=1.0)  # type: ignore[list-item]


def test_release_noises_every_vector_as_planned() -> None:
    plan = full_plan()
    exact = {v.name: np.arange(v.length, dtype=np.int64) * 100 for v in plan.vectors}
    out = release(plan, exact)
    assert list(out) == list(plan.names)
    for v in plan.vectors:
        assert out[v.name].noise == v.noise
        assert out[v.name].rho == v.rho
        assert out[v.name].values.shape == (v.length,)
    assert math.fsum(r.rho for r in out.values()) == plan.rho


def test_release_with_epsilon() -> None:
    plan = full_plan(rho=None, epsilon=2.0)
    exact = {v.name: [0] * v.length for v in plan.vectors}
    out = release(plan, exact)
    assert all(r.mechanism == DISCRETE_LAPLACE for r in out.values())
    assert math.fsum(r.epsilon or 0.0 for r in out.values()) <= 2.0


def test_release_checks_the_vectors_before_drawing() -> None:
    plan = full_plan()
    exact = {v.name: [0] * v.length for v in plan.vectors}
    missing = dict(exact)
    del missing["count"]
    with pytest.raises(ValueError, match="missing count; unexpected none"):
        release(plan, missing)
    with pytest.raises(ValueError, match="unexpected extra"):
        release(plan, {**exact, "extra": [1]})
    with pytest.raises(ValueError, match="has 4 entries, the plan says 5"):
        release(plan, {**exact, "count": [1, 2, 3, 4]})
    with pytest.raises(TypeError, match="integer dtype"):
        release(plan, {**exact, "count": np.zeros(5)})


def test_suppression_masks_noisy_counts_below_the_minimum() -> None:
    mask = suppress([0, 9, 10, 11, -3], 10)
    assert mask.tolist() == [True, True, False, False, True]
    assert mask.dtype == np.bool_
    assert suppress(np.array([-5, 0, 3]), 0).tolist() == [True, False, False]
    assert not suppress(np.array([0, 3]), 0).any()
    with pytest.raises(ValueError, match="min_group_size must be >= 0"):
        suppress([1], -1)
    with pytest.raises(TypeError, match="min_group_size must be an integer"):
        suppress([1], 2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        suppress([1.5], 2)  # type: ignore[list-item]


def test_a_cached_plan_equals_a_fresh_one_and_is_made_once() -> None:
    enc = node.privacy.FixedPoint(0.0, 100.0, 4)
    args = {
        "groups": 3,
        "max_rows_per_person": 2,
        "rho": 0.5,
        "min_group_size": 5,
    }
    aggregates = (node.privacy.Count(), node.privacy.Mean("x"))
    first = node.privacy.cached_plan_release(aggregates, columns=(("x", enc),), **args)
    again = node.privacy.cached_plan_release(aggregates, columns=(("x", enc),), **args)
    fresh = node.privacy.plan_release(aggregates, columns={"x": enc}, **args)
    assert again is first and first == fresh
    other = node.privacy.cached_plan_release(
        aggregates, columns=(("x", enc),), **{**args, "rho": 0.25}
    )
    assert other != first and other.rho == pytest.approx(0.25)
