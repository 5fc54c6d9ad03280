"""Noise drawn ahead from OpenDP's samplers, in blocks, each draw handed out once.

Invoking an OpenDP measurement costs about 0.2 ms of Python conversion under the GIL
whatever the vector's length, against about 14 us of sampling per entry with the GIL
released. A small release (a filtered count: one entry) would spend most of its noise
time converting. :class:`NoisePool` therefore draws each scale's noise a block at a
time -- the same measurement on a vector of zeros, so every entry is an independent
draw from exactly the distribution the release is calibrated for -- and hands the
draws out one by one, each exactly once.

The draws are as secret as the data they will protect and live only in this
process's memory. They are dropped in a forked child (two processes must never
release the same draw) and when a scale falls out of the pool's capacity (an unused
draw is harmless to discard).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence

from node.privacy._noise import Noise

#: Draws one block: ``n`` independent noise values of a scale, as Python ints.
Sampler = Callable[[Noise, int], Sequence[int]]

_pools: weakref.WeakSet[NoisePool] = weakref.WeakSet()


def _forget_in_child() -> None:
    for pool in list(_pools):
        pool._after_fork()


os.register_at_fork(after_in_child=_forget_in_child)


class NoisePool:
    """Per-scale stores of noise draws, refilled a block at a time.

    A scale's first refill is small and each next one twice as large, up to
    ``block``: a scale used once costs little more than sampling directly, a scale
    used often soon costs one OpenDP call per ``block`` draws. Sampling runs outside
    the pool's lock, so a refill of one scale holds up no other.

    Parameters
    ----------
    sampler : callable
        ``sampler(noise, n)`` returns ``n`` independent draws of ``noise``.
    block : int, optional
        Most draws per refill (default 128).
    capacity : int, optional
        Most scales kept; the least recently used is dropped beyond it.
    first : int, optional
        Draws of a scale's first refill (default 8).
    """

    def __init__(
        self,
        sampler: Sampler,
        *,
        block: int = 128,
        capacity: int = 64,
        first: int = 8,
    ) -> None:
        if block < 1 or capacity < 1 or not 1 <= first <= block:
            raise ValueError("block and capacity must be positive, 1 <= first <= block")
        self._sampler = sampler
        self._block = block
        self._first = first
        self._capacity = capacity
        self._draws: OrderedDict[Noise, list[int]] = OrderedDict()
        self._next: dict[Noise, int] = {}  # the size of each scale's next refill
        self._lock = threading.Lock()
        _pools.add(self)

    @property
    def block(self) -> int:
        """Most draws per refill; larger requests should sample directly."""
        return self._block

    def take(self, noise: Noise, n: int) -> list[int]:
        """Return ``n`` fresh draws of ``noise``; none is ever returned twice.

        Parameters
        ----------
        noise : Noise
            Mechanism and scale.
        n : int
            How many draws.

        Returns
        -------
        list of int
            The draws, removed from the pool.
        """
        if n < 0:
            raise ValueError("n must be non-negative")
        if n == 0:
            return []
        taken: list[int] = []
        while True:
            with self._lock:
                store = self._store(noise)
                part = min(n - len(taken), len(store))
                if part:
                    taken += store[len(store) - part :]
                    del store[len(store) - part :]
                if len(taken) == n:
                    return taken
                size = self._next.get(noise, self._first)
                self._next[noise] = min(self._block, 2 * size)
            drawn = self._sampler(noise, max(size, n - len(taken)))
            with self._lock:
                self._store(noise).extend(drawn)

    def _store(self, noise: Noise) -> list[int]:
        """Return the draws of ``noise`` (made most recently used); under the lock."""
        store = self._draws.get(noise)
        if store is None:
            store = self._draws[noise] = []
            while len(self._draws) > self._capacity:
                dropped, _ = self._draws.popitem(last=False)
                self._next.pop(dropped, None)
        else:
            self._draws.move_to_end(noise)
        return store

    def held(self, noise: Noise) -> int:
        """Return how many draws of ``noise`` wait in the pool."""
        with self._lock:
            return len(self._draws.get(noise, ()))

    def clear(self) -> None:
        """Drop every draw."""
        with self._lock:
            self._draws.clear()
            self._next.clear()

    def _after_fork(self) -> None:
        # In a forked child: its parent may have held the lock at fork time, and
        # the parent will release the draws it holds; the child starts empty.
        self._lock = threading.Lock()
        self._draws = OrderedDict()
        self._next = {}
