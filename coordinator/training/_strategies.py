"""Build a Flower Message-API strategy from a spec; save and restore its state."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from coordinator._errors import SpecError
from coordinator.training import _flower  # noqa: F401 - telemetry off before flwr
from coordinator.training._spec import StrategySection


def build_strategy(section: StrategySection, *, min_nodes: int) -> Any:
    """Return the strategy ``section`` names, sampling every live node each round.

    Raises
    ------
    SpecError
        If a parameter is not one the strategy takes.
    """
    from flwr.serverapp import strategy as st

    classes: dict[str, type[Any]] = {
        "fedavg": st.FedAvg,
        "fedprox": st.FedProx,
        "fedadam": st.FedAdam,
        "fedadagrad": st.FedAdagrad,
        "fedyogi": st.FedYogi,
        "fedavgm": st.FedAvgM,
        "fedmedian": st.FedMedian,
        "fedtrimmedavg": st.FedTrimmedAvg,
    }
    kwargs: dict[str, Any] = {
        "fraction_train": 1.0,
        "fraction_evaluate": 1.0,
        "min_train_nodes": min_nodes,
        "min_evaluate_nodes": min_nodes,
        "min_available_nodes": min_nodes,
        **section.params,
    }
    try:
        return classes[section.name](**kwargs)
    except (TypeError, ValueError) as exc:
        raise SpecError("strategy.params", str(exc)) from None


def strategy_state(strategy: Any) -> bytes:
    """Save the strategy's array state (e.g. FedAdam's moments) as ``.npz`` bytes.

    Every attribute holding a dict of numpy arrays is kept, as ``attr/key``.
    """
    arrays: dict[str, Any] = {}
    for attr, value in vars(strategy).items():
        if (
            isinstance(value, dict)
            and value
            and all(isinstance(v, np.ndarray) for v in value.values())
        ):
            for key, array in value.items():
                arrays[f"{attr}/{key}"] = array
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def restore_strategy_state(strategy: Any, data: bytes) -> None:
    """Put back what `strategy_state` saved (never unpickles)."""
    restored: dict[str, dict[str, Any]] = {}
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        for name in archive.files:
            attr, _, key = name.partition("/")
            restored.setdefault(attr, {})[key] = archive[name]
    for attr, value in restored.items():
        if hasattr(strategy, attr):
            setattr(strategy, attr, value)
