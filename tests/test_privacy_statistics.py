"""node.privacy, statistically: noise variances, interval coverage, suppression risk.

OpenDP's samplers draw from OpenSSL's CSPRNG and cannot be seeded, so every check
compares an empirical frequency or variance with its exact value under a bound
that fails with probability at most 1e-6 per assertion:

* frequencies (coverage, suppression): the Chernoff bound for a binomial,
  ``P(|p_hat - p| >= t) <= 2 exp(-n KL(p +- t || p))``, solved for ``t`` -- rigorous;
* sample variances: the normal approximation with the exact fourth moment
  (``sd(s^2) = sqrt((mu4 - var^2) / n)``) at z = 4.89 -- n >= 20,000, so the CLT is
  sound for these light-tailed laws.

A vector of n cells carries n independent draws, so one release of n cells is n
runs; the true data are drawn by a seeded numpy generator (data, never noise).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pytest

from node.privacy import (
    DISCRETE_GAUSSIAN,
    DISCRETE_LAPLACE,
    Count,
    FixedPoint,
    Mean,
    Noise,
    Sum,
    Variance,
    half_width,
    mean_interval,
    noisy_integers,
    plan_release,
    release,
    sum_coverage,
    suppress,
    variance_interval,
)
from node.privacy._noise import discrete_gaussian_pmf

FAILURE = 1e-6
Z_FAILURE = NormalDist().inv_cdf(1 - FAILURE / 2)  # 4.89


def _kl(a: float, p: float) -> float:
    """Bernoulli relative entropy KL(a || p)."""
    out = 0.0
    if a > 0:
        out += a * math.log(a / p)
    if a < 1:
        out += (1 - a) * math.log((1 - a) / (1 - p))
    return out


def binomial_band(n: int, p: float, failure: float = FAILURE) -> tuple[float, float]:
    """Return (lo, hi) with P(p_hat outside) <= failure for Binomial(n, p) / n."""
    target = math.log(2 / failure) / n

    def solve(
        a: float, b: float
    ) -> float:  # KL(x || p) - target changes sign on [a, b]
        for _ in range(200):
            mid = (a + b) / 2
            if (_kl(mid, p) > target) == (_kl(a, p) > target):
                a = mid
            else:
                b = mid
        return (a + b) / 2

    lo = 0.0 if _kl(0.0, p) <= target else solve(0.0, p)
    hi = 1.0 if _kl(1.0, p) <= target else solve(p, 1.0)
    return lo, hi


def assert_frequency(hits: int, n: int, p: float, label: str) -> float:
    lo, hi = binomial_band(n, p)
    freq = hits / n
    assert lo <= freq <= hi, (
        f"{label}: {freq:.4f} outside [{lo:.4f}, {hi:.4f}] (p={p:.4f})"
    )
    return freq


def moments(noise: Noise) -> tuple[float, float]:
    """Exact variance and fourth moment of one draw."""
    support = int(80 * noise.scale) + 30
    x = np.arange(-support, support + 1, dtype=np.float64)
    if noise.mechanism == DISCRETE_GAUSSIAN:
        pmf = discrete_gaussian_pmf(noise.scale, support)
    else:
        q = math.exp(-1 / noise.scale)
        pmf = (1 - q) / (1 + q) * np.exp(-np.abs(x) / noise.scale)
    return float((pmf * x**2).sum()), float((pmf * x**4).sum())


def draws(
    noise_kind: str, budget: float, n: int, sensitivity: int = 1
) -> npt.NDArray[np.int64]:
    zeros = np.zeros(n, dtype=np.int64)
    if noise_kind == DISCRETE_GAUSSIAN:
        return noisy_integers(zeros, l2_sensitivity=sensitivity, rho=budget).values
    return noisy_integers(zeros, l1_sensitivity=sensitivity, epsilon=budget).values


@pytest.mark.parametrize(
    ("kind", "budget", "scale"),
    [
        (DISCRETE_GAUSSIAN, 1 / 18, 3.0),  # REFERENCES c.3: sigma = 3 on a count
        (DISCRETE_GAUSSIAN, 1 / (2 * 0.6**2), 0.6),  # variance 0.32, below sigma^2
        (DISCRETE_LAPLACE, 0.4, 2.5),
        (DISCRETE_LAPLACE, 1 / 0.7, 0.7),
    ],
)
def test_empirical_noise_variance_matches(
    kind: str, budget: float, scale: float
) -> None:
    n = 50_000
    x = draws(kind, budget, n).astype(np.float64)
    noise = Noise(kind, scale)  # type: ignore[arg-type]
    var, mu4 = moments(noise)
    assert noise.variance == pytest.approx(var, rel=1e-9)
    if kind == DISCRETE_GAUSSIAN and scale >= 1:
        assert var == pytest.approx(scale**2, rel=1e-6)
    empirical = float(x.var())
    tolerance = Z_FAILURE * math.sqrt((mu4 - var**2) / n)
    assert abs(empirical - var) <= tolerance, (empirical, var, tolerance)
    assert abs(float(x.mean())) <= Z_FAILURE * math.sqrt(var / n)


def coverage_of(
    truth: npt.NDArray[np.int64], rho: float | None, epsilon: float | None
) -> tuple[int, Noise, int]:
    plan = plan_release(
        [Count()], groups=truth.size, max_rows_per_person=1, rho=rho, epsilon=epsilon
    )
    (vector,) = plan.vectors
    out = release(plan, {"count": truth})["count"]
    hits = int((np.abs(out.values - truth) <= vector.half_width).sum())
    return hits, vector.noise, vector.half_width


RNG_SEED = 20250301


@pytest.mark.parametrize(
    ("rho", "epsilon", "scale"),
    [
        (1 / (2 * 30.0**2), None, 30.0),  # discrete Gaussian, sigma = 30
        (None, 1 / 20, 20.0),  # discrete Laplace, b = 20
    ],
)
def test_true_count_inside_the_95_interval_95_percent_of_the_time(
    rho: float | None, epsilon: float | None, scale: float
) -> None:
    n = 20_000
    truth = np.random.default_rng(RNG_SEED).integers(0, 5_000, size=n)
    hits, noise, m = coverage_of(truth, rho, epsilon)
    assert noise.scale == pytest.approx(scale, rel=1e-12)
    exact = noise.coverage(m)
    assert 0.95 <= exact <= 0.955
    freq = assert_frequency(hits, n, exact, f"{noise.mechanism} coverage")
    assert 0.935 <= freq <= 0.965


def test_small_sigma_intervals_cover_as_stated_and_the_naive_one_does_not() -> None:
    n = 20_000
    truth = np.random.default_rng(RNG_SEED + 1).integers(0, 100, size=n)
    out = noisy_integers(truth, l2_sensitivity=1, rho=1 / 18)  # sigma = 3
    error = np.abs(out.values - truth)
    m = out.noise.half_width()
    assert m == 6
    assert_frequency(
        int((error <= m).sum()), n, out.noise.coverage(m), "exact, sigma 3"
    )
    naive = math.floor(1.96 * 3)
    freq = assert_frequency(
        int((error <= naive).sum()), n, out.noise.coverage(naive), "naive"
    )
    assert freq < 0.95


def test_fixed_point_sum_interval_coverage_at_large_sigma() -> None:
    n = 20_000
    encoding = FixedPoint(
        0.0, 1_000.0, 8
    )  # M = 256,000: sigma > 10,000, the bound regime
    rng = np.random.default_rng(RNG_SEED + 2)
    truth = rng.integers(0, 50 * 256_000, size=n)
    plan = plan_release(
        [Sum("x")], groups=n, max_rows_per_person=1, columns={"x": encoding}, rho=0.5
    )
    (vector,) = plan.vectors
    assert vector.noise.scale > 10_000
    out = release(plan, {"sum(x)": truth})["sum(x)"]
    hits = int((np.abs(out.values - truth) <= vector.half_width).sum())
    exact_lower_bound = vector.noise.coverage(vector.half_width)
    assert 0.95 <= exact_lower_bound <= 0.9501
    freq = assert_frequency(hits, n, exact_lower_bound, "fixed-point sum")
    assert 0.935 <= freq <= 0.965


@pytest.mark.parametrize(
    "node_noise",
    [
        [(DISCRETE_GAUSSIAN, 3.0), (DISCRETE_GAUSSIAN, 5.0), (DISCRETE_GAUSSIAN, 8.0)],
        [(DISCRETE_LAPLACE, 10.0), (DISCRETE_LAPLACE, 10.0), (DISCRETE_LAPLACE, 10.0)],
        [(DISCRETE_GAUSSIAN, 4.0), (DISCRETE_LAPLACE, 3.0), (DISCRETE_GAUSSIAN, 2.0)],
    ],
)
def test_coordinator_sum_of_partials_is_covered(
    node_noise: list[tuple[str, float]],
) -> None:
    n = 10_000
    rng = np.random.default_rng(RNG_SEED + 3)
    total_truth = np.zeros(n, dtype=np.int64)
    total_noisy = np.zeros(n, dtype=np.int64)
    noises = []
    for kind, scale in node_noise:
        truth = rng.integers(0, 1_000, size=n)
        if kind == DISCRETE_GAUSSIAN:
            out = noisy_integers(truth, l2_sensitivity=1, rho=1 / (2 * scale**2))
        else:
            out = noisy_integers(truth, l1_sensitivity=1, epsilon=1 / scale)
        assert out.scale == pytest.approx(scale, rel=1e-12)
        noises.append(out.noise)
        total_truth += truth
        total_noisy += out.values
    m = half_width(noises)
    exact = sum_coverage(noises, m)
    assert 0.95 <= exact < 0.96
    hits = int((np.abs(total_noisy - total_truth) <= m).sum())
    assert_frequency(hits, n, exact, f"sum over nodes {node_noise}")


def _groups(
    rng: np.random.Generator, encoding: FixedPoint, groups: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    counts = rng.integers(20, 61, size=groups)
    sums = np.zeros(groups, dtype=np.int64)
    squares = np.zeros(groups, dtype=np.int64)
    for g, size in enumerate(counts):
        values = rng.normal(60.0, 15.0, size=size)
        # FixedPoint.encode, vectorised: clamp, scale by 2^k, round half to even
        enc = np.rint(np.clip(values, encoding.lower, encoding.upper) * encoding.scale)
        enc = enc.astype(np.int64)
        assert enc[0] == encoding.encode(float(values[0]))
        sums[g], squares[g] = enc.sum(), (enc * enc).sum()
    return counts, sums, squares


def test_mean_and_variance_intervals_cover_at_least_95_percent() -> None:
    groups = 4_000
    encoding = FixedPoint(0.0, 100.0, 4)
    rng = np.random.default_rng(RNG_SEED + 4)
    counts, sums, squares = _groups(rng, encoding, groups)
    plan = plan_release(
        [Mean("x"), Variance("x")],
        groups=groups,
        max_rows_per_person=1,
        columns={"x": encoding},
        rho=2.0,
    )
    out = release(plan, {"count": counts, "sum(x)": sums, "sum_of_squares(x)": squares})
    n_noise, s_noise, ss_noise = (out[k].noise for k in plan.names)
    mean_hits = variance_hits = 0
    for g in range(groups):
        true_mean = sums[g] / counts[g] / 16
        true_var = squares[g] / counts[g] / 256 - true_mean**2
        noisy = [
            int(out[k].values[g]) for k in ("count", "sum(x)", "sum_of_squares(x)")
        ]
        mean = mean_interval(noisy[1], s_noise, noisy[0], n_noise, encoding)
        var = variance_interval(
            noisy[2], ss_noise, noisy[1], s_noise, noisy[0], n_noise, encoding
        )
        mean_hits += mean.low <= true_mean <= mean.high
        variance_hits += var.low <= true_var <= var.high
    lo, _ = binomial_band(groups, 0.95)
    assert mean_hits / groups >= lo, mean_hits / groups
    assert variance_hits / groups >= lo, variance_hits / groups


def test_suppression_risk_threshold_holds() -> None:
    n = 10_000
    plan = plan_release(
        [Count()], groups=n, max_rows_per_person=1, rho=0.02, min_group_size=10
    )
    assert plan.at_risk_below is not None
    truth = np.full(n, plan.at_risk_below, dtype=np.int64)
    noisy = release(plan, {"count": truth})["count"].values
    suppressed = int(suppress(noisy, 10).sum())
    (vector,) = plan.vectors
    # Suppressed iff noise < -(at_risk_below - 10) = -m: probability P(X > m) (symmetry).
    p = (1 - vector.noise.coverage(vector.half_width)) / 2
    assert p <= 0.025
    assert_frequency(suppressed, n, p, "suppression at the risk threshold")
