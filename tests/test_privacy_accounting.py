"""node.privacy accounting: rho <-> epsilon against OpenDP and REFERENCES c.3."""

from __future__ import annotations

import math
import random

import opendp.prelude as dp
import pytest

from node.privacy import (
    epsilon_at,
    epsilon_at_classic,
    rho_for_epsilon,
    split_budget,
)

dp.enable_features("contrib")

#: REFERENCES c.3: a count with sigma = 3 has rho = 1/2 (1/3)^2 = 0.0556.
RHO_SIGMA_3 = 1.0 / 18.0


def test_opendp_conversion_matches_references() -> None:
    # "OpenDP make_zCDP_to_approxDP + make_fix_delta: epsilon = 1.558 at delta = 1e-6"
    assert epsilon_at(RHO_SIGMA_3, 1e-6) == pytest.approx(1.558, abs=5e-4)


def test_classic_conversion_matches_references() -> None:
    # "classic epsilon = rho + 2 sqrt(rho ln 1/delta) ~ 1.81"
    assert epsilon_at_classic(RHO_SIGMA_3, 1e-6) == pytest.approx(1.81, abs=5e-3)


def test_epsilon_at_is_opendps_own_number() -> None:
    gaussian = dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l2_distance(T=dp.i64), scale=3.0
    )
    approx = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(gaussian), delta=1e-6)
    eps_opendp, delta = approx.map(1)
    assert delta == 1e-6
    assert gaussian.map(1) == pytest.approx(RHO_SIGMA_3, rel=1e-12)
    assert epsilon_at(RHO_SIGMA_3, 1e-6) == pytest.approx(eps_opendp, rel=1e-9)


@pytest.mark.parametrize("delta", [1e-9, 1e-6, 1e-3])
@pytest.mark.parametrize("rho", [1e-4, 0.01, RHO_SIGMA_3, 0.5, 2.0])
def test_opendp_is_never_looser_than_classic(rho: float, delta: float) -> None:
    tight, classic = epsilon_at(rho, delta), epsilon_at_classic(rho, delta)
    assert 0 < tight <= classic


def test_epsilon_at_grows_with_rho_and_zero_is_free() -> None:
    values = [epsilon_at(r, 1e-6) for r in (0.001, 0.01, 0.1, 1.0)]
    assert values == sorted(values)
    assert epsilon_at(0.0, 1e-6) == 0.0
    assert epsilon_at_classic(0.0, 1e-6) == 0.0


@pytest.mark.parametrize("epsilon", [0.01, 0.5, 1.0, 3.0])
def test_rho_for_epsilon_matches_opendp_pure_to_zcdp(epsilon: float) -> None:
    laplace = dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=dp.i64)),
        dp.l1_distance(T=dp.i64),
        scale=1.0 / epsilon,
    )
    assert laplace.map(1) == pytest.approx(epsilon, rel=1e-12)
    zcdp = dp.c.make_pureDP_to_zCDP(laplace)
    assert rho_for_epsilon(epsilon) == pytest.approx(zcdp.map(1), rel=1e-9)
    assert rho_for_epsilon(epsilon) == epsilon * epsilon / 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: epsilon_at(-0.1, 1e-6), "rho must be positive"),
        (lambda: epsilon_at(0.1, 0.0), "delta must lie strictly between 0 and 1"),
        (lambda: epsilon_at(0.1, 1.0), "delta must lie strictly between 0 and 1"),
        (lambda: epsilon_at(math.inf, 1e-6), "rho must be positive and finite"),
        (lambda: epsilon_at_classic(0.1, -1.0), "delta"),
        (lambda: rho_for_epsilon(0.0), "epsilon must be positive"),
        (lambda: split_budget(1.0, 0), "parts must be >= 1"),
        (lambda: split_budget(-1.0, 2), "budget must be positive"),
    ],
)
def test_bad_arguments_are_refused(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_types_are_checked() -> None:
    with pytest.raises(TypeError, match="rho must be a number"):
        epsilon_at("0.1", 1e-6)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="parts must be an integer"):
        split_budget(1.0, 2.0)  # type: ignore[arg-type]


def test_split_budget_is_even_and_never_overspends() -> None:
    rng = random.Random(20250301)
    for _ in range(2_000):
        total = rng.choice([1.0, 0.1, 1 / 3, 0.7]) * rng.uniform(0.01, 10.0)
        parts = rng.randint(1, 50)
        shares = split_budget(total, parts)
        assert len(shares) == parts
        assert len(set(shares)) == 1
        assert math.fsum(shares) <= total
        assert math.fsum(shares) == pytest.approx(total, rel=1e-14)
