"""The public surface of the training packages is what their ``__all__`` says."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize("name", ["node.training", "coordinator.training"])
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__
    for item in module.__all__:
        assert hasattr(module, item), f"{name}.{item}"


def test_importing_the_cli_does_not_load_flower() -> None:
    code = (
        "import sys, accord_cli; "
        "assert 'flwr' not in sys.modules and 'sqlmodel' not in sys.modules"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_example_spec_is_valid() -> None:
    from pathlib import Path

    from coordinator.training import load_spec

    spec = load_spec(Path(__file__).parent.parent / "examples/training/train.toml")
    assert spec.job.app == "logistic-regression"
    assert spec.secure_aggregation.enabled
