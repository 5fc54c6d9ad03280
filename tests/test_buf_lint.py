"""``buf lint`` (STANDARD) passes on proto/, with the buf.yaml at the repository root.

buf comes from npm (``npm install --prefix .ci/node @bufbuild/buf``, see .ci/run); the
test skips when it is missing, and fails instead under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI

REPO = Path(__file__).resolve().parents[1]
LOCAL_BUF = REPO / ".ci" / "node" / "node_modules" / ".bin" / "buf"

BUF_YAML = """\
version: v2
modules:
  - path: proto
lint:
  use:
    - STANDARD
"""


@pytest.fixture(scope="module")
def buf() -> str:
    if LOCAL_BUF.is_file() and os.access(LOCAL_BUF, os.X_OK):
        return str(LOCAL_BUF)
    found = shutil.which("buf")
    if found:
        return found
    message = f"buf is not installed at {LOCAL_BUF} nor on PATH (see .ci/run)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _lint(buf: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [buf, "lint", "--error-format", "text"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_buf_yaml_lints_proto_with_standard_rules() -> None:
    text = (REPO / "buf.yaml").read_text(encoding="utf-8")
    assert "version: v2" in text
    assert "- path: proto" in text
    assert "- STANDARD" in text


def test_protos_pass_buf_lint(buf: str) -> None:
    result = _lint(buf, REPO)
    assert result.returncode == 0, f"buf lint:\n{result.stdout}{result.stderr}"
    assert result.stdout.strip() == ""


def test_buf_lint_reports_violations(buf: str, tmp_path: Path) -> None:
    """The same configuration catches a violation (so a pass above means something)."""
    (tmp_path / "buf.yaml").write_text(BUF_YAML)
    folder = tmp_path / "proto" / "accord" / "v1"
    folder.mkdir(parents=True)
    (folder / "bad.proto").write_text(
        'syntax = "proto3";\n'
        "package accord.v1;\n"
        "message bad_message {\n"
        "  string Field_Name = 1;\n"
        "}\n"
    )
    result = _lint(buf, tmp_path)
    assert result.returncode == 100, result.stdout + result.stderr
    assert "bad_message" in result.stdout
    assert "Field_Name" in result.stdout
