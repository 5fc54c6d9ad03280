"""The checked-in generated code is exactly what the pinned generator produces."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    generated = sorted(
        p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()
    )
    assert generated, "the generator wrote nothing"
    checked_in = sorted(
        p.relative_to(ROOT / "proto")
        for p in (ROOT / "proto").rglob("*")
        if p.is_file()
        and p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"))
    )
    assert generated == checked_in
    for rel in generated:
        assert (tmp_path / rel).read_bytes() == (ROOT / "proto" / rel).read_bytes(), rel


def test_generated_code_imports_as_accord_v1() -> None:
    module = importlib.import_module("accord.v1.node_service_pb2")
    assert module.DESCRIPTOR.package == "accord.v1"
    assert "NodeService" in module.DESCRIPTOR.services_by_name


def test_proto_folder_is_not_an_importable_package() -> None:
    assert not (ROOT / "proto" / "__init__.py").exists()
    # `proto` belongs to proto-plus; ours can at most be a namespace portion, which
    # any installed regular package named `proto` takes precedence over.
    spec = importlib.util.find_spec("proto")
    assert spec is None or spec.origin is None or not spec.origin.startswith(str(ROOT))
