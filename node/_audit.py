"""``AuditService``: the node's officers read its decision log; every call is logged.

Only a certificate with role ``officer`` of the node's own agency (and federation)
is served. Every call -- served, refused or failed -- first appends a
``consultation`` record naming the caller, the method and the outcome, and the
answer leaves only once that record is durable (LED Art. 25: reading the log is
itself logged). Access is decided by a rule built into the node, not by the
sharing policy: its id is :data:`ACCESS_RULE` and the digest stamped on the
records is :data:`ACCESS_RULE_DIGEST`.

Errors (mapped by :func:`node._errors.rpc_errors`)::

    * NodeError
      x NotAnOfficer       -> PERMISSION_DENIED, ErrorInfo(reason=POLICY_DENIED,
                              metadata={"rule": ACCESS_RULE})
      x Unauthenticated    -> UNAUTHENTICATED (no client certificate: --insecure)
      x InvalidQuery       -> INVALID_ARGUMENT naming the field (bad filter, page
                              size or token, negative seq or size)
      x ProofOutOfRange    -> OUT_OF_RANGE (no checkpoint yet; seq or size beyond)
      x AuditUnavailable   -> UNAVAILABLE (the log cannot be read or written)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from hashlib import sha256
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import code_pb2

import pki
from accord.v1 import audit_service_pb2 as pb
from accord.v1 import audit_service_pb2_grpc as pb_grpc
from accord.v1 import types_pb2
from node._errors import InvalidQuery, NodeError, Unauthenticated, rpc_errors
from policies.auditlog import (
    DECISIONS,
    DecisionLog,
    InvalidPageToken,
    LogUnavailable,
    OutOfRange,
)
from policies.auditlog._serde import (
    checkpoint_to_proto,
    consistency_to_proto,
    filter_from_request,
    inclusion_to_proto,
    record_to_proto,
)

__all__ = [
    "ACCESS_RULE",
    "ACCESS_RULE_DIGEST",
    "AUDIT_SERVICE_NAME",
    "AuditServicer",
    "AuditUnavailable",
    "NotAnOfficer",
    "ProofOutOfRange",
    "add_audit_service",
]

Clock = Callable[[], datetime]
Response = TypeVar("Response", bound=Message)

AUDIT_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AuditService"].full_name
"""``accord.v1.AuditService``, for health checks and reflection."""

ACCESS_RULE = "audit.officer-of-own-agency"
"""The built-in rule that decides access to the log."""

ACCESS_RULE_DIGEST = sha256(
    b"accord built-in rule audit.officer-of-own-agency: the caller's certificate "
    b"has role officer and the node's federation and agency\n"
).hexdigest()
"""Stamped as ``policy_digest`` on the log's consultation records."""

_METHOD = f"/{AUDIT_SERVICE_NAME}/"
_UNAUTHENTICATED = "unauthenticated"


class NotAnOfficer(NodeError):
    """The caller is not an officer of the node's agency."""

    code = code_pb2.PERMISSION_DENIED
    reason = types_pb2.ERROR_REASON_POLICY_DENIED


class ProofOutOfRange(NodeError):
    """The log has no such record or signed tree size (yet)."""

    code = code_pb2.OUT_OF_RANGE
    reason = types_pb2.ERROR_REASON_INVALID_QUERY


class AuditUnavailable(NodeError):
    """The decision log cannot be read or written; nothing is answered."""

    code = code_pb2.UNAVAILABLE


class AuditServicer(pb_grpc.AuditServiceServicer):
    """Serves the node's decision log to its agency's compliance officers.

    Parameters
    ----------
    log : DecisionLog
        The node's decision log (the one its decisions are appended to).
    identity : pki.Identity
        The node's own identity: its agency and federation are the officers'.
    clock : Clock
        The time stamped on the consultation records.
    purpose : str, optional
        Purpose recorded for officers' reads (default ``log-review``).
    legal_basis : str, optional
        Legal basis recorded for officers' reads (default ``LED Art. 25(2)``).
    append_timeout : float, optional
        Longest a call waits for its consultation record to commit, in seconds.
    """

    def __init__(
        self,
        log: DecisionLog,
        identity: pki.Identity,
        clock: Clock,
        *,
        purpose: str = "log-review",
        legal_basis: str = "LED Art. 25(2)",
        append_timeout: float | None = 10.0,
    ) -> None:
        self._log = log
        self._identity = identity
        self._clock = clock
        self._purpose = purpose
        self._legal_basis = legal_basis
        self._timeout = append_timeout

    def _record(
        self,
        requester: str,
        method: str,
        request: Message,
        decision: str,
        reason: str,
        *,
        matched: tuple[str, ...] = (),
    ) -> None:
        """Append the consultation record; raise if it cannot be made durable."""
        digest = sha256(
            method.encode() + b"\n" + request.SerializeToString(deterministic=True)
        ).hexdigest()
        try:
            self._log.append(
                {
                    "time": self._clock(),
                    "operation": "consultation",
                    "requester": requester,
                    "on_behalf_of": "",
                    "purpose": self._purpose,
                    "legal_basis": self._legal_basis,
                    "justification": "",
                    "dataset": "",
                    "columns": (),
                    "request_hash": digest,
                    "policy_digest": ACCESS_RULE_DIGEST,
                    "decision": decision,
                    "matched_rules": matched,
                    "reason": reason,
                    "privacy_charged": 0.0,
                    "privacy_remaining": None,
                    "recipients": (requester,) if decision == "allow" else (),
                    "query_id": uuid.uuid4().hex,
                    "method": method,
                },
                timeout=self._timeout,
            )
        except LogUnavailable:
            raise AuditUnavailable(
                "the decision log is unavailable; nothing was read"
            ) from None

    def _authorize(
        self, context: grpc.ServicerContext, method: str, request: Message
    ) -> str:
        """Return the officer's URI, or log the refusal and raise."""
        caller = pki.peer_identity(context.auth_context())
        node = self._identity
        if caller is None:
            self._record(
                _UNAUTHENTICATED, method, request, "deny", "no client certificate"
            )
            raise Unauthenticated(
                "the AuditService needs an officer's client certificate"
            )
        if caller.role != "officer":
            reason = f"role {caller.role} may not read the decision log"
        elif caller.federation != node.federation or caller.agency != node.agency:
            reason = "only officers of the node's own agency may read its decision log"
        else:
            return caller.uri
        self._record(caller.uri, method, request, "deny", reason)
        raise NotAnOfficer(
            f"only officers of agency {node.agency} may read its decision log",
            metadata={"rule": ACCESS_RULE},
        )

    def _serve(
        self,
        name: str,
        request: Message,
        context: grpc.ServicerContext,
        answer: Callable[[], Response],
    ) -> Response:
        """Authorise, answer, log the outcome; the answer leaves after its record."""
        method = _METHOD + name
        with rpc_errors(context):
            officer = self._authorize(context, method, request)
            try:
                response = answer()
            except (InvalidQuery, ProofOutOfRange) as exc:
                self._record(officer, method, request, "error", exc.message)
                raise
            except LogUnavailable:
                self._record(officer, method, request, "error", "log unavailable")
                raise AuditUnavailable("the decision log cannot be read now") from None
            except Exception:
                self._record(officer, method, request, "error", "internal error")
                raise
            self._record(
                officer, method, request, "allow", ACCESS_RULE, matched=(ACCESS_RULE,)
            )
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def ListRecords(
        self, request: pb.ListRecordsRequest, context: grpc.ServicerContext
    ) -> pb.ListRecordsResponse:
        """List decision records, oldest first, with optional filters."""

        def answer() -> pb.ListRecordsResponse:
            _check_page_size(request.page_size)
            if request.decision and request.decision not in DECISIONS:
                raise InvalidQuery(
                    "decision", f"expected one of {', '.join(sorted(DECISIONS))}"
                )
            try:
                page = self._log.records(
                    filter_from_request(request),
                    page_size=request.page_size,
                    page_token=request.page_token,
                )
            except InvalidPageToken as exc:
                raise InvalidQuery("page_token", str(exc)) from None
            return pb.ListRecordsResponse(
                records=[record_to_proto(r) for r in page.records],
                next_page_token=page.next_page_token,
                tree_size=page.tree_size,
            )

        return self._serve("ListRecords", request, context, answer)

    def ListCheckpoints(
        self, request: pb.ListCheckpointsRequest, context: grpc.ServicerContext
    ) -> pb.ListCheckpointsResponse:
        """List signed checkpoints, oldest first."""

        def answer() -> pb.ListCheckpointsResponse:
            _check_page_size(request.page_size)
            try:
                page = self._log.checkpoints(
                    page_size=request.page_size, page_token=request.page_token
                )
            except InvalidPageToken as exc:
                raise InvalidQuery("page_token", str(exc)) from None
            return pb.ListCheckpointsResponse(
                checkpoints=[checkpoint_to_proto(c) for c in page.checkpoints],
                next_page_token=page.next_page_token,
            )

        return self._serve("ListCheckpoints", request, context, answer)

    def GetLatestCheckpoint(
        self, request: pb.GetLatestCheckpointRequest, context: grpc.ServicerContext
    ) -> pb.GetLatestCheckpointResponse:
        """Return the latest signed checkpoint (unset while there is none)."""

        def answer() -> pb.GetLatestCheckpointResponse:
            latest = self._log.latest_checkpoint()
            if latest is None:
                return pb.GetLatestCheckpointResponse()
            return pb.GetLatestCheckpointResponse(
                checkpoint=checkpoint_to_proto(latest)
            )

        return self._serve("GetLatestCheckpoint", request, context, answer)

    def GetInclusionProof(
        self, request: pb.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> pb.GetInclusionProofResponse:
        """Return a record and its audit path in a signed tree size."""

        def answer() -> pb.GetInclusionProofResponse:
            if request.seq < 0:
                raise InvalidQuery("seq", "must be 0 or more")
            if request.tree_size < 0:
                raise InvalidQuery("tree_size", "must be 0 (latest checkpoint) or more")
            try:
                proof = self._log.inclusion_proof(
                    request.seq, request.tree_size or None
                )
            except OutOfRange as exc:
                raise ProofOutOfRange(str(exc)) from None
            return inclusion_to_proto(proof)

        return self._serve("GetInclusionProof", request, context, answer)

    def GetConsistencyProof(
        self, request: pb.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> pb.GetConsistencyProofResponse:
        """Return the proof that an earlier tree size prefixes a later one."""

        def answer() -> pb.GetConsistencyProofResponse:
            if request.first_size < 0:
                raise InvalidQuery("first_size", "must be 0 or more")
            if request.second_size < 0:
                raise InvalidQuery(
                    "second_size", "must be 0 (latest checkpoint) or more"
                )
            try:
                proof = self._log.consistency_proof(
                    request.first_size, request.second_size or None
                )
            except OutOfRange as exc:
                raise ProofOutOfRange(str(exc)) from None
            return consistency_to_proto(proof)

        return self._serve("GetConsistencyProof", request, context, answer)

    def GetLogKey(
        self, request: pb.GetLogKeyRequest, context: grpc.ServicerContext
    ) -> pb.GetLogKeyResponse:
        """Return the log's origin and verifier key."""

        def answer() -> pb.GetLogKeyResponse:
            return pb.GetLogKeyResponse(
                origin=self._log.origin, verifier_key=self._log.verifier_key
            )

        return self._serve("GetLogKey", request, context, answer)


def _check_page_size(size: int) -> None:
    if size < 0:
        raise InvalidQuery("page_size", "must be 0 (default 100) or more; at most 1000")


def add_audit_service(server: grpc.Server, servicer: AuditServicer) -> None:
    """Mount the ``AuditService`` on a (not yet started) gRPC server.

    Parameters
    ----------
    server : grpc.Server
        The node's server.
    servicer : AuditServicer
        The servicer.
    """
    pb_grpc.add_AuditServiceServicer_to_server(servicer, server)
