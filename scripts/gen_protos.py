"""Generate the Python code of ``proto/accord/v1/*.proto`` next to the sources.

Usage: ``python scripts/gen_protos.py [OUT_DIR]`` (default: ``proto/``). The generator is
pinned (``grpcio-tools==1.81.1``, ``mypy-protobuf==5.1.0``); ``tests/test_protos.py``
regenerates into a temporary folder and fails on any difference with what is checked in.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def proto_sources() -> list[Path]:
    """Return the ``.proto`` files of the contract, sorted."""
    return sorted((PROTO_ROOT / "accord").rglob("*.proto"))


def generate(out_dir: Path) -> None:
    """Run protoc with the Python, gRPC and mypy plugins into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    include = resources.files("grpc_tools") / "_proto"
    bindir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={shutil.which('protoc-gen-mypy', path=str(bindir))}",
        f"--plugin=protoc-gen-mypy_grpc={shutil.which('protoc-gen-mypy_grpc', path=str(bindir))}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *(str(p.relative_to(PROTO_ROOT)) for p in proto_sources()),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def main() -> None:
    """Entry point."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_ROOT
    generate(out)


if __name__ == "__main__":
    main()
