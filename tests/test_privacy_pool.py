"""The noise pool: small releases draw OpenDP noise made ahead, each draw used once."""

from __future__ import annotations

import itertools
import math
import os
import pickle
import threading
import warnings
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import pytest

from node.privacy import DISCRETE_GAUSSIAN, DISCRETE_LAPLACE, Noise, noisy_integers
from node.privacy._fixedpoint import INT64_MAX
from node.privacy._mechanisms import NOISE_POOL
from node.privacy._pool import NoisePool

Z_FAILURE = NormalDist().inv_cdf(1 - 1e-6 / 2)  # 4.89: a false failure in a million


class Numbered:
    """A sampler that hands out consecutive integers, so reuse would show."""

    def __init__(self) -> None:
        self.counter = itertools.count()
        self.calls: list[int] = []

    def __call__(self, noise: Noise, n: int) -> Sequence[int]:
        self.calls.append(n)
        return [next(self.counter) for _ in range(n)]


def test_no_draw_is_ever_handed_out_twice_across_threads() -> None:
    sampler = Numbered()
    pool = NoisePool(sampler, block=16)
    noise = Noise(DISCRETE_GAUSSIAN, 3.0)
    taken: list[list[int]] = [[] for _ in range(8)]

    def worker(lane: list[int]) -> None:
        for i in range(300):
            lane.extend(pool.take(noise, 1 + i % 5))

    threads = [threading.Thread(target=worker, args=(lane,)) for lane in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [x for lane in taken for x in lane]
    assert len(flat) == 8 * sum(1 + i % 5 for i in range(300))
    assert len(set(flat)) == len(flat)
    assert pool.held(noise) + len(flat) == sum(sampler.calls)


def test_refills_grow_to_the_block_and_large_requests_are_drawn_whole() -> None:
    sampler = Numbered()
    pool = NoisePool(sampler, block=10, first=2)
    noise = Noise(DISCRETE_LAPLACE, 2.0)
    assert len(pool.take(noise, 3)) == 3  # first refill: 2, but 3 are needed
    assert sampler.calls == [3] and pool.held(noise) == 0
    pool.take(noise, 1)  # next refill: twice as large
    assert sampler.calls == [3, 4] and pool.held(noise) == 3
    assert len(pool.take(noise, 25)) == 25  # 3 held + a draw of 22
    assert sampler.calls == [3, 4, 22] and pool.held(noise) == 0
    pool.take(noise, 1)
    assert sampler.calls == [3, 4, 22, 10]  # capped at the block
    assert pool.take(noise, 0) == [] and pool.held(Noise(DISCRETE_LAPLACE, 9.0)) == 0


def test_scales_are_kept_apart_and_the_least_used_is_dropped() -> None:
    sampler = Numbered()
    pool = NoisePool(sampler, block=4, capacity=2, first=4)
    a, b, c = (Noise(DISCRETE_GAUSSIAN, s) for s in (1.0, 2.0, 3.0))
    pool.take(a, 1)
    pool.take(b, 1)
    pool.take(a, 1)  # a is now the most recently used
    pool.take(c, 1)  # b goes
    assert (pool.held(a), pool.held(b), pool.held(c)) == (2, 0, 3)


def test_a_refill_of_one_scale_holds_up_no_other() -> None:
    slow, other = Noise(DISCRETE_GAUSSIAN, 1.0), Noise(DISCRETE_GAUSSIAN, 2.0)
    entered, release = threading.Event(), threading.Event()
    numbered = Numbered()

    def sampler(noise: Noise, n: int) -> Sequence[int]:
        if noise == slow:
            entered.set()
            assert release.wait(10)
        return numbered(noise, n)

    pool = NoisePool(sampler)
    waiting = threading.Thread(target=pool.take, args=(slow, 1))
    waiting.start()
    try:
        assert entered.wait(5)  # the slow refill is under way
        served = threading.Thread(target=pool.take, args=(other, 1))
        served.start()
        served.join(5)
        assert not served.is_alive()  # the other scale did not wait for it
        assert waiting.is_alive()
    finally:
        release.set()
        waiting.join()
    assert (pool.held(slow), pool.held(other)) == (7, 7)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        NoisePool(Numbered(), block=0)
    with pytest.raises(ValueError, match="first <= block"):
        NoisePool(Numbered(), block=4, first=8)
    with pytest.raises(ValueError, match="non-negative"):
        NoisePool(Numbered()).take(Noise(DISCRETE_GAUSSIAN, 1.0), -1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_releases_its_parents_draws() -> None:
    noise = Noise(DISCRETE_GAUSSIAN, 7.0)
    NOISE_POOL.take(noise, 1)  # the parent now holds a block of draws
    assert NOISE_POOL.held(noise) > 0
    read, write = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns of forking with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(write, pickle.dumps(NOISE_POOL.held(noise)))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        held_in_child = pickle.loads(pipe.read())
    os.waitpid(pid, 0)
    assert held_in_child == 0
    assert NOISE_POOL.held(noise) > 0


@pytest.mark.parametrize(
    ("kind", "budget", "scale"),
    [(DISCRETE_GAUSSIAN, 1 / 18, 3.0), (DISCRETE_LAPLACE, 0.4, 2.5)],
)
def test_one_cell_releases_have_the_calibrated_variance_and_are_independent(
    kind: str, budget: float, scale: float
) -> None:
    """Many one-cell releases (pooled noise) against the noise's exact variance."""
    n = 6_000
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        if kind == DISCRETE_GAUSSIAN:
            release = noisy_integers([100], l2_sensitivity=1, rho=budget)
        else:
            release = noisy_integers([100], l1_sensitivity=1, epsilon=budget)
        assert release.scale == pytest.approx(scale)
        out[i] = release.values[0] - 100
    noise = Noise(kind, scale)  # type: ignore[arg-type]
    var = noise.variance
    # Var of the sample variance needs the fourth moment: bound it generously
    # (discrete Laplace kurtosis is 6, Gaussian 3) -> mu4 <= 9 var^2.
    tolerance = Z_FAILURE * math.sqrt(8 * var**2 / n)
    assert abs(float(out.var()) - var) < tolerance
    assert abs(float(out.mean())) < Z_FAILURE * math.sqrt(var / n)
    lag = float(np.corrcoef(out[:-1], out[1:])[0, 1])
    assert abs(lag) < Z_FAILURE / math.sqrt(n)  # consecutive draws uncorrelated
    assert len(np.unique(out)) > 5


def test_pooled_noise_saturates_at_the_int64_edges_like_opendp() -> None:
    top = noisy_integers([INT64_MAX] * 3, l2_sensitivity=1, rho=1e-6).values
    bottom = noisy_integers([-INT64_MAX - 1] * 3, l2_sensitivity=1, rho=1e-6).values
    assert top.dtype == np.int64 and bottom.dtype == np.int64
    assert (top <= INT64_MAX).all() and (top > INT64_MAX - 10_000).all()
    assert (bottom >= -INT64_MAX - 1).all() and (bottom < -INT64_MAX + 10_000).all()
