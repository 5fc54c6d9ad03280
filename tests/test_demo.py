"""``accord demo`` end to end, as a user runs it: JSON output, Ctrl-C, nothing left over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

AGENCIES = ("agency-a", "agency-b", "agency-c")
ALL_THREE = [f"{agency}/node" for agency in AGENCIES]


def _accord() -> list[str]:
    """The ``accord`` command of this interpreter (the console script, else -m)."""
    script = Path(sys.executable).parent / "accord"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "accord_cli"]  # pragma: no cover


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env.update(FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1", **extra)
    return env


def _node_processes(marker: str) -> list[tuple[int, str]]:
    """Live ``accord_cli node serve`` processes whose command line mentions ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile
            continue
        text = raw.decode(errors="replace")
        argv = text.split("\0")
        if state == "Z":  # exited, waiting to be reaped: not running
            continue
        if "accord_cli" in argv and "serve" in argv and marker in text:
            found.append((int(entry.name), " ".join(argv)))
    return found


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _node(query: dict[str, Any], agency: str) -> dict[str, Any]:
    [entry] = [n for n in query["nodes"] if n["agency"] == agency]
    return entry


def test_demo_json(tmp_path: Path) -> None:
    """Three queries; policies split the third; every node stopped; temp dir removed."""
    tmpdir = tmp_path / "tmp"  # the demo's temporary federation lands here
    tmpdir.mkdir()
    began = time.monotonic()
    result = subprocess.run(
        [*_accord(), "demo", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=_env(TMPDIR=str(tmpdir)),
    )
    elapsed = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert elapsed < 30, f"the demo took {elapsed:.1f} s"
    assert "Traceback" not in result.stderr

    output = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    queries = output["queries"]
    assert len(queries) == 4
    assert queries[3]["secure_aggregation"] is True
    assert queries[3]["contributors"] == ALL_THREE
    assert [a["verified"] for a in output["audit"]] == [True, True, True]
    assert [r["round"] for r in output["training"]] == [1, 2, 3]
    assert all(len(r["participants"]) == 3 for r in output["training"])
    # Evaluation rounds are securely aggregated and allowed: metrics every round.
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in output["training"])
    assert all(r["loss"] > 0 for r in output["training"])
    assert {row["agency"] for row in output["budgets"]} == {
        "agency-a",
        "agency-b",
        "agency-c",
    }
    first, second, third = queries[:3]
    for query in (first, second):
        assert query["contributors"] == ALL_THREE
        assert all(n["status"] == "ok" for n in query["nodes"])
        assert query["groups"]
        assert set(query["policy_digests"]) == set(ALL_THREE)

    assert third["contributors"] == ["agency-a/node"]
    assert _node(third, "agency-a")["matched_rules"] == ["a-statistics"]
    refusals = {
        "agency-b": ("b-statistics-only", "purpose"),
        "agency-c": ("c-counts-and-means", "action"),
    }
    for agency, (rule, unmet) in refusals.items():
        refusal = _node(third, agency)
        assert refusal["status"] == "refused"
        assert refusal["code"] == "PERMISSION_DENIED"
        assert refusal["reason"] == "POLICY_DENIED"
        # The declared rule and what it does not permit: nothing derived from data.
        assert rule in refusal["message"], refusal
        assert unmet in refusal["message"], refusal
        metadata = refusal["metadata"]
        assert metadata["policy"] == f"urn:accord:{agency}:policy:1"
        assert metadata["rule"]
        # The revision is the digest the same node stamped on its earlier answers.
        assert metadata["revision"] == first["policy_digests"][f"{agency}/node"]

    assert not _node_processes(str(tmpdir))
    assert not list(tmpdir.glob("accord-demo-*")), "the temporary federation is left"
    assert "nothing left running" in result.stderr


def test_demo_ctrl_c_stops_every_node(tmp_path: Path) -> None:
    """SIGINT to the demo's process group, as a terminal sends on Ctrl-C."""
    workdir = tmp_path / "demo"
    ready = [workdir / "federation" / agency / "ready.json" for agency in AGENCIES]
    proc = subprocess.Popen(
        [*_accord(), "demo", "--workdir", str(workdir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 45
        while not all(path.exists() for path in ready):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the nodes never became ready"
            time.sleep(0.01)
        nodes = [json.loads(path.read_text()) for path in ready]
        running = {pid for pid, _ in _node_processes(str(workdir))}
        assert running == {entry["pid"] for entry in nodes}

        os.killpg(proc.pid, signal.SIGINT)
        interrupted = time.monotonic()
        _, stderr = proc.communicate(timeout=30)
        elapsed = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()

    assert elapsed < 15, f"the demo took {elapsed:.1f} s to stop"
    assert proc.returncode == 130, stderr  # interrupted, not finished
    assert "Traceback" not in stderr
    assert not _node_processes(str(workdir))
    for entry in nodes:
        assert not Path(f"/proc/{entry['pid']}").exists() or _is_zombie(entry["pid"])
        assert _port_is_free(entry["port"]), f"port {entry['port']} still bound"
    # A graceful stop on SIGINT/SIGTERM is asserted in tests/test_node_process.py.
    # Here: whatever each node did, nothing is left behind and no port stays bound.


def test_a_failing_demo_says_why_and_stops_every_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training job the nodes' policies refuse: a message, exit 1, no process left."""
    from rich.console import Console

    import demo._training
    from demo import run_demo

    asked = demo._training.demo_spec()
    too_little_noise = asked.model_copy(
        update={"privacy": asked.privacy.model_copy(update={"noise_multiplier": 0.5})}
    )
    monkeypatch.setattr(demo._training, "demo_spec", lambda: too_little_noise)
    out, err = Console(record=True, width=200), Console(record=True, width=200)
    code = run_demo(out=out, err=err, workdir=tmp_path / "demo")
    said = err.export_text()
    assert code == 1
    assert "the demo federation failed" in said
    assert "does not permit rho 2" in said and "train" in said
    assert "Traceback" not in said
    assert not _node_processes(str(tmp_path))
