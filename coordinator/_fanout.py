"""Call every node concurrently, each with its own deadline; never hang."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc

from coordinator._link import NodeLink
from coordinator._outcome import NodeOutcome, describe_rpc_error
from coordinator._threads import node_calls

T = TypeVar("T")


def fan_out(
    links: Sequence[NodeLink],
    call: Callable[[NodeLink, float], T],
    *,
    deadline: float,
) -> list[NodeOutcome[T]]:
    """Run ``call(link, deadline)`` on every link at once; one outcome per link, in order.

    Each call carries the gRPC deadline itself, so a slow or unreachable node ends as
    ``unreachable`` after ``deadline`` seconds while the others answer.
    """
    if not links:
        return []

    def one(link: NodeLink) -> NodeOutcome[T]:
        start = time.perf_counter()
        node = link.node
        try:
            response = call(link, deadline)
        except grpc.RpcError as error:
            status, code, reason, message, metadata = describe_rpc_error(error)
            return NodeOutcome(
                node.agency,
                node.name,
                node.address,
                status,
                code=code,
                reason=reason,
                message=message,
                metadata=metadata,
                seconds=time.perf_counter() - start,
            )
        return NodeOutcome(
            node.agency,
            node.name,
            node.address,
            "ok",
            response=response,
            seconds=time.perf_counter() - start,
        )

    return list(node_calls().map(one, links))
