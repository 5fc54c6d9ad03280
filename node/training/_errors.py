"""Errors of the node's training service (mapped by ``node._errors.rpc_errors``).

* NodeError
  * AppNotInstalled  -> FAILED_PRECONDITION: no app of that name, or the request
                        names another code digest than the node's installed app
  * TrainingFailed   -> INTERNAL: the app failed on the node's data (details in the
                        node's log only; the budget reserved is given back)
"""

from __future__ import annotations

from google.rpc import code_pb2

from accord.v1 import types_pb2
from node._errors import NodeError


class AppNotInstalled(NodeError):
    """The node has no such app, or not at the digest the request names."""

    code = code_pb2.FAILED_PRECONDITION
    reason = types_pb2.ERROR_REASON_INVALID_QUERY

    def __init__(self, message: str, *, app: str, installed_digest: str = "") -> None:
        metadata = {"field": "job.app", "app": app}
        if installed_digest:
            metadata["installed_digest"] = installed_digest
        super().__init__(message, metadata=metadata)
        self.field = "job.app"


class TrainingFailed(NodeError):
    """The training app failed; nothing about the data is revealed."""

    code = code_pb2.INTERNAL
