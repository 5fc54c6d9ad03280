"""Errors of the node, and their mapping to ``google.rpc.Status``.

* NodeError                 -- a request cannot be answered (mapped to a gRPC status)
  * InvalidQuery            -> INVALID_ARGUMENT, ErrorInfo + BadRequest naming the field
  * PolicyDenied            -> PERMISSION_DENIED, ErrorInfo(reason=POLICY_DENIED,
                               metadata={policy, rule, revision}) -- the declared rule only
  * BudgetExceeded          -> RESOURCE_EXHAUSTED, ErrorInfo(reason=BUDGET_EXHAUSTED,
                               metadata={budget, policy, revision})
  * DecisionNotLogged       -> UNAVAILABLE: the decision could not be made durable,
                               so no answer leaves the node
  * BudgetUnavailable       -> UNAVAILABLE: the budget ledger could not be read or
                               written, so nothing was spent and no answer leaves
  * Unauthenticated         -> UNAUTHENTICATED
  * SourceUnavailable       -> UNAVAILABLE (no detail about the data)
  * ShuttingDown            -> UNAVAILABLE
* NodeStartupError          -- the node cannot start; carries its exit code
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from accord.v1 import types_pb2

DOMAIN = "accord"

_log = logging.getLogger("accord.node")


def reason_name(reason: types_pb2.ErrorReason.ValueType) -> str:
    """Return the ``ErrorInfo.reason`` string of an ``ErrorReason`` value."""
    return types_pb2.ErrorReason.Name(reason).removeprefix("ERROR_REASON_")


class NodeError(Exception):
    """A request the node cannot answer; subclasses fix the gRPC code and reason."""

    code: int = code_pb2.INTERNAL
    reason: types_pb2.ErrorReason.ValueType = types_pb2.ERROR_REASON_UNSPECIFIED

    def __init__(self, message: str, *, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = dict(metadata or {})

    def details(self) -> list[any_pb2.Any]:
        """Typed details beyond the ErrorInfo."""
        return []

    @classmethod
    def permission(cls, message: str) -> NodeError:
        """Build a PERMISSION_DENIED that is not a policy decision (a role check)."""
        error = cls(message)
        error.code = code_pb2.PERMISSION_DENIED
        return error

    def to_status(self) -> status_pb2.Status:
        """Render as a ``google.rpc.Status`` with an ``ErrorInfo``."""
        info = error_details_pb2.ErrorInfo(
            reason=reason_name(self.reason), domain=DOMAIN, metadata=self.metadata
        )
        packed = any_pb2.Any()
        packed.Pack(info)
        return status_pb2.Status(
            code=self.code, message=self.message, details=[packed, *self.details()]
        )


class InvalidQuery(NodeError):
    """The request is malformed or names something the node does not declare."""

    code = code_pb2.INVALID_ARGUMENT

    def __init__(
        self,
        field: str,
        message: str,
        reason: types_pb2.ErrorReason.ValueType = types_pb2.ERROR_REASON_INVALID_QUERY,
    ) -> None:
        super().__init__(f"{field}: {message}", metadata={"field": field})
        self.field = field
        self.description = message
        self.reason = reason

    def details(self) -> list[any_pb2.Any]:
        """Return a ``BadRequest`` with the field violation."""
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=self.field, description=self.description
                )
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        return [packed]


class PolicyDenied(NodeError):
    """The node's declared policy does not allow the request."""

    code = code_pb2.PERMISSION_DENIED
    reason = types_pb2.ERROR_REASON_POLICY_DENIED


class BudgetExceeded(NodeError):
    """The requester's privacy budget does not cover the request; nothing was spent."""

    code = code_pb2.RESOURCE_EXHAUSTED
    reason = types_pb2.ERROR_REASON_BUDGET_EXHAUSTED


class DecisionNotLogged(NodeError):
    """The decision log could not record the decision; the request is not answered."""

    code = code_pb2.UNAVAILABLE


class BudgetUnavailable(NodeError):
    """The budget ledger failed; nothing was reserved and the request is not answered."""

    code = code_pb2.UNAVAILABLE


class Unauthenticated(NodeError):
    """The caller presented no federation identity."""

    code = code_pb2.UNAUTHENTICATED
    reason = types_pb2.ERROR_REASON_UNAUTHENTICATED


class SourceUnavailable(NodeError):
    """The dataset's source could not be read; details go to the node's log only."""

    code = code_pb2.UNAVAILABLE
    reason = types_pb2.ERROR_REASON_SOURCE_UNAVAILABLE


class ShuttingDown(NodeError):
    """The node is shutting down and takes no new work."""

    code = code_pb2.UNAVAILABLE
    reason = types_pb2.ERROR_REASON_SHUTTING_DOWN


class NodeStartupError(Exception):
    """The node cannot start; ``exit_code`` is one of ``ExitCode``."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextlib.contextmanager
def rpc_errors(context: grpc.ServicerContext) -> Iterator[None]:
    """Map ``NodeError`` to its status; any other exception to an opaque INTERNAL."""
    try:
        yield
    except NodeError as exc:
        context.abort_with_status(rpc_status.to_status(exc.to_status()))
    except Exception:
        _log.exception("unexpected error while serving a request")
        context.abort_with_status(
            rpc_status.to_status(
                NodeError("internal error; see the node's log").to_status()
            )
        )
