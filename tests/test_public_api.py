"""Each package's public surface is what its ``__all__`` says, and nothing leaks."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "node",
    "coordinator",
    "policies",
    "pki",
    "tomlconf",
    "demo",
    "accord_cli",
    "secagg",
    "officer",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported
    for item in exported:
        assert hasattr(module, item), f"{name}.{item}"


def test_node_and_coordinator_never_import_each_other() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for package, forbidden in (
        ("node", "coordinator"),
        ("coordinator", "node"),
        ("policies", "node"),
        ("policies", "coordinator"),
    ):
        for path in (root / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for stmt in ast.walk(tree):
                names = []
                if isinstance(stmt, ast.Import):
                    names = [a.name for a in stmt.names]
                elif isinstance(stmt, ast.ImportFrom) and stmt.module:
                    names = [stmt.module]
                for imported in names:
                    assert imported.split(".")[0] != forbidden, (
                        f"{path} imports {imported}"
                    )
