"""Realistic, generated incident records: each agency with its own size and mix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

REGIONS = ("north", "south", "east", "west", "central")
OFFENCES = ("burglary", "fraud", "trafficking", "assault", "cybercrime", "smuggling")
MONTHS = tuple(f"2025-{m:02d}" for m in range(1, 13))


@dataclass(frozen=True)
class AgencyProfile:
    """How one agency's incidents are distributed."""

    agency: str
    title: str
    rows: int
    region_weights: tuple[float, ...]
    offence_weights: tuple[float, ...]
    damage_scale: float
    cross_border_rate: float
    severity_shift: float


PROFILES: dict[str, AgencyProfile] = {
    "agency-a": AgencyProfile(
        "agency-a",
        "National Police",
        12_000,
        (0.30, 0.20, 0.15, 0.15, 0.20),
        (0.30, 0.15, 0.05, 0.30, 0.15, 0.05),
        2_500.0,
        0.05,
        0.0,
    ),
    "agency-b": AgencyProfile(
        "agency-b",
        "Border Guard",
        6_000,
        (0.10, 0.35, 0.35, 0.10, 0.10),
        (0.02, 0.08, 0.35, 0.05, 0.05, 0.45),
        8_000.0,
        0.80,
        0.6,
    ),
    "agency-c": AgencyProfile(
        "agency-c",
        "Financial Intelligence Unit",
        3_000,
        (0.15, 0.15, 0.15, 0.15, 0.40),
        (0.0, 0.60, 0.10, 0.0, 0.25, 0.05),
        40_000.0,
        0.35,
        0.3,
    ),
}

#: Declared schema of the generated dataset (the node.toml ``columns`` table).
SCHEMA: dict[str, dict[str, object]] = {
    "incident_id": {"type": "string", "description": "Case reference (never released)"},
    "region": {"type": "category", "categories": list(REGIONS)},
    "offence": {"type": "category", "categories": list(OFFENCES)},
    "month": {"type": "category", "categories": list(MONTHS)},
    "severity": {"type": "integer", "bounds": [1, 5]},
    "suspects": {"type": "integer", "bounds": [0, 20]},
    "damage_eur": {"type": "float", "bounds": [0, 1_000_000]},
    "cross_border": {"type": "boolean"},
}


def generate(profile: AgencyProfile, seed: int) -> pa.Table:
    """Generate ``profile.rows`` incidents, reproducibly from ``seed``."""
    rng = np.random.default_rng(seed)
    n = profile.rows
    region = rng.choice(len(REGIONS), size=n, p=_norm(profile.region_weights))
    offence = rng.choice(len(OFFENCES), size=n, p=_norm(profile.offence_weights))
    month = rng.integers(0, 12, size=n)
    base = np.array([2.0, 2.5, 3.8, 3.0, 2.7, 3.2])[offence] + profile.severity_shift
    severity = np.clip(np.rint(rng.normal(base, 0.9)), 1, 5).astype(np.int64)
    suspects = np.clip(rng.poisson(0.6 + 0.5 * severity), 0, 20).astype(np.int64)
    damage = np.round(
        np.minimum(
            rng.lognormal(np.log(profile.damage_scale), 1.0, size=n) * severity / 3, 1e6
        ),
        2,
    )
    cross_border = (
        rng.random(n)
        < profile.cross_border_rate
        * (1 + (np.array(OFFENCES)[offence] == "smuggling"))
        / 2
        + profile.cross_border_rate / 2
    )
    ids = [f"{profile.agency[-1].upper()}-{i:07d}" for i in range(n)]
    return pa.table(
        {
            "incident_id": pa.array(ids, pa.string()),
            "region": pa.array(np.array(REGIONS)[region], pa.string()),
            "offence": pa.array(np.array(OFFENCES)[offence], pa.string()),
            "month": pa.array(np.array(MONTHS)[month], pa.string()),
            "severity": pa.array(severity, pa.int64()),
            "suspects": pa.array(suspects, pa.int64()),
            "damage_eur": pa.array(damage, pa.float64()),
            "cross_border": pa.array(cross_border, pa.bool_()),
        }
    )


def _norm(weights: tuple[float, ...]) -> npt.NDArray[np.float64]:
    w = np.asarray(weights, dtype=np.float64)
    return np.asarray(w / w.sum(), dtype=np.float64)
