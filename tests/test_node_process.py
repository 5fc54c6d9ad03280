"""``accord node serve`` as a real process: health, signals, exit codes, logs, reflection."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import coordinator
import node
import pki
from accord.v1 import node_service_pb2
from demo import AgencySite, DemoFederation, NodeProcess, demo_queries, provision
from tests.conftest import PROVISIONED_AT, TEST_ROWS

pytestmark = pytest.mark.slow

SERVICE = "accord.v1.NodeService"
HEALTH = "grpc.health.v1.Health"
#: Generated incident ids look like A-0000001 (agency letter, seven digits).
INCIDENT_ID = re.compile(r"(?<![A-Za-z0-9])[A-Z]-\d{7}(?!\d)")
START_TIMEOUT = 30.0


# -- helpers -----------------------------------------------------------------------


def _site(fed: DemoFederation, agency: str) -> AgencySite:
    return next(site for site in fed.sites if site.agency == agency)


def _start(fed: DemoFederation, agency: str, folder: Path, *extra: str) -> NodeProcess:
    """Start ``agency``'s node in its own process; ready file and log in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = NodeProcess(agency, _site(fed, agency).node_config, folder, extra)
    proc.start()
    try:
        proc.wait_ready(START_TIMEOUT)
    except BaseException:
        proc.stop()
        raise
    return proc


def _tls_channel(fed: DemoFederation, address: str) -> grpc.Channel:
    material = fed.coordinator_tls.read()
    return grpc.secure_channel(address, pki.channel_credentials(material))


def _health(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    status: int = response.status
    return status


def _list_services(channel: grpc.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = stub.ServerReflectionInfo(iter([request]), timeout=5)
    return {s.name for r in responses for s in r.list_services_response.service}


def _json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a --log-format json log, each of which must be a JSON object."""
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{path.name}:{number} is not JSON: {line!r}")
        assert isinstance(record, dict), f"{path.name}:{number}: {line!r}"
        records.append(record)
    return records


#: A line gRPC core (C++) writes to stderr itself, e.g. "I1130 23:49:50.879976  1234
#: ssl_transport_security.cc:2563] Handshake failed ...".
GRPC_CORE_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] ")


def _records_and_core_lines(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """JSON records and gRPC core lines of a log; any other line fails the test."""
    records, core = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if GRPC_CORE_LINE.match(line):
            core.append(line)
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"{path.name}:{number} is neither JSON nor gRPC: {line!r}")
    return records, core


def _port_is_free(port: int) -> bool:
    """Whether a new server could listen on ``port`` (as servers do: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def _serve_command(config: Path, ready_file: Path, *extra: str) -> list[str]:
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


def _env() -> dict[str, str]:
    """The child's environment: no ACCORD_ settings, rich at its default 80 columns."""
    # Importing flwr in this process sets GRPC_VERBOSITY; the child chooses its own.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ACCORD_") and k != "GRPC_VERBOSITY"
    }
    env.update(FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1", COLUMNS="80")
    return env


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    """A small federation provisioned in the past (so expired leaves can be issued)."""
    root = tmp_path_factory.mktemp("procfed")
    return provision(root, rows=TEST_ROWS, now=PROVISIONED_AT)


@dataclass
class Fleet:
    """Three node processes: agency-a with --enable-reflection, the others without."""

    fed: DemoFederation
    nodes: dict[str, NodeProcess]

    def address(self, agency: str) -> str:
        return self.nodes[agency].address


@pytest.fixture(scope="module")
def fleet(fed: DemoFederation) -> Iterator[Fleet]:
    extra = {"agency-a": ("--enable-reflection",)}
    nodes = {
        site.agency: NodeProcess(
            site.agency, site.node_config, site.folder, extra.get(site.agency, ())
        )
        for site in fed.sites
    }
    try:
        for proc in nodes.values():  # start all, then wait: they boot in parallel
            proc.start()
        for proc in nodes.values():
            proc.wait_ready(START_TIMEOUT)
        yield Fleet(fed, nodes)
    finally:
        for proc in nodes.values():
            proc.terminate()
        for proc in nodes.values():
            proc.stop()


# -- (a) health --------------------------------------------------------------------


@pytest.mark.parametrize("agency", ["agency-a", "agency-b", "agency-c"])
def test_health_check_serving_over_mtls(fleet: Fleet, agency: str) -> None:
    with _tls_channel(fleet.fed, fleet.address(agency)) as channel:
        assert _health(channel, "") == health_pb2.HealthCheckResponse.SERVING
        assert _health(channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as caught:
            _health(channel, "no.such.Service")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


# -- (e, second half) a TLS node refuses plaintext -----------------------------------


def test_plaintext_client_cannot_reach_tls_node(fleet: Fleet) -> None:
    with grpc.insecure_channel(fleet.address("agency-b")) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            _health(channel, "")
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_failed_handshake_keeps_log_json(fleet: Fleet) -> None:
    with grpc.insecure_channel(fleet.address("agency-c")) as channel:
        with pytest.raises(grpc.RpcError):
            _health(channel, "")
    time.sleep(0.5)  # let the node write whatever it writes
    _json_lines(fleet.nodes["agency-c"].log_file)


# -- (g) reflection ----------------------------------------------------------------


def test_reflection_lists_services_when_enabled(fleet: Fleet) -> None:
    with _tls_channel(fleet.fed, fleet.address("agency-a")) as channel:
        services = _list_services(channel)
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE)
        [response] = stub.ServerReflectionInfo(iter([request]), timeout=5)
    assert {SERVICE, HEALTH} <= services
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    served = {f.name: f for f in files}
    expected = node_service_pb2.DESCRIPTOR.name
    assert expected in served
    assert [s.name for s in served[expected].service] == ["NodeService"]


def test_reflection_unimplemented_without_flag(fleet: Fleet) -> None:
    with _tls_channel(fleet.fed, fleet.address("agency-b")) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            _list_services(channel)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


# -- (f) no data value in the logs --------------------------------------------------


def _number_tokens(value: float) -> set[str]:
    """Textual forms a returned number could take in a log line."""
    if math.isnan(value) or math.isinf(value):
        return set()
    if float(value).is_integer():
        whole = int(value)
        # Small integers also occur in ordinary log fields; big ones would be data.
        return {str(whole), f"{whole}.0"} if abs(whole) >= 100 else set()
    tokens = {repr(float(value))}
    if abs(value) >= 100:
        tokens.add(f"{value:.2f}")
    return tokens


def _returned_numbers(result: coordinator.FederatedResult) -> set[float]:
    """Every combined and per-agency number a federated query returned."""
    numbers: set[float] = set()
    for group in result.groups:
        for v in group.values:
            for number in (v.value, v.low, v.high):
                if number is not None:
                    numbers.add(float(number))
    for outcome in result.outcomes:
        if outcome.ok and outcome.response is not None:
            for stat in outcome.response.statistics:
                numbers.update(float(x) for x in stat.values)
    return numbers


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    else:
        yield str(value)


def test_logs_hold_no_data_values(fleet: Fleet, tmp_path: Path) -> None:
    fed = fleet.fed
    addresses = {agency: proc.address for agency, proc in fleet.nodes.items()}
    path = fed.write_federation_file(addresses, path=tmp_path / "federation.toml")
    specs = [q.spec for q in demo_queries()]
    specs.append(
        coordinator.QuerySpec(
            dataset="incidents",
            aggregations=(coordinator.Aggregation("count"),),
            filters=(coordinator.Filter("incident_id", "=", ("B-0000042",)),),
            purpose="statistics",
            legal_basis="LED-2016/680 Art.8(1)",
        )
    )
    with coordinator.Coordinator.from_config(coordinator.load_federation(path)) as hub:
        results = [hub.query(spec) for spec in specs]
    assert all(result.contributors for result in results)

    numbers = set().union(*(_returned_numbers(r) for r in results))
    tokens = set().union(*(_number_tokens(n) for n in numbers))
    assert tokens, "the queries returned no number worth searching for"
    pattern = re.compile(
        r"(?<![A-Za-z0-9.])(?:"
        + "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))
        + r")(?![A-Za-z0-9.])"
    )
    for agency, proc in fleet.nodes.items():
        text = proc.log_file.read_text()
        assert not INCIDENT_ID.search(text), f"{agency}: an incident id was logged"
        # gRPC core's own lines (see test_failed_handshake_keeps_log_json) carry no
        # data from Python; only the incident-id search above applies to them.
        records, _ = _records_and_core_lines(proc.log_file)
        logged_ids = {r.get("query_id") for r in records}
        for spec in specs:
            assert spec.query_id in logged_ids, f"{agency} did not log {spec.query_id}"
        for record in records:
            for key, value in record.items():
                if key in ("time", "address"):  # clock and port: not data
                    continue
                for text_value in _strings(value):
                    found = pattern.search(text_value)
                    assert found is None, (
                        f"{agency} logged a returned value {found.group()!r} "
                        f"in field {key!r}: {record}"
                    )


# -- (b), (c) graceful shutdown on a signal -------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_stops_node_gracefully(
    fed: DemoFederation, tmp_path: Path, signum: signal.Signals
) -> None:
    grace = node.load_node_config(_site(fed, "agency-c").node_config).node.grace_seconds
    proc = _start(fed, "agency-c", tmp_path / "run")
    assert proc.process is not None
    port = json.loads(proc.ready_file.read_text())["port"]
    try:
        with _tls_channel(fed, proc.address) as channel:  # a connection to close
            assert _health(channel, "") == health_pb2.HealthCheckResponse.SERVING
            began = time.monotonic()
            proc.process.send_signal(signum)
            code = proc.process.wait(timeout=grace + 10)
            elapsed = time.monotonic() - began
    finally:
        proc.stop()

    assert code == 0
    assert elapsed < grace, f"exit took {elapsed:.2f} s, grace is {grace} s"
    records = _json_lines(proc.log_file)
    messages = [r["message"] for r in records]
    assert messages[0] == "node serving"
    assert "shutting down" in messages
    assert messages[-1] == "node stopped"
    assert messages.index("shutting down") < messages.index("node stopped")
    stopping = records[messages.index("shutting down")]
    assert stopping["signal"] == signum.name
    assert all(r["logger"].startswith("accord") for r in records)
    assert _port_is_free(port)


#: tgkill(2) numbers: signal one thread of another process.
_SYS_TGKILL = {"x86_64": 234, "aarch64": 131}


def _tgkill(pid: int, tid: int, signum: int) -> None:
    import ctypes
    import platform

    number = _SYS_TGKILL.get(platform.machine())
    if number is None:
        pytest.skip(f"no tgkill number for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(number, pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


def test_signal_received_by_another_thread_stops_node(
    fed: DemoFederation, tmp_path: Path
) -> None:
    """A process-directed signal may land on any thread; the node must still stop.

    Linux delivers kill(2) signals to any thread that does not block them, e.g. one of
    gRPC's; Python then runs the handler only when the main thread next runs bytecode,
    so the main thread must not block indefinitely (it did in ``accord demo`` Ctrl-C).
    """
    grace = node.load_node_config(_site(fed, "agency-c").node_config).node.grace_seconds
    proc = _start(fed, "agency-c", tmp_path / "run")
    assert proc.process is not None
    pid = proc.process.pid
    try:
        threads = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
        other = next(tid for tid in sorted(threads) if tid != pid)
        _tgkill(pid, other, signal.SIGTERM)
        try:
            code = proc.process.wait(timeout=grace + 1)
        except subprocess.TimeoutExpired:
            proc.process.kill()  # it would ignore the SIGTERM of stop() as well
            pytest.fail(
                "the node ignored a SIGTERM received by a non-main thread: its main "
                "thread waits without a timeout, so the Python handler never runs"
            )
    finally:
        proc.stop()
    assert code == 0
    assert "node stopped" in [r["message"] for r in _json_lines(proc.log_file)]


def test_a_hangup_storm_never_keeps_the_node_from_stopping(
    fed: DemoFederation, tmp_path: Path
) -> None:
    """Thousands of SIGHUPs, then SIGTERM: the node reloads, then stops in its grace.

    A handler that took a lock (``Event.set``) could deadlock the main thread when
    a signal arrived while that thread held the same lock; the node then ignored
    SIGTERM for good (two runs in three hung before the handlers took no locks).
    """
    grace = node.load_node_config(_site(fed, "agency-c").node_config).node.grace_seconds
    for attempt in range(2):
        proc = _start(fed, "agency-c", tmp_path / f"run{attempt}")
        assert proc.process is not None
        pid = proc.process.pid
        try:
            until = time.monotonic() + 1.5
            while time.monotonic() < until:
                os.kill(pid, signal.SIGHUP)
                time.sleep(0.0002)
            os.kill(pid, signal.SIGTERM)
            try:
                code = proc.process.wait(timeout=grace + 5)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                pytest.fail(
                    "the node hung after a storm of SIGHUPs and ignored SIGTERM"
                )
        finally:
            proc.stop()
        assert code == 0
        messages = [r["message"] for r in _json_lines(proc.log_file)]
        assert "policy reloaded" in messages
        assert messages[-1] == "node stopped"


# -- (d) start-up errors: documented exit codes, one line, no traceback -----------------


@dataclass(frozen=True)
class StartupCase:
    """A broken set-up, the exit code it must give and what the message must say."""

    config: Path
    code: int
    needles: tuple[str, ...]  # all on the error line
    precise: tuple[str, ...] = ()  # a precise message also says these
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class StartupRun:
    case: StartupCase
    returncode: int
    stdout: str
    stderr: str


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _variant(site: AgencySite, name: str, old: str, new: str) -> Path:
    """A copy of the site's node.toml (same folder, so paths resolve) with one edit."""
    text = site.node_config.read_text()
    assert old in text, old
    path = site.folder / name
    path.write_text(text.replace(old, new, 1))
    return path


def _startup_cases(fed: DemoFederation, busy_port: int) -> dict[str, StartupCase]:
    site = _site(fed, "agency-a")
    cases: dict[str, StartupCase] = {}

    bad_value = _variant(
        site, "bad-value.toml", "grace_seconds = 2.0", 'grace_seconds = "soon"'
    )
    line = _line_of(bad_value.read_text(), "grace_seconds")
    cases["config-value"] = StartupCase(
        bad_value, 100, (f"{bad_value}:{line}:", "node.grace_seconds")
    )

    bad_syntax = _variant(site, "bad-syntax.toml", 'name = "node"', 'name = "node')
    line = _line_of(bad_syntax.read_text(), 'name = "node')
    cases["config-syntax"] = StartupCase(
        bad_syntax, 100, (f"{bad_syntax}:{line}", "invalid TOML")
    )

    no_cert = _variant(site, "no-cert.toml", "pki/node.crt", "pki/missing.crt")
    cases["cert-missing"] = StartupCase(no_cert, 101, ("missing.crt",))

    old_kit = site.folder / "expired-pki"
    pki.issue(
        fed.ca_dir,
        pki.Identity(fed.name, site.agency, "node", "node"),
        old_kit,
        hosts=["127.0.0.1"],
        now=datetime.now(UTC) - timedelta(days=10),
        lifetime_days=1,
    )
    expired = _variant(site, "expired.toml", 'cert = "pki/', 'cert = "expired-pki/')
    expired.write_text(
        expired.read_text().replace('key = "pki/', 'key = "expired-pki/')
    )
    cases["cert-expired"] = StartupCase(expired, 101, ("expired",))

    no_column = site.folder / "no-column.toml"
    no_column.write_text(
        site.node_config.read_text() + '\n[datasets.columns.weapon]\ntype = "boolean"\n'
    )
    cases["csv-missing-column"] = StartupCase(
        no_column, 102, ("incidents", "incidents.csv"), precise=("weapon",)
    )

    cases["port-in-use"] = StartupCase(
        site.node_config,
        103,
        (f"127.0.0.1:{busy_port}",),
        extra=("--listen", f"127.0.0.1:{busy_port}"),
    )

    bad_policy = site.folder / "bad-policy.toml"
    policy_text = site.policy.read_text()
    bad_policy.write_text(
        policy_text.replace('uid = "a-statistics"', 'uid = "a stats"')
    )
    line = _line_of(bad_policy.read_text(), 'uid = "a stats"')
    policy_config = _variant(
        site, "bad-policy-node.toml", 'file = "policy.toml"', 'file = "bad-policy.toml"'
    )
    cases["policy-invalid"] = StartupCase(
        policy_config, 104, (f"{bad_policy}:{line}:", "permissions[0].uid")
    )
    return cases


@pytest.fixture(scope="module")
def startup_runs(
    fed: DemoFederation, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, StartupRun]]:
    """Run every broken set-up once, all at the same time."""
    folder = tmp_path_factory.mktemp("startup")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cases = _startup_cases(fed, busy.getsockname()[1])
        procs = {
            name: subprocess.Popen(
                _serve_command(case.config, folder / f"{name}.ready", *case.extra),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=_env(),
                text=True,
            )
            for name, case in cases.items()
        }
        runs = {}
        try:
            for name, proc in procs.items():
                out, err = proc.communicate(timeout=START_TIMEOUT)
                runs[name] = StartupRun(cases[name], proc.returncode, out, err)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    yield runs
    for name in cases:
        assert not (folder / f"{name}.ready").exists(), f"{name} reported ready"


CASES = [
    "config-value",
    "config-syntax",
    "cert-missing",
    "cert-expired",
    "csv-missing-column",
    "port-in-use",
    "policy-invalid",
]


def _accord_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("name", CASES)
def test_startup_error_exit_code_and_message(
    startup_runs: dict[str, StartupRun], name: str
) -> None:
    run = startup_runs[name]
    assert run.returncode == run.case.code, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    lines = _accord_lines(run.stderr)
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    assert any(all(n in line for n in run.case.needles) for line in lines), (
        f"no line names {run.case.needles}:\n{run.stderr}"
    )
    help_text = node.EXIT_CODE_HELP[run.case.code]
    assert f"exit {run.case.code}: {help_text}" in " ".join(run.stderr.split())


@pytest.mark.parametrize(
    "name",
    [
        "config-value",
        "config-syntax",
        "cert-missing",
        "cert-expired",
        "csv-missing-column",
        "port-in-use",
        "policy-invalid",
    ],
)
def test_startup_error_is_one_precise_line(
    startup_runs: dict[str, StartupRun], name: str
) -> None:
    """stderr is exactly the error line and the exit code's help sentence."""
    run = startup_runs[name]
    code = run.case.code
    lines = _accord_lines(run.stderr)
    assert len(lines) == 2, run.stderr
    error, help_line = lines
    assert error.startswith("error: ")
    for needle in (*run.case.needles, *run.case.precise):
        assert needle in error, f"{needle!r} not in {error!r}"
    assert help_line == f"exit {code}: {node.EXIT_CODE_HELP[code]}"


# -- (e) --insecure ----------------------------------------------------------------------


def test_insecure_warns_and_serves_plaintext(
    fed: DemoFederation, tmp_path: Path
) -> None:
    proc = _start(fed, "agency-b", tmp_path / "run", "--insecure")
    try:
        with grpc.insecure_channel(proc.address) as channel:
            assert _health(channel, "") == health_pb2.HealthCheckResponse.SERVING
            assert _health(channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING
        with _tls_channel(fed, proc.address) as channel:
            with pytest.raises(grpc.RpcError) as caught:
                _health(channel, "")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        code = proc.stop()
    assert code == 0
    log = proc.log_file.read_text()
    warnings = [line for line in log.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, log
    assert "--insecure" in warnings[0]
    assert "plaintext" in " ".join(log.split())
