"""Time to release noisy integers with OpenDP's exact samplers, against numpy floats.

For n = 1, 100, 10,000 and 100,000 integers, times ``node.privacy.noisy_integers``
end to end (calibration against OpenDP's map, the FFI call, the conversion back to
int64) with the discrete Gaussian (a count at rho = 0.05: sigma = 3.16; and a
fixed-point sum: sigma = 1e6) and the discrete Laplace (epsilon = 0.1 on a count:
b = 10), and ``numpy.random.Generator.normal`` plus the addition as the float
baseline (not a safe mechanism: REFERENCES c.2), in the same process. Reports the
median of several runs and the ratio to the baseline.
Run: ``python bench/bench_privacy.py [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from node.privacy import gaussian_scale, noisy_integers

SIZES = (1, 100, 10_000, 100_000)


def median_time(run: Callable[[], object], repeat: int) -> float:
    """Return the median wall time of ``repeat`` calls of ``run``, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def repeats(n: int, quick: bool) -> int:
    """Fewer repetitions for bigger vectors."""
    if n <= 100:
        return 50 if quick else 200
    if n <= 10_000:
        return 3 if quick else 7
    return 1 if quick else 3


def fmt(seconds: float) -> str:
    """Format a duration with a unit people read at a glance."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:8.2f} ms"
    return f"{seconds:8.2f} s "


SIGMA_COUNT = gaussian_scale(1, 0.05)
BIG_SENSITIVITY = 1_414_214  # sigma = 1e6 at rho = 1


def measure(
    n: int, rng: np.random.Generator, reps: int
) -> tuple[int, float, float, float, float]:
    """Time the baseline and the three mechanisms on ``n`` random integers."""
    values = rng.integers(0, 1_000_000, size=n)
    baseline = median_time(lambda: values + rng.normal(0.0, SIGMA_COUNT, size=n), reps)
    gauss = median_time(
        lambda: noisy_integers(values, l2_sensitivity=1, rho=0.05), reps
    )
    gauss_big = median_time(
        lambda: noisy_integers(values, l2_sensitivity=BIG_SENSITIVITY, rho=1.0), reps
    )
    laplace = median_time(
        lambda: noisy_integers(values, l1_sensitivity=1, epsilon=0.1), reps
    )
    return n, baseline, gauss, gauss_big, laplace


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()

    rng = np.random.default_rng(1)
    rows = [measure(n, rng, repeats(n, args.quick)) for n in SIZES]

    print(
        f"node.privacy.noisy_integers vs numpy float Gaussian "
        f"(median; discrete Gaussian sigma = {SIGMA_COUNT:.2f} and 1e6, "
        "discrete Laplace b = 10)"
    )
    header = (
        f"{'n':>8} | {'numpy normal':>12} | {'DGauss s=3.16':>13} {'x':>7} | "
        f"{'DGauss s=1e6':>13} {'x':>7} | {'DLaplace b=10':>13} {'x':>7} | "
        f"{'per int (DG)':>12}"
    )
    print(header)
    print("-" * len(header))
    for n, baseline, gauss, gauss_big, laplace in rows:
        print(
            f"{n:>8,} | {fmt(baseline):>12} | {fmt(gauss):>13} {gauss / baseline:>6.0f}x | "
            f"{fmt(gauss_big):>13} {gauss_big / baseline:>6.0f}x | "
            f"{fmt(laplace):>13} {laplace / baseline:>6.0f}x | {fmt(gauss / n):>12}"
        )


if __name__ == "__main__":
    main()
