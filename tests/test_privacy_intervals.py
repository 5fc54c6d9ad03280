"""node.privacy intervals, checked deterministically: exact tails, OpenDP, convolutions."""

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
    Interval,
    Noise,
    combined_variance,
    gaussian_sum_half_width,
    half_width,
    integer_interval,
    mean_interval,
    sum_coverage,
    variance_interval,
)
from node.privacy._noise import discrete_gaussian_pmf

Z95 = 1.959963984540054


def dg(sigma: float) -> Noise:
    return Noise(DISCRETE_GAUSSIAN, sigma)


def dl(b: float) -> Noise:
    return Noise(DISCRETE_LAPLACE, b)


def laplace_pmf(b: float, support: int) -> np.ndarray:
    x = np.arange(-support, support + 1)
    p = math.exp(-1 / b)
    return (1 - p) / (1 + p) * np.exp(-np.abs(x) / b)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize(
    "sigma", [0.3, 0.5, 1.0, 2.0, 3.0, 7.5, 10.0, 31.6, 100.0, 9_999.0]
)
def test_gaussian_half_width_is_exact_and_agrees_with_opendp(
    sigma: float, confidence: float
) -> None:
    noise = dg(sigma)
    m = noise.half_width(confidence)
    assert noise.coverage(m) >= confidence
    assert m == 0 or noise.coverage(m - 1) < confidence
    # OpenDP: alpha = P[|X| >= accuracy] (integer accuracy), so m = accuracy - 1.
    accuracy = dp.discrete_gaussian_scale_to_accuracy(sigma, 1 - confidence)
    assert m == accuracy - 1


@pytest.mark.parametrize("sigma", [1e4 + 1, 3.3e4, 1e6])
def test_large_sigma_uses_the_proved_bound(sigma: float) -> None:
    m = dg(sigma).half_width()
    assert m == math.ceil(Z95 * sigma)
    exact = dp.discrete_gaussian_scale_to_accuracy(sigma, 0.05) - 1
    assert exact <= m <= exact + 1
    assert dg(123_456_789.0).half_width() == math.ceil(Z95 * 123_456_789.0)


def test_gaussian_bound_holds_where_summation_is_exact() -> None:
    """P(|X| > m) <= P(|Y| >= m) for the continuous Y: ceil(z sigma) is never short."""
    for sigma in np.geomspace(0.3, 5_000, 300):
        noise = dg(float(sigma))
        assert noise.half_width() <= math.ceil(Z95 * sigma) <= noise.half_width() + 1


def test_naive_interval_undercovers_for_small_sigma() -> None:
    # +-1.96 sigma rounded down at sigma = 3 is |X| <= 5.
    assert dg(3.0).coverage(5) == pytest.approx(0.9345, abs=1e-4)
    assert dg(3.0).half_width() == 6
    assert dg(3.0).coverage(6) == pytest.approx(0.9705, abs=1e-4)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("b", [0.3, 0.5, 1.0, 2.0, 3.0, 20.0, 1e3, 1e7])
def test_laplace_half_width_is_exact_and_agrees_with_opendp(
    b: float, confidence: float
) -> None:
    noise = dl(b)
    m = noise.half_width(confidence)
    assert noise.coverage(m) >= confidence
    assert m == 0 or noise.coverage(m - 1) < confidence
    accuracy = dp.discrete_laplacian_scale_to_accuracy(b, 1 - confidence)
    assert m == max(math.ceil(accuracy) - 1, 0)


@pytest.mark.parametrize("b", [0.4, 1.0, 2.5, 40.0])
def test_laplace_closed_forms_match_the_pmf(b: float) -> None:
    support = int(60 * b) + 20
    pmf = laplace_pmf(b, support)
    x = np.arange(-support, support + 1)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert dl(b).variance == pytest.approx(float((pmf * x * x).sum()), rel=1e-10)
    for m in (0, 1, 5, int(3 * b)):
        assert dl(b).coverage(m) == pytest.approx(
            float(pmf[np.abs(x) <= m].sum()), abs=1e-12
        )


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0, 50.0])
def test_gaussian_variance(sigma: float) -> None:
    support = int(12 * sigma) + 5
    pmf = discrete_gaussian_pmf(sigma, support)
    x = np.arange(-support, support + 1)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert dg(sigma).variance == pytest.approx(float((pmf * x * x).sum()), rel=1e-10)
    if sigma >= 1:
        assert dg(sigma).variance == pytest.approx(sigma**2, rel=1e-6)
    else:
        assert dg(sigma).variance < sigma**2


def test_variances_add() -> None:
    noises = [dg(3.0), dg(4.0), dl(2.0)]
    assert combined_variance(noises) == pytest.approx(9 + 16 + dl(2.0).variance)
    assert combined_variance(dg(5.0)) == pytest.approx(25.0)


@pytest.mark.parametrize("noise", [dg(0.7), dg(3.0), dg(40.0), dl(0.5), dl(6.0)])
def test_convolution_of_one_noise_is_the_noise(noise: Noise) -> None:
    for m in (0, 1, noise.half_width(), 3 * noise.half_width()):
        assert sum_coverage([noise], m) == pytest.approx(noise.coverage(m), abs=1e-12)
    assert half_width([noise]) == noise.half_width()


def test_convolution_matches_a_direct_sum() -> None:
    a, b = discrete_gaussian_pmf(2.0, 40), laplace_pmf(1.5, 80)
    direct = np.convolve(a, b)
    centre = (direct.size - 1) // 2
    for m in (0, 2, 5, 9):
        expected = float(direct[centre - m : centre + m + 1].sum())
        assert sum_coverage([dg(2.0), dl(1.5)], m) == pytest.approx(expected, abs=1e-12)
    m = half_width([dg(2.0), dl(1.5)])
    assert (
        sum_coverage([dg(2.0), dl(1.5)], m)
        >= 0.95
        > sum_coverage([dg(2.0), dl(1.5)], m - 1)
    )


def test_gaussian_sum_rule_is_never_short_and_at_most_one_wider() -> None:
    """The coordinator's one-line rule ceil(z sqrt(sum sigma^2)) vs exact convolution."""
    rng = random.Random(4)
    for _ in range(400):
        sigmas = [
            math.exp(rng.uniform(math.log(0.3), math.log(60)))
            for _ in range(rng.randint(2, 6))
        ]
        confidence = rng.choice([0.9, 0.95, 0.975, 0.99, 0.995])
        exact = half_width([dg(s) for s in sigmas], confidence)
        rule = gaussian_sum_half_width(sigmas, confidence)
        assert exact <= rule <= exact + 1, (sigmas, confidence)


def test_normal_approximation_undercovers_laplace_sums() -> None:
    for b, nodes, expected in ((100.0, 2, 0.9415), (10.0, 3, 0.9455)):
        noises = [dl(b)] * nodes
        naive = math.ceil(Z95 * math.sqrt(combined_variance(noises)))
        assert sum_coverage(noises, naive) == pytest.approx(expected, abs=5e-4)
        exact = half_width(noises)
        assert exact > naive
        assert sum_coverage(noises, exact) >= 0.95


def test_large_scale_sums_use_cells_and_stay_conservative() -> None:
    sigmas = [1e7, 2e7, 5e6]
    m = half_width([dg(s) for s in sigmas])
    rule = gaussian_sum_half_width(sigmas)
    assert rule <= m <= rule * (1 + 1e-3)
    mixed = half_width([dg(1e7), dl(3e6)])
    assert mixed > half_width(dg(1e7))
    with pytest.raises(ValueError, match="lattice points"):
        sum_coverage([dg(1e7), dg(1e7)], 10)


def test_integer_interval_in_natural_units() -> None:
    interval = integer_interval(1_000, dg(3.0))
    assert interval == Interval(1_000.0, 994.0, 1_006.0, 0.95)
    assert interval.half_width == 6.0
    summed = integer_interval(1_600, [dg(3.0)] * 3, unit=16)
    m = half_width([dg(3.0)] * 3)
    assert (summed.low, summed.high) == ((1_600 - m) / 16, (1_600 + m) / 16)


ENC = FixedPoint(0.0, 100.0, 4)  # encodings in [0, 1600]


def test_mean_interval_is_the_box_of_ratios() -> None:
    s_noise, n_noise = dg(2_000.0), dg(3.0)
    interval = mean_interval(50 * 16 * 40, s_noise, 40, n_noise, ENC)
    assert interval.estimate == 50.0
    m_s, m_n = s_noise.half_width(0.975), n_noise.half_width(0.975)
    assert interval.low == pytest.approx((50 * 16 * 40 - m_s) / (40 + m_n) / 16)
    assert interval.high == pytest.approx((50 * 16 * 40 + m_s) / (40 - m_n) / 16)
    assert interval.low < interval.estimate < interval.high


def test_mean_interval_clips_to_the_bounds_and_handles_tiny_counts() -> None:
    wide = mean_interval(90 * 16 * 3, dg(5_000.0), 3, dg(3.0), ENC)
    assert (wide.low, wide.high) == (0.0, 100.0)
    assert 0.0 <= wide.estimate <= 100.0
    hopeless = mean_interval(100, dg(10.0), -40, dg(3.0), ENC)
    assert (hopeless.low, hopeless.high) == (0.0, 100.0)
    assert hopeless.estimate == pytest.approx(100 / 16)


def test_variance_interval_contains_the_estimate_and_stays_in_range() -> None:
    values = np.random.default_rng(3).uniform(0, 100, size=500)
    enc = np.array([ENC.encode(v) for v in values])
    n, s, ss = enc.size, int(enc.sum()), int((enc * enc).sum())
    truth = float(ss / n / 256 - (s / n / 16) ** 2)
    interval = variance_interval(ss, dg(1e6), s, dg(1e3), n, dg(2.0), ENC)
    assert interval.low <= interval.estimate <= interval.high
    assert interval.low <= truth <= interval.high
    assert 0.0 <= interval.low and interval.high <= 2_500.0
    assert interval.estimate == pytest.approx(truth)
    hopeless = variance_interval(ss, dg(1e6), s, dg(1e3), -50, dg(2.0), ENC)
    assert (hopeless.low, hopeless.high) == (0.0, 2_500.0)


def test_interval_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="confidence must lie strictly"):
        half_width(dg(1.0), 0.0)
    with pytest.raises(ValueError, match="at least one noise"):
        half_width([])
    with pytest.raises(TypeError, match="expected Noise"):
        half_width([3.0])  # type: ignore[list-item]
