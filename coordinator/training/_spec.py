"""The training spec: what ``accord train SPEC`` runs (a TOML file, every error located).

Example::

    [job]
    app = "logistic-regression"
    app_digest = "sha256:..."          # optional: default, the digest every node reports
    dataset = "adult"
    features = ["age", "education_num", "sex"]
    label = "income_over_50k"
    rounds = 10
    purpose = "model-training"
    legal_basis = "LED-2016/680 Art.8(1)"

    [strategy]
    name = "fedavg"                    # fedavg, fedprox, fedadam, fedadagrad, fedyogi,
                                       # fedavgm, fedmedian, fedtrimmedavg
    params = { fraction_evaluate = 1.0 }

    [train]                            # the ConfigRecord every train message carries
    lr = 0.1
    local-epochs = 1
    batch-size = 64

    [privacy]                          # each node applies at least its policy's
    noise_multiplier = 1.0
    clipping_norm = 1.0

    [secure_aggregation]
    enabled = true
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

import tomlconf

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_COLUMN = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"

#: Strategies ``accord train`` builds, by name.
STRATEGIES = (
    "fedavg",
    "fedprox",
    "fedadam",
    "fedadagrad",
    "fedyogi",
    "fedavgm",
    "fedmedian",
    "fedtrimmedavg",
)
#: Strategies that need every node's own update: they cannot run on a secure sum.
PER_NODE_STRATEGIES = frozenset({"fedmedian", "fedtrimmedavg"})

ConfigValue = bool | int | float | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobSection(_Strict):
    """``[job]``: the app, the data and why."""

    app: str = Field(pattern=_NAME, description="The node-installed app.")
    app_digest: str | None = Field(
        default=None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="The app's code digest; default: the one every node reports.",
    )
    dataset: str = Field(pattern=_NAME)
    features: list[Annotated[str, Field(pattern=_COLUMN)]] = Field(min_length=1)
    label: str = Field(pattern=_COLUMN)
    rounds: int = Field(ge=1, le=10_000)
    purpose: str = Field(min_length=1, max_length=256)
    legal_basis: str = Field(default="", max_length=256)
    justification: str = Field(default="", max_length=1024)
    on_behalf_of: str = Field(default="", max_length=256)
    min_nodes: int = Field(
        default=2, ge=1, le=1024, description="Stop when fewer nodes remain."
    )
    deadline_seconds: float = Field(
        default=60.0, gt=0, le=86_400, description="Per node and message."
    )
    seed: int = Field(default=0, ge=0, le=2**63 - 1)

    @model_validator(mode="after")
    def _label_not_feature(self) -> JobSection:
        if self.label in self.features:
            raise ValueError(f"label {self.label!r} is also listed as a feature")
        if len(set(self.features)) != len(self.features):
            raise ValueError("a feature is listed twice")
        return self


class StrategySection(_Strict):
    """``[strategy]``: the Flower strategy and its parameters."""

    name: str = Field(default="fedavg", description=", ".join(STRATEGIES))
    params: dict[str, ConfigValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> StrategySection:
        if self.name not in STRATEGIES:
            raise ValueError(
                f"unknown strategy {self.name!r}; expected one of {', '.join(STRATEGIES)}"
            )
        return self


class PrivacySection(_Strict):
    """``[privacy]``: the DP asked of every node (each applies at least its own)."""

    noise_multiplier: float = Field(default=0.0, ge=0, le=1e6)
    clipping_norm: float = Field(default=0.0, ge=0, le=1e9)


class SecureAggregationSection(_Strict):
    """``[secure_aggregation]``."""

    enabled: bool = False
    max_weight: int = Field(default=1 << 20, ge=1, le=1 << 30)


class TrainSpec(_Strict):
    """A whole training spec."""

    job: JobSection
    strategy: StrategySection = StrategySection()
    train: dict[str, ConfigValue] = Field(
        default_factory=dict, description="The train ConfigRecord."
    )
    evaluate: dict[str, ConfigValue] = Field(
        default_factory=dict, description="The evaluate ConfigRecord."
    )
    model: dict[str, float] = Field(
        default_factory=dict, description="App options, e.g. hidden_units."
    )
    privacy: PrivacySection = PrivacySection()
    secure_aggregation: SecureAggregationSection = SecureAggregationSection()

    @model_validator(mode="after")
    def _compatible(self) -> TrainSpec:
        if (
            self.secure_aggregation.enabled
            and self.strategy.name in PER_NODE_STRATEGIES
        ):
            raise ValueError(
                f"strategy {self.strategy.name} needs each node's own update; "
                "secure aggregation releases only their sum"
            )
        for key in (*self.train, *self.evaluate):
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", key):
                raise ValueError(f"config key {key!r}: letters, digits, . _ - only")
        return self


def load_spec(path: Path) -> TrainSpec:
    """Load a training spec.

    Raises
    ------
    tomlconf.ConfigError
        Every problem, with file, line and field.
    """
    return tomlconf.load(path, TrainSpec)
