"""node.privacy mechanisms: calibration against OpenDP's map, encodings, sensitivities."""

from __future__ import annotations

import math
import random

import numpy as np
import opendp.prelude as dp
import pytest

from node.privacy import (
    DISCRETE_GAUSSIAN,
    DISCRETE_LAPLACE,
    FixedPoint,
    Noise,
    Sensitivity,
    count_sensitivity,
    gaussian_scale,
    histogram_sensitivity,
    laplace_scale,
    noisy_integers,
    opendp_measurement,
    sum_of_squares_sensitivity,
    sum_sensitivity,
)

dp.enable_features("contrib")

INT_VECTOR = dp.vector_domain(dp.atom_domain(T=dp.i64))
SENSITIVITIES = [1, 2, 3, 7, 1_000, 61_568, 2**40 + 3]
BUDGETS = [1e-4, 0.01, 1 / 18, 0.1, 0.5, 1.0, 3.7]


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("sensitivity", SENSITIVITIES)
def test_gaussian_calibration_is_exactly_rho_by_opendps_map(
    sensitivity: int, budget: float
) -> None:
    sigma = gaussian_scale(sensitivity, budget)
    gaussian = dp.m.make_gaussian(INT_VECTOR, dp.l2_distance(T=dp.i64), scale=sigma)
    spent = gaussian.map(sensitivity)
    assert spent <= budget
    assert spent == pytest.approx(budget, rel=1e-13)
    assert sigma == pytest.approx(sensitivity / math.sqrt(2 * budget), rel=1e-13)


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("sensitivity", SENSITIVITIES)
def test_laplace_calibration_is_exactly_epsilon_by_opendps_map(
    sensitivity: int, budget: float
) -> None:
    b = laplace_scale(sensitivity, budget)
    laplace = dp.m.make_laplace(INT_VECTOR, dp.l1_distance(T=dp.i64), scale=b)
    spent = laplace.map(sensitivity)
    assert spent <= budget
    assert spent == pytest.approx(budget, rel=1e-13)


def test_calibration_agrees_with_opendps_binary_search() -> None:
    searched = dp.binary_search_param(
        lambda s: dp.m.make_gaussian(INT_VECTOR, dp.l2_distance(T=dp.i64), scale=s),
        d_in=4,
        d_out=0.05,
    )
    assert gaussian_scale(4, 0.05) == pytest.approx(searched, rel=1e-6)
    searched = dp.binary_search_param(
        lambda s: dp.m.make_laplace(INT_VECTOR, dp.l1_distance(T=dp.i64), scale=s),
        d_in=4,
        d_out=0.5,
    )
    assert laplace_scale(4, 0.5) == pytest.approx(searched, rel=1e-6)


def test_release_carries_mechanism_scale_and_cost() -> None:
    gauss = noisy_integers([5, 6, 7], l2_sensitivity=2, rho=0.125)
    assert gauss.mechanism == DISCRETE_GAUSSIAN
    assert gauss.scale == gaussian_scale(2, 0.125)
    assert (gauss.rho, gauss.epsilon, gauss.sensitivity) == (0.125, None, 2)
    assert gauss.values.dtype == np.int64 and gauss.values.shape == (3,)
    assert not gauss.values.flags.writeable
    assert opendp_measurement(gauss.noise).map(2) <= 0.125

    lap = noisy_integers(
        np.array([1, 2], dtype=np.int32), l1_sensitivity=3, epsilon=0.5
    )
    assert lap.mechanism == DISCRETE_LAPLACE
    assert lap.scale == laplace_scale(3, 0.5)
    assert (lap.rho, lap.epsilon, lap.sensitivity) == (0.125, 0.5, 3)
    assert opendp_measurement(lap.noise).map(3) <= 0.5


def test_both_sensitivities_may_be_given() -> None:
    release = noisy_integers([0], l1_sensitivity=4, l2_sensitivity=2, rho=0.5)
    assert release.scale == gaussian_scale(2, 0.5)
    release = noisy_integers([0], l1_sensitivity=4, l2_sensitivity=2, epsilon=0.5)
    assert release.scale == laplace_scale(4, 0.5)


def test_empty_vector_draws_nothing() -> None:
    release = noisy_integers([], l2_sensitivity=1, rho=0.1)
    assert release.values.shape == (0,)


def test_noise_is_integer_and_not_constant() -> None:
    values = np.full(2_000, 1_000_000, dtype=np.int64)
    release = noisy_integers(values, l2_sensitivity=1, rho=0.02)  # sigma = 5
    assert np.unique(release.values).size > 10
    assert abs(float(release.values.mean()) - 1_000_000) < 1.0  # 5 / sqrt(2000) * 9


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"l2_sensitivity": 1}, ValueError, "exactly one of rho"),
        ({"l2_sensitivity": 1, "rho": 1.0, "epsilon": 1.0}, ValueError, "exactly one"),
        ({"l1_sensitivity": 1, "rho": 1.0}, ValueError, "needs l2_sensitivity"),
        ({"l2_sensitivity": 1, "epsilon": 1.0}, ValueError, "needs l1_sensitivity"),
        ({"l2_sensitivity": 0, "rho": 1.0}, ValueError, "l2_sensitivity must be in"),
        (
            {"l2_sensitivity": 2**63, "rho": 1.0},
            ValueError,
            "l2_sensitivity must be in",
        ),
        ({"l2_sensitivity": 1.0, "rho": 1.0}, TypeError, "must be an integer"),
        ({"l2_sensitivity": 1, "rho": 0.0}, ValueError, "rho must be positive"),
        ({"l1_sensitivity": 1, "epsilon": math.nan}, ValueError, "epsilon must be"),
    ],
)
def test_bad_parameters_are_refused(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        noisy_integers([1, 2], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ([1.5, 2.0], TypeError),
        ([True, 2], TypeError),
        (np.array([1.0, 2.0]), TypeError),
        ([2**63], ValueError),
        (np.array([2**63], dtype=np.uint64), ValueError),
        (np.zeros((2, 2), dtype=np.int64), ValueError),
    ],
)
def test_only_int64_vectors_are_released(
    values: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        noisy_integers(values, l2_sensitivity=1, rho=1.0)  # type: ignore[arg-type]


def test_noise_validates_itself() -> None:
    with pytest.raises(ValueError, match="mechanism must be one of"):
        Noise("gaussian", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="noise scale must be positive"):
        Noise(DISCRETE_GAUSSIAN, 0.0)


# ---- fixed point -----------------------------------------------------------------


def test_fixed_point_numbers() -> None:
    fp = FixedPoint(-3.7, 120.25, 8)
    assert fp.scale == 256 and fp.square_scale == 65_536
    assert fp.integer_lower == math.floor(-3.7 * 256) == -948
    assert fp.integer_upper == 30_784  # 120.25 * 256 exactly
    assert fp.max_abs == 30_784
    assert fp.max_square == 30_784**2
    assert fp.square_lower == 0
    assert fp.sum_sensitivity(3) == 3 * 30_784
    assert fp.sum_of_squares_sensitivity(2) == 2 * 30_784**2
    assert fp.max_rows == 2**62 // 30_784
    assert fp.decode(fp.encode(5.125)) == 5.125
    assert fp.encode(-10.0) == fp.encode(-3.7) == round(-3.7 * 256)
    assert fp.encode(1e9) == fp.integer_upper


def test_fixed_point_negative_and_positive_ranges() -> None:
    assert FixedPoint(-50.0, -2.5, 1).max_abs == 100
    assert FixedPoint(-50.0, -2.5, 1).square_lower == 25
    assert FixedPoint(2, 9, 0).max_abs == 9
    assert FixedPoint(2, 9, 0).lower == 2.0
    # lower < upper always leaves at least one integer step
    assert FixedPoint(0.2, 0.3, 0).max_abs == 1


def test_every_rounding_mode_stays_within_the_integer_bounds() -> None:
    rng = random.Random(7)
    for _ in range(300):
        lower = rng.uniform(-1e4, 1e4)
        upper = lower + rng.uniform(1e-3, 1e4)
        fp = FixedPoint(lower, upper, rng.randint(0, 20))
        for _ in range(20):
            x = rng.uniform(lower - 10, upper + 10)
            scaled = math.ldexp(min(max(x, fp.lower), fp.upper), fp.fractional_bits)
            half_away = math.floor(abs(scaled) + 0.5) * (1 if scaled >= 0 else -1)
            for encoded in (
                round(scaled),
                math.floor(scaled),
                math.ceil(scaled),
                half_away,
            ):
                assert fp.integer_lower <= encoded <= fp.integer_upper
                assert abs(encoded) <= fp.max_abs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1.0, 1.0, 4), "lower must be below upper"),
        ((2.0, 1.0, 4), "lower must be below upper"),
        ((math.nan, 1.0, 4), "lower must be finite"),
        ((0.0, math.inf, 4), "upper must be finite"),
        ((0.0, 1.0, -1), "fractional_bits must be in 0..62"),
        ((0.0, 1.0, 63), "fractional_bits must be in 0..62"),
        ((0.0, 1e9, 40), "above 2\\^62"),
    ],
)
def test_fixed_point_refuses_bad_encodings(
    args: tuple[float, float, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        FixedPoint(*args)


# ---- sensitivities -----------------------------------------------------------------


def test_sensitivities_scale_with_rows_per_person() -> None:
    fp = FixedPoint(-10.0, 4.0, 2)  # encodings in [-40, 16]
    assert count_sensitivity(3) == Sensitivity(3, 3)
    assert histogram_sensitivity(5) == Sensitivity(5, 5)
    assert sum_sensitivity(fp, 3) == Sensitivity(120, 120)
    assert sum_of_squares_sensitivity(fp, 3) == Sensitivity(4_800, 4_800)


def test_sensitivity_beyond_int64_is_refused() -> None:
    fp = FixedPoint(-1e6, 1e6, 30)  # 2^50: squares reach 2^100
    with pytest.raises(ValueError, match="does not fit a 64-bit integer"):
        sum_of_squares_sensitivity(fp, 1)
    with pytest.raises(ValueError, match="max_rows_per_person must be >= 1"):
        count_sensitivity(0)


def test_count_sensitivity_bounds_the_worst_person() -> None:
    """A person with c rows moves a count vector by at most c in L1 and in L2."""
    rng = np.random.default_rng(11)
    c, groups = 4, 6
    sens = count_sensitivity(c)
    for _ in range(500):
        rows = rng.integers(0, groups, size=rng.integers(1, c + 1))
        delta = np.bincount(rows, minlength=groups)
        assert np.abs(delta).sum() <= sens.l1
        assert math.sqrt(float((delta * delta).sum())) <= sens.l2
