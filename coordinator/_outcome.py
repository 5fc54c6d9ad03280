"""What happened at each node of a fan-out: an answer, a refusal or a failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar, cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

T = TypeVar("T")

Status = Literal["ok", "refused", "invalid", "failed", "unreachable"]


@dataclass(frozen=True)
class NodeOutcome(Generic[T]):
    """One node's part in a federated call."""

    agency: str
    node: str
    address: str
    status: Status
    response: T | None = None
    code: str = ""
    reason: str = ""
    message: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the node answered."""
        return self.status == "ok"


def describe_rpc_error(
    error: grpc.RpcError,
) -> tuple[Status, str, str, str, dict[str, str]]:
    """Classify an RPC error: status, gRPC code name, reason, message, metadata."""
    call = cast(grpc.Call, error)
    code = call.code()
    details = call.details()
    reason = ""
    metadata: dict[str, str] = {}
    message = details or ""
    try:
        status = rpc_status.from_call(call)
    except ValueError:
        status = None
    if status is not None:
        message = status.message
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
                metadata = dict(info.metadata)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return "refused", code.name, reason, message, metadata
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return "invalid", code.name, reason, message, metadata
    if (
        code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        and not reason
    ):
        return (
            "unreachable",
            code.name,
            reason,
            explain_transport(code, message),
            metadata,
        )
    return "failed", code.name, reason, message, metadata


def explain_transport(code: grpc.StatusCode, details: str) -> str:
    """Turn a transport failure into a sentence that says what went wrong."""
    text = details.lower()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "no answer before the deadline (node slow or not responding)"
    if "hostname verification" in text:
        return (
            "TLS handshake failed: the certificate at this address is not the node of "
            "the agency the federation file names"
        )
    if "certificate_verify_failed" in text or "certificate verify failed" in text:
        return (
            "TLS handshake failed: the node's certificate is not issued by the federation "
            "CA, has expired, or does not name this address"
        )
    if "certificate expired" in text:
        return "TLS handshake failed: the node refused our certificate: it has expired"
    if "unknown ca" in text or "unknown_ca" in text:
        return (
            "TLS handshake failed: the node refused our certificate: not issued by its "
            "federation CA"
        )
    if "certificate required" in text or ("handshake" in text and "alert" in text):
        return "TLS handshake failed: the node refused our certificate"
    if "connection refused" in text or "failed to connect" in text:
        return "connection refused: no node listening at this address"
    if "wrong_version_number" in text or "wrong version number" in text:
        return "TLS handshake failed: the node does not speak TLS (is it --insecure?)"
    return f"unavailable: {details}"
