"""Start node processes and make sure none outlives us, Ctrl-C included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO


class NodeStartFailed(RuntimeError):
    """A node process exited or did not report ready in time."""


def node_command(config: Path, ready_file: Path, *extra: str) -> list[str]:
    """Return the command line that serves one node with this interpreter."""
    return [
        sys.executable,
        "-m",
        "accord_cli",
        "node",
        "serve",
        "--config",
        str(config),
        "--ready-file",
        str(ready_file),
        "--log-format",
        "json",
        *extra,
    ]


@dataclass
class NodeProcess:
    """One node running as a separate process."""

    label: str
    config: Path
    folder: Path
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    address: str = ""
    _terminated: bool = field(default=False, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def ready_file(self) -> Path:
        """Where the node reports its address."""
        return self.folder / "ready.json"

    @property
    def log_file(self) -> Path:
        """The node's stderr."""
        return self.folder / "node.log"

    def start(self) -> None:
        """Spawn the node."""
        self.ready_file.unlink(missing_ok=True)
        self._log = self.log_file.open("ab")
        env = dict(
            os.environ,
            FLWR_TELEMETRY_ENABLED="0",
            FLWR_DISABLE_UPDATE_CHECK="1",
            # The node asks Linux to stop it should this process die, even by SIGKILL.
            ACCORD_PARENT_PID=str(os.getpid()),
        )
        self.process = subprocess.Popen(
            node_command(self.config, self.ready_file, *self.extra_args),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=env,
        )

    def wait_ready(self, timeout: float) -> str:
        """Block until the node reports its address; return it."""
        assert self.process is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ready_file.exists():
                self.address = json.loads(self.ready_file.read_text())["address"]
                return self.address
            code = self.process.poll()
            if code is not None:
                raise NodeStartFailed(
                    f"node {self.label} exited with code {code}: {self.tail()}"
                )
            time.sleep(0.05)
        raise NodeStartFailed(
            f"node {self.label} not ready after {timeout:.0f} s: {self.tail()}"
        )

    def terminate(self) -> None:
        """Send SIGTERM once: a graceful shutdown begins."""
        proc = self.process
        if proc is not None and not self._terminated and proc.poll() is None:
            self._terminated = True
            proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait for a graceful exit, SIGKILL as a last resort."""
        proc = self.process
        if proc is None:
            return None
        self.terminate()
        if proc.poll() is None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode

    def tail(self, lines: int = 5) -> str:
        """Return the last lines of the node's log, for error messages."""
        try:
            text = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


class NodeFleet:
    """Several node processes started together and always stopped together."""

    def __init__(self, nodes: list[NodeProcess]) -> None:
        self.nodes = nodes

    def __enter__(self) -> NodeFleet:
        try:
            for node in self.nodes:
                node.start()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 30.0) -> dict[str, str]:
        """Wait for every node; return label -> address."""
        try:
            return {node.label: node.wait_ready(timeout) for node in self.nodes}
        except BaseException:
            self.stop()
            raise

    def stop(self) -> dict[str, int | None]:
        """Stop every node (concurrently: SIGTERM all, then wait)."""
        for node in self.nodes:
            node.terminate()
        return {node.label: node.stop() for node in self.nodes}

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
