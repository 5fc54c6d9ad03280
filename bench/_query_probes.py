"""Timing probes for bench_queries: wrappers installed in the benchmark process only.

Nothing here changes product code. The coordinator's calls and the node's phases
are wrapped with ``unittest.mock.patch`` for the duration of a measurement, and CPU
time is read from ``/proc`` (node processes) and ``getrusage`` (this process).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import coordinator
import node._gate as node_gate
import node._servicer as node_servicer
import node._sources as node_sources
import node._statistics as node_statistics
from coordinator._secure_sum import secure_sum
from demo import NodeProcess

T = TypeVar("T")

_TICK = os.sysconf("SC_CLK_TCK")


class Phases:
    """Wall and CPU durations per named phase, appended from any thread."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.cpu: dict[str, list[float]] = defaultdict(list)

    def add(self, name: str, seconds: float, cpu: float | None = None) -> None:
        self.samples[name].append(seconds)
        if cpu is not None:
            self.cpu[name].append(cpu)

    def clear(self) -> None:
        self.samples = defaultdict(list)
        self.cpu = defaultdict(list)

    def copy(self) -> Phases:
        out = Phases()
        out.samples.update(self.samples)
        out.cpu.update(self.cpu)
        return out

    def median_ms(self, name: str) -> float | None:
        values = self.samples.get(name)
        return statistics.median(values) * 1e3 if values else None

    def cpu_ms(self, name: str) -> float | None:
        values = self.cpu.get(name)
        return statistics.median(values) * 1e3 if values else None

    def timed(self, name: str, func: Callable[..., T]) -> Callable[..., T]:
        """Wrap ``func``: each call's wall time and its thread's CPU time go to ``name``."""

        def wrapper(*args: Any, **kwargs: Any) -> T:
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - start, time.thread_time() - cpu)

        return wrapper


def process_cpu(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) used so far by ``pids`` and by this process."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return total + usage.ru_utime + usage.ru_stime


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """Return (VmHWM, VmRSS) of a process in MB."""
    values = {"VmHWM": 0.0, "VmRSS": 0.0}
    with contextlib.suppress(OSError):
        for entry in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = entry.partition(":")
            if key in values:
                values[key] = float(rest.split()[0]) / 1024
    return values["VmHWM"], values["VmRSS"]


def node_error(process: NodeProcess) -> str:
    """The last error a node logged: its exception's last line, or its message."""
    try:
        lines = process.log_file.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for raw in reversed(lines):
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") == "error":
            trace = str(entry.get("exception", "")).strip().splitlines()
            return trace[-1] if trace else str(entry.get("message", ""))
    return ""


@contextlib.contextmanager
def coordinator_probes(hub: coordinator.Coordinator) -> Iterator[Phases]:
    """Time the GetNodeInfo fan-out, each node's RunQuery and the secure-sum rounds."""
    phases = Phases()
    hub._schemas = phases.timed("info", hub._schemas)  # type: ignore[method-assign]
    for i, link in enumerate(hub.links):
        link.run_query = phases.timed(f"run:{i}", link.run_query)  # type: ignore[method-assign]
    with mock.patch(
        "coordinator._client.secure_sum", phases.timed("secure_sum", secure_sum)
    ):
        yield phases


#: The node's phases timed in-process, in request order, with their labels.
NODE_PHASES = (
    ("requester", "peer identity from the client certificate"),
    ("check", "request -> query, schema check"),
    ("plan", "privacy plan (OpenDP calibration)"),
    ("gate.admit", "gate: policy, budget reserve, decision record"),
    ("sql.build", "SQL statement built (SQLAlchemy; cached by query shape)"),
    ("sql.compile", "SQL compiled to text (cached per statement)"),
    ("sql.execute", "SQL executed by DuckDB on the working copy"),
    ("vectors", "rows spread over the public groups"),
    ("release", "noise (OpenDP) and suppression"),
    ("mask", "secure aggregation: encode, mask, share"),
    ("RunQuery", "RunQuery handler, in all"),
    ("gate.note", "GetNodeInfo: its decision record"),
)


@contextlib.contextmanager
def node_probes(phases: Phases) -> Iterator[None]:
    """Wrap the node's internals so each phase of a request is timed.

    Enter before ``node.create_server``: the server binds its handlers when built.
    """
    source = node_sources.DuckDbFileSource
    original_compile, original_run = source._compile, source.run
    compiled = threading.local()  # this thread's last compile: (wall, cpu)

    def compile_(self: node_sources.DuckDbFileSource, statement: Any) -> Any:
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return original_compile(self, statement)
        finally:
            compiled.last = (time.perf_counter() - start, time.thread_time() - cpu)
            phases.add("sql.compile", *compiled.last)

    def run(self: node_sources.DuckDbFileSource, statement: Any) -> Any:
        # run() checks the file is unchanged, compiles (cached), then executes:
        # what is not compiling is executing.
        compiled.last = (0.0, 0.0)
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return original_run(self, statement)
        finally:
            wall, used = time.perf_counter() - start, time.thread_time() - cpu
            phases.add(
                "sql.execute",
                max(0.0, wall - compiled.last[0]),
                max(0.0, used - compiled.last[1]),
            )

    servicer = node_servicer.NodeServicer
    with contextlib.ExitStack() as stack:
        for target, attribute, name in (
            (servicer, "_requester", "requester"),
            (servicer, "_plan", "plan"),
            (servicer, "_open_session", "mask"),
            (servicer, "RunQuery", "RunQuery"),
            (node_gate.Gate, "note", "gate.note"),
            (node_gate.Gate, "admit", "gate.admit"),
            (node_servicer, "check_query", "check"),
            (node_servicer, "exact_vectors", "vectors"),
            (node_servicer, "release_statistics", "release"),
            (node_statistics.StatementCache, "select", "sql.build"),
        ):
            original = getattr(target, attribute)
            stack.enter_context(
                mock.patch.object(target, attribute, phases.timed(name, original))
            )
        stack.enter_context(mock.patch.object(source, "_compile", compile_))
        stack.enter_context(mock.patch.object(source, "run", run))
        yield
