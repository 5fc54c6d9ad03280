"""How the workbench reaches its node: the ``NodeLink`` seam and its two implementations.

:class:`GrpcNodeLink` talks to the node over mutual TLS with the officer's
certificate: the decision log through ``AuditService`` (reusing
:class:`policies.auditlog._remote.RemoteLog`), budgets and the node's facts through
``NodeService``. The node writes every one of these calls to its decision log as a
consultation by the officer. :class:`ReaderNodeLink` reads a log directly (tests,
benchmarks): it logs nothing and serves no budgets unless given a function to.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import grpc

import pki
from accord.v1 import audit_service_pb2 as audit_pb
from accord.v1 import audit_service_pb2_grpc as audit_grpc
from accord.v1 import node_service_pb2 as node_pb
from accord.v1 import node_service_pb2_grpc as node_grpc
from policies.auditlog import (
    CheckpointPage,
    DecisionLogReader,
    InclusionProof,
    LogUnavailable,
    OutOfRange,
    RecordFilter,
    RecordPage,
    StoredCheckpoint,
)
from policies.auditlog._remote import RemoteLog

from ._errors import NodeUnavailable, NotFound
from ._serde import budget_report_from_proto, node_facts_from_proto
from ._views import BudgetReport, NodeFacts

__all__ = ["GrpcNodeLink", "NodeLink", "ReaderNodeLink"]


class NodeLink(abc.ABC):
    """What the workbench asks its node. Every method is one call to the node.

    Errors: :class:`~officer.NodeUnavailable` when the node cannot answer,
    :class:`~officer.NotFound` for a record or tree size the log does not have.
    """

    @abc.abstractmethod
    def log_key(self) -> tuple[str, str]:
        """Return the log's origin and verifier key, as the node states them."""

    @abc.abstractmethod
    def records(
        self, where: RecordFilter | None, *, page_size: int, page_token: str = ""
    ) -> RecordPage:
        """Return one page of records (``ListRecords``)."""

    @abc.abstractmethod
    def checkpoints(self, *, page_size: int, page_token: str = "") -> CheckpointPage:
        """Return one page of signed checkpoints (``ListCheckpoints``)."""

    @abc.abstractmethod
    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the latest signed checkpoint, or ``None`` (``GetLatestCheckpoint``)."""

    @abc.abstractmethod
    def inclusion_proof(self, seq: int, tree_size: int) -> InclusionProof:
        """Return record ``seq`` and its audit path in the tree of ``tree_size``."""

    @abc.abstractmethod
    def consistency_proof(self, first_size: int, second_size: int) -> list[bytes]:
        """Return the proof that tree ``first_size`` prefixes tree ``second_size``."""

    @abc.abstractmethod
    def budgets(self, requester: str) -> BudgetReport:
        """Return the privacy budgets of ``requester`` (``GetBudget``)."""

    @abc.abstractmethod
    def node_facts(self) -> NodeFacts:
        """Return the node's identity and policy digest (``GetNodeInfo``)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def _unavailable(address: str, exc: grpc.RpcError) -> NodeUnavailable | NotFound:
    code = exc.code() if hasattr(exc, "code") else None
    details = (exc.details() if hasattr(exc, "details") else "") or "no details"
    name = code.name if isinstance(code, grpc.StatusCode) else "ERROR"
    if code is grpc.StatusCode.OUT_OF_RANGE:
        return NotFound(details)
    return NodeUnavailable(f"node {address}: {name}: {details}")


class GrpcNodeLink(NodeLink):
    """The node over mutual TLS, with the officer's certificate.

    Parameters
    ----------
    address : str
        The node's ``HOST:PORT``.
    material : pki.TlsMaterial
        The officer's kit.
    server_name : str, optional
        Name to check the node's certificate against, if not the host.
    timeout : float, optional
        Deadline of each call, in seconds.
    """

    def __init__(
        self,
        address: str,
        material: pki.TlsMaterial,
        *,
        server_name: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._address = address
        self._timeout = timeout
        self._log = RemoteLog(
            address, material, server_name=server_name, timeout=timeout
        )
        options: list[tuple[str, str | int]] = []
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        self._channel = grpc.secure_channel(
            address, pki.channel_credentials(material), options=options
        )
        self._audit = audit_grpc.AuditServiceStub(self._channel)
        self._node = node_grpc.NodeServiceStub(self._channel)

    @property
    def address(self) -> str:
        """The node's address."""
        return self._address

    def _remote(self, call: Callable[[], object]) -> object:
        try:
            return call()
        except LogUnavailable as exc:
            message = str(exc)
            if ": OUT_OF_RANGE:" in message:
                raise NotFound(message.split(": OUT_OF_RANGE:", 1)[1].strip()) from None
            raise NodeUnavailable(message) from None

    def log_key(self) -> tuple[str, str]:
        """Return the origin and verifier key the node states."""
        result = self._remote(lambda: (self._log.origin, self._log.verifier_key))
        assert isinstance(result, tuple)
        return result[0], result[1]

    def records(
        self, where: RecordFilter | None, *, page_size: int, page_token: str = ""
    ) -> RecordPage:
        """Return one page of records."""
        page = self._remote(
            lambda: self._log.records(where, page_size=page_size, page_token=page_token)
        )
        assert isinstance(page, RecordPage)
        return page

    def checkpoints(self, *, page_size: int, page_token: str = "") -> CheckpointPage:
        """Return one page of checkpoints."""
        page = self._remote(
            lambda: self._log.checkpoints(page_size=page_size, page_token=page_token)
        )
        assert isinstance(page, CheckpointPage)
        return page

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the latest checkpoint."""
        latest = self._remote(self._log.latest_checkpoint)
        assert latest is None or isinstance(latest, StoredCheckpoint)
        return latest

    def inclusion_proof(self, seq: int, tree_size: int) -> InclusionProof:
        """Return an inclusion proof."""
        proof = self._remote(lambda: self._log.inclusion_proof(seq, tree_size))
        assert isinstance(proof, InclusionProof)
        return proof

    def consistency_proof(self, first_size: int, second_size: int) -> list[bytes]:
        """Return a consistency proof."""
        request = audit_pb.GetConsistencyProofRequest(
            first_size=first_size, second_size=second_size
        )
        try:
            response = self._audit.GetConsistencyProof(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _unavailable(self._address, exc) from None
        return list(response.hashes)

    def budgets(self, requester: str) -> BudgetReport:
        """Return a requester's budgets (officers may name any requester)."""
        try:
            response = self._node.GetBudget(
                node_pb.GetBudgetRequest(requester=requester), timeout=self._timeout
            )
        except grpc.RpcError as exc:
            raise _unavailable(self._address, exc) from None
        return budget_report_from_proto(response)

    def node_facts(self) -> NodeFacts:
        """Return the node's identity and policy digest."""
        try:
            response = self._node.GetNodeInfo(
                node_pb.GetNodeInfoRequest(), timeout=self._timeout
            )
        except grpc.RpcError as exc:
            raise _unavailable(self._address, exc) from None
        return node_facts_from_proto(response)

    def close(self) -> None:
        """Close both channels."""
        self._log.close()
        self._channel.close()


class ReaderNodeLink(NodeLink):
    """A log read directly (no node, nothing logged): the in-process twin.

    Parameters
    ----------
    reader : DecisionLogReader
        The log.
    budgets : Callable[[str], BudgetReport], optional
        Answers :meth:`budgets`; by default every requester has no budget.
    facts : NodeFacts, optional
        Answers :meth:`node_facts`.
    """

    def __init__(
        self,
        reader: DecisionLogReader,
        *,
        budgets: Callable[[str], BudgetReport] | None = None,
        facts: NodeFacts | None = None,
    ) -> None:
        self._reader = reader
        self._budgets = budgets
        self._facts = facts

    def log_key(self) -> tuple[str, str]:
        """Return the log's origin and verifier key."""
        return self._reader.origin, self._reader.verifier_key

    def records(
        self, where: RecordFilter | None, *, page_size: int, page_token: str = ""
    ) -> RecordPage:
        """Return one page of records."""
        return self._reader.records(where, page_size=page_size, page_token=page_token)

    def checkpoints(self, *, page_size: int, page_token: str = "") -> CheckpointPage:
        """Return one page of checkpoints."""
        return self._reader.checkpoints(page_size=page_size, page_token=page_token)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Return the latest checkpoint."""
        return self._reader.latest_checkpoint()

    def inclusion_proof(self, seq: int, tree_size: int) -> InclusionProof:
        """Return an inclusion proof."""
        try:
            return self._reader.inclusion_proof(seq, tree_size or None)
        except OutOfRange as exc:
            raise NotFound(str(exc)) from None

    def consistency_proof(self, first_size: int, second_size: int) -> list[bytes]:
        """Return a consistency proof."""
        try:
            return self._reader.consistency_proof(
                first_size, second_size or None
            ).hashes
        except OutOfRange as exc:
            raise NotFound(str(exc)) from None

    def budgets(self, requester: str) -> BudgetReport:
        """Return a requester's budgets (none by default)."""
        if self._budgets is None:
            return BudgetReport(requester, "", ())
        return self._budgets(requester)

    def node_facts(self) -> NodeFacts:
        """Return the node's facts (placeholders by default)."""
        if self._facts is not None:
            return self._facts
        return NodeFacts("", "", "", "", "", "", "")
