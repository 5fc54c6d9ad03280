"""Node-enforced privacy of training messages: clipping, Gaussian noise, accounting.

Whatever the coordinator asks, the node

1. clips the round's update ``delta = w_local - w_global`` (all arrays as one
   vector) to L2 norm ``C``;
2. adds Gaussian noise of standard deviation ``z * C`` to every coordinate, from a
   generator seeded with 256 bits of the operating system's CSPRNG;
3. charges its ledger ``rho = 1 / (2 z^2)`` per message (zCDP of the Gaussian
   mechanism with L2 sensitivity ``C``), through the policy gate.

The neighbouring relation of that accounting is the node's whole contribution of
one round (present or absent), as in user-level DP-FedAvg (McMahan et al., ICLR
2018) with the agency as the user; for one person inside an agency the L2 distance
between two clipped updates can reach ``2 C``, i.e. four times the rho. Evaluation
replies are sums over examples (losses clipped to a bound, correct predictions,
examples), noised with ``z`` times their per-person sensitivity.

The noise is a float Gaussian: fast enough for 10^6-parameter updates, where
OpenDP's exact samplers take seconds (REFERENCES.md c.5). Each noisy value is
snapped to a power-of-two grid ``2^-40`` times the noise scale, which hides the
low-order bits Mironov's attack reads; the residual risk of float sampling is
documented rather than removed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Grid of the snapped output, relative to the noise scale.
_SNAP_BITS = 40


def rho_of_noise(noise_multiplier: float) -> float:
    """Return the zCDP rho of one Gaussian release with noise multiplier ``z > 0``."""
    return 1.0 / (2.0 * noise_multiplier * noise_multiplier)


def noise_of_rho(rho: float) -> float:
    """Return the noise multiplier whose release costs ``rho > 0``."""
    return 1.0 / math.sqrt(2.0 * rho)


def secure_generator() -> np.random.Generator:
    """Return a numpy generator seeded with 256 bits from ``os.urandom``."""
    entropy = int.from_bytes(os.urandom(32), "big")
    return np.random.Generator(np.random.PCG64DXSM(np.random.SeedSequence(entropy)))


def _snap(values: NDArray[np.float64], scale: float) -> NDArray[np.float64]:
    grid = 2.0 ** (math.floor(math.log2(scale)) - _SNAP_BITS)
    return np.asarray(np.round(values / grid) * grid)


@dataclass(frozen=True)
class NoisyUpdate:
    """A clipped, noised update and what was applied.

    Parameters
    ----------
    delta : numpy.ndarray
        The update to release (flat, float64).
    clipped : bool
        Whether the update's norm exceeded the clipping norm (node-side only:
        never released).
    """

    delta: NDArray[np.float64]
    clipped: bool


def privatize_update(
    delta: NDArray[np.float64],
    *,
    clipping_norm: float,
    noise_multiplier: float,
    rng: np.random.Generator | None = None,
) -> NoisyUpdate:
    """Clip ``delta`` to L2 norm ``clipping_norm``, then add ``N(0, (z C)^2)`` noise.

    ``noise_multiplier`` 0 clips without noise (only where the policy allows exact
    answers).
    """
    if not (math.isfinite(clipping_norm) and clipping_norm > 0):
        raise ValueError("the clipping norm must be positive and finite")
    norm = float(np.linalg.norm(delta))
    clipped = norm > clipping_norm
    out = delta * (clipping_norm / norm) if clipped else delta.astype(np.float64)
    if noise_multiplier > 0:
        scale = noise_multiplier * clipping_norm
        generator = rng or secure_generator()
        out = _snap(out + generator.normal(0.0, scale, out.shape), scale)
    return NoisyUpdate(np.asarray(out, dtype=np.float64), clipped)


def privatize_sums(
    sums: NDArray[np.float64],
    *,
    sensitivity: float,
    noise_multiplier: float,
    rng: np.random.Generator | None = None,
) -> NDArray[np.float64]:
    """Add ``N(0, (z * sensitivity)^2)`` to each of ``sums`` (none when ``z`` is 0)."""
    if noise_multiplier <= 0:
        return sums.astype(np.float64)
    scale = noise_multiplier * sensitivity
    generator = rng or secure_generator()
    return _snap(sums + generator.normal(0.0, scale, sums.shape), scale)
