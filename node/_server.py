"""Build, start and stop a node server: mTLS, health, reflection, graceful shutdown."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType

import grpc
import sqlalchemy as sa
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import pki
import policies
import tomlconf
from accord.v1 import audit_service_pb2, node_service_pb2, node_service_pb2_grpc
from node._audit import AuditServicer, add_audit_service
from node._config import NodeConfig
from node._errors import NodeStartupError
from node._exit import ExitCode
from node._gate import INSECURE_REQUESTER, Gate, PolicyHolder
from node._secure_sessions import (
    SECURE_AGGREGATION_SERVICE_NAME,
    SecureAggregationServicer,
    SecureSessions,
    add_secure_aggregation_service,
)
from node._servicer import Clock, NodeServicer
from node._sources import DataSource, SourceError, WorkingCopies, open_source
from node.training import (
    TRAINING_SERVICE_NAME,
    TrainingServicer,
    add_training_service,
)
from policies import auditlog, ledger

_log = logging.getLogger("accord.node")

SERVICE_NAME = node_service_pb2.DESCRIPTOR.services_by_name["NodeService"].full_name
AUDIT_SERVICE_NAME = audit_service_pb2.DESCRIPTOR.services_by_name[
    "AuditService"
].full_name
#: Every Accord service a node serves (health reports each; reflection lists them).
SERVICE_NAMES = (
    SERVICE_NAME,
    AUDIT_SERVICE_NAME,
    SECURE_AGGREGATION_SERVICE_NAME,
    TRAINING_SERVICE_NAME,
)


def node_version() -> str:
    """Return the installed Accord version."""
    try:
        return metadata.version("accord")
    except metadata.PackageNotFoundError:  # pragma: no cover - source checkout
        return "0+unknown"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class NodeServer:
    """A built node: call ``start()``, then ``stop()``."""

    server: grpc.Server
    port: int
    address: str
    health: health.HealthServicer
    servicer: NodeServicer
    closers: list[Callable[[], None]]
    training: TrainingServicer
    grace: float
    policy_file: Path
    policy: PolicyHolder
    agency: str
    gate: Gate
    _stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Start serving and report SERVING."""
        self.server.start()
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def reload_policy(self) -> bool:
        """Load the policy file again and put it in force atomically, if valid.

        An invalid file is refused and the policy in force stays; both outcomes are
        logged. Returns whether the new policy is in force.
        """
        old = self.policy.current
        try:
            loaded = load_checked_policy(self.policy_file, self.agency)
        except NodeStartupError as exc:
            _log.error(
                "policy reload refused; the previous policy stays in force",
                extra={"fields": {"policy_digest": old.digest, "problem": str(exc)}},
            )
            self.gate.policy_change(
                old.digest, refused=True, reason="invalid policy file; previous kept"
            )
            return False
        self.policy.replace(loaded)
        _log.info(
            "policy reloaded",
            extra={"fields": {"old_digest": old.digest, "new_digest": loaded.digest}},
        )
        self.gate.policy_change(
            loaded.digest, refused=False, reason=f"replaces policy {old.digest}"
        )
        return True

    def stop(self, grace: float | None = None) -> None:
        """Go NOT_SERVING, let in-flight calls finish within ``grace``, release sources."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.servicer.drain()
        self.training.drain()
        self.server.stop(self.grace if grace is None else grace).wait()
        for close in self.closers:
            close()


@dataclass(frozen=True)
class NodeState:
    """The node's own durable state: budgets spent and the decision log."""

    budgets: ledger.BudgetLedger
    log: auditlog.DecisionLog


def _open_state(config: NodeConfig, identity: pki.Identity, clock: Clock) -> NodeState:
    url = config.node.state_url
    try:
        # Every reservation is followed by its decision record, a durable commit
        # to the same database, before any answer leaves.
        budgets = ledger.SqlBudgetLedger(url, durable_commits=False)
    except ledger.LedgerError as exc:
        raise NodeStartupError(
            f"state database {url}: {exc}", ExitCode.STATE_INVALID
        ) from None
    try:
        key = auditlog.load_or_create_log_key(config.audit.key)
        log = auditlog.SqlDecisionLog(
            url,
            origin=auditlog.log_origin(identity.agency, identity.federation),
            signing_key=key,
            checkpoint_every=config.audit.checkpoint_every,
            checkpoint_interval=config.audit.checkpoint_interval_seconds,
            clock=clock,
        )
    except (auditlog.AuditLogError, OSError, ValueError) as exc:
        budgets.close()
        raise NodeStartupError(f"decision log: {exc}", ExitCode.STATE_INVALID) from None
    return NodeState(budgets, log)


def _identity(
    config: NodeConfig, insecure: bool, clock: Clock
) -> tuple[pki.Identity, pki.TlsMaterial | None]:
    if config.tls is None:
        if not insecure:
            raise NodeStartupError(
                "node.toml has no [tls] section; add one, or pass --insecure for a "
                "plaintext node on a trusted network",
                ExitCode.TLS_INVALID,
            )
        return pki.Identity(
            "insecure", config.node.agency, "node", config.node.name
        ), None
    files = pki.TlsFiles(ca=config.tls.ca, cert=config.tls.cert, key=config.tls.key)
    try:
        material = files.read()
        cert = pki.load_certificate(config.tls.cert)
        ca = pki.load_certificate(config.tls.ca)
        pki.check_certificate(cert, ca, now=clock(), purpose="server")
        identity = pki.identity_of(cert)
    except pki.PkiError as exc:
        raise NodeStartupError(f"TLS: {exc}", ExitCode.TLS_INVALID) from None
    if identity.role != "node":
        raise NodeStartupError(
            f"TLS: {config.tls.cert} is a {identity.role} certificate; a node needs role node",
            ExitCode.TLS_INVALID,
        )
    if identity.agency != config.node.agency:
        raise NodeStartupError(
            f"TLS: {config.tls.cert} belongs to agency {identity.agency!r} but node.toml "
            f"declares agency {config.node.agency!r}",
            ExitCode.TLS_INVALID,
        )
    return identity, (None if insecure else material)


def load_checked_policy(path: Path, agency: str) -> policies.LoadedPolicy:
    """Load the policy file and check it belongs to ``agency``.

    Raises
    ------
    NodeStartupError
        With ``ExitCode.POLICY_INVALID`` and every problem found.
    """
    try:
        loaded = policies.load_policy(path)
    except tomlconf.ConfigError as exc:
        raise NodeStartupError(
            f"policy invalid: {exc}", ExitCode.POLICY_INVALID
        ) from None
    if loaded.policy.policy.agency != agency:
        raise NodeStartupError(
            f"{path}: policy.agency is {loaded.policy.policy.agency!r}, but node.toml "
            f"declares agency {agency!r}",
            ExitCode.POLICY_INVALID,
        )
    return loaded


def _open_sources(
    config: NodeConfig, copies: WorkingCopies | None
) -> dict[str, DataSource]:
    """Open every declared dataset's source (all, or none: a failure closes them)."""
    sources: dict[str, DataSource] = {}
    try:
        for spec in config.datasets:
            sources[spec.id] = open_source(spec, copies)
    except SourceError as exc:
        for source in sources.values():
            source.close()
        raise NodeStartupError(str(exc), ExitCode.SOURCE_INVALID) from None
    return sources


@dataclass(frozen=True)
class CheckReport:
    """What ``accord node check`` found: the state is ``None`` before a first start."""

    datasets: int
    log_records: int | None
    log_signed: int | None


def check_node(config: NodeConfig, *, clock: Clock = _utcnow) -> CheckReport:
    """Check what the node would start from -- changing nothing, beside a running node.

    Policy, certificates and every data source (files read in place: no working
    copies), then the state: the decision log read-only, and its signing key against
    the log's verifier key.

    Raises
    ------
    NodeStartupError
        With the exit code the node would stop with.
    """
    load_checked_policy(config.policy.file, config.node.agency)
    identity, _ = _identity(config, False, clock)
    for source in _open_sources(config, None).values():
        source.close()
    url = config.node.state_url
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if not database or database == ":memory:" or not Path(database).is_file():
            return CheckReport(len(config.datasets), None, None)  # made at start
    try:
        reader = auditlog.open_log_reader(url)
    except auditlog.LogMissing:  # tables made at the first start
        return CheckReport(len(config.datasets), None, None)
    except auditlog.AuditLogError as exc:
        raise NodeStartupError(
            f"state database {url}: {exc}", ExitCode.STATE_INVALID
        ) from None
    try:
        origin = auditlog.log_origin(identity.agency, identity.federation)
        if not config.audit.key.is_file():
            raise NodeStartupError(
                f"decision log: its signing key {config.audit.key} is missing; the "
                "node would refuse the stored log",
                ExitCode.STATE_INVALID,
            )
        try:
            key = auditlog.load_or_create_log_key(config.audit.key)
        except auditlog.AuditLogError as exc:
            raise NodeStartupError(
                f"decision log: {exc}", ExitCode.STATE_INVALID
            ) from None
        if reader.origin != origin or reader.verifier_key != (
            auditlog.encode_verifier_key(origin, key.public_key())
        ):
            raise NodeStartupError(
                f"decision log: {config.audit.key} is not the key of the stored log "
                f"({reader.verifier_key})",
                ExitCode.STATE_INVALID,
            )
        latest = reader.latest_checkpoint()
        return CheckReport(
            len(config.datasets),
            reader.size(),
            latest.tree_size if latest is not None else 0,
        )
    except auditlog.AuditLogError as exc:
        raise NodeStartupError(
            f"state database {url}: {exc}", ExitCode.STATE_INVALID
        ) from None
    finally:
        reader.close()


def create_server(
    config: NodeConfig,
    *,
    insecure: bool = False,
    enable_reflection: bool = False,
    listen: str | None = None,
    clock: Clock = _utcnow,
) -> NodeServer:
    """Build a node server from ``config`` (not started).

    Raises
    ------
    NodeStartupError
        With the exit code for the problem (policy, TLS, source, bind).
    """
    loaded = load_checked_policy(config.policy.file, config.node.agency)
    identity, material = _identity(config, insecure, clock)
    sources = _open_sources(
        config,
        WorkingCopies(
            config.node.work_dir, config.node.file_memory_mb, config.node.file_threads
        ),
    )
    holder = PolicyHolder(loaded)
    state = _open_state(config, identity, clock)
    closers: list[Callable[[], None]] = [
        *(source.close for source in sources.values()),
        state.log.close,
        state.budgets.close,
    ]
    gate = Gate(
        policy=holder,
        budgets=state.budgets,
        log=state.log,
        clock=clock,
        operator=policies.Requester(identity.uri, identity.agency, identity.role),
    )
    sessions = SecureSessions()
    servicer = NodeServicer(
        identity=identity,
        version=node_version(),
        datasets={d.id: d for d in config.datasets},
        sources=sources,
        gate=gate,
        clock=clock,
        sessions=sessions,
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.node.max_workers),
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", 16 << 20),
        ],
    )
    node_service_pb2_grpc.add_NodeServiceServicer_to_server(servicer, server)
    add_secure_aggregation_service(
        server,
        SecureAggregationServicer(
            sessions,
            anonymous_owner=INSECURE_REQUESTER.uri if material is None else None,
        ),
    )
    training = TrainingServicer(
        identity=identity,
        datasets={d.id: d for d in config.datasets},
        sources=sources,
        gate=gate,
        clock=clock,
        sessions=sessions,
    )
    add_training_service(server, training)
    add_audit_service(server, AuditServicer(state.log, identity, clock))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    if enable_reflection:
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health.SERVICE_NAME,
                reflection.SERVICE_NAME,
            ),
            server,
        )
    address = listen or config.node.listen
    try:
        if material is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, pki.server_credentials(material))
    except RuntimeError:
        port = 0
    if port == 0:
        for close in closers:
            close()
        raise NodeStartupError(f"cannot listen on {address}", ExitCode.BIND_FAILED)
    host = address.rsplit(":", 1)[0]
    return NodeServer(
        server=server,
        port=port,
        address=f"{host}:{port}",
        health=health_servicer,
        servicer=servicer,
        closers=closers,
        training=training,
        grace=config.node.grace_seconds,
        policy_file=config.policy.file,
        policy=holder,
        agency=config.node.agency,
        gate=gate,
    )


def write_ready_file(path: Path, node: NodeServer) -> None:
    """Atomically write ``{"address", "port", "pid"}`` once the node serves."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(
        json.dumps({"address": node.address, "port": node.port, "pid": os.getpid()})
    )
    tmp.replace(path)


def serve(node: NodeServer, *, ready_file: Path | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then shut down gracefully; return the exit code.

    SIGHUP reloads the policy file (an invalid one is refused; the old one stays).
    """
    # The handlers only append to lists: a handler runs in the main thread between
    # two of its bytecodes, possibly while that thread holds a lock -- inside
    # Event.wait, say -- so a handler that took one (Event.set does) could deadlock
    # the node: it would then never stop (seen, rarely, under load).
    received: list[int] = []
    hangups: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    def on_hangup(signum: int, _frame: FrameType | None) -> None:
        hangups.append(signum)

    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, on_signal)
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hangup)
    try:
        node.start()
        _log.info(
            "node serving",
            extra={
                "fields": {
                    "address": node.address,
                    "identity": node.servicer.identity_uri,
                }
            },
        )
        if ready_file is not None:
            write_ready_file(ready_file, node)
        # Wake regularly: a signal delivered to another thread only runs its Python
        # handler once the main thread executes bytecode again.
        while not received:
            time.sleep(0.25)
            if hangups:
                hangups.clear()  # several at once: one reload reads the newest file
                node.reload_policy()
        name = signal.Signals(received[0]).name if received else "stop"
        _log.info(
            "shutting down", extra={"fields": {"signal": name, "grace_s": node.grace}}
        )
        node.stop()
        _log.info("node stopped")
        return ExitCode.SUCCESS
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
