"""The coordinator's link to one node: a gRPC channel with mutual TLS."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import grpc

import pki
from accord.v1 import node_service_pb2 as pb
from accord.v1 import node_service_pb2_grpc as pb_grpc


@dataclass(frozen=True)
class NodeAddress:
    """Where a node listens and which TLS name it must present.

    Without ``server_name`` the node must present the certificate of the agency the
    federation file names (its identity's TLS name), whatever address it listens on.
    """

    agency: str
    name: str
    address: str
    server_name: str | None = None
    federation: str = ""

    @property
    def expected_tls_name(self) -> str | None:
        """The name the node's certificate must carry."""
        if self.server_name:
            return self.server_name
        if self.federation:
            return pki.Identity(
                self.federation, self.agency, "node", self.name
            ).tls_name
        return None

    @property
    def label(self) -> str:
        """``agency/name``."""
        return f"{self.agency}/{self.name}"


def open_channel(
    node: NodeAddress,
    material: pki.TlsMaterial | None,
    *,
    max_message_bytes: int = 64 << 20,
) -> grpc.Channel:
    """Open a channel to ``node``, the one way every coordinator link connects.

    Mutual TLS with the node identity's TLS name verified, or plaintext when
    ``material`` is None (``--insecure``).
    """
    options: list[tuple[str, str | int]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    if material is None:
        return grpc.insecure_channel(node.address, options=options)
    if node.expected_tls_name:
        options.append(("grpc.ssl_target_name_override", node.expected_tls_name))
    return grpc.secure_channel(
        node.address, pki.channel_credentials(material), options=options
    )


class NodeLink(abc.ABC):
    """Calls one node; implementations choose the transport."""

    def __init__(self, node: NodeAddress) -> None:
        self.node = node

    @abc.abstractmethod
    def get_info(self, timeout: float) -> pb.GetNodeInfoResponse:
        """Call ``GetNodeInfo``."""

    @abc.abstractmethod
    def run_query(
        self, request: pb.RunQueryRequest, timeout: float
    ) -> pb.RunQueryResponse:
        """Call ``RunQuery``."""

    @abc.abstractmethod
    def get_budget(
        self, request: pb.GetBudgetRequest, timeout: float
    ) -> pb.GetBudgetResponse:
        """Call ``GetBudget``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""


class GrpcNodeLink(NodeLink):
    """A link over gRPC: mutual TLS unless ``material`` is None (``--insecure``)."""

    def __init__(self, node: NodeAddress, material: pki.TlsMaterial | None) -> None:
        super().__init__(node)
        self._channel = open_channel(node, material)
        self._stub = pb_grpc.NodeServiceStub(self._channel)

    @property
    def channel(self) -> grpc.Channel:
        """The channel, for the node's other services (closed with this link)."""
        return self._channel

    def get_info(self, timeout: float) -> pb.GetNodeInfoResponse:
        """Call ``GetNodeInfo`` with a deadline."""
        response: pb.GetNodeInfoResponse = self._stub.GetNodeInfo(
            pb.GetNodeInfoRequest(), timeout=timeout
        )
        return response

    def run_query(
        self, request: pb.RunQueryRequest, timeout: float
    ) -> pb.RunQueryResponse:
        """Call ``RunQuery`` with a deadline."""
        response: pb.RunQueryResponse = self._stub.RunQuery(request, timeout=timeout)
        return response

    def get_budget(
        self, request: pb.GetBudgetRequest, timeout: float
    ) -> pb.GetBudgetResponse:
        """Call ``GetBudget`` with a deadline."""
        response: pb.GetBudgetResponse = self._stub.GetBudget(request, timeout=timeout)
        return response

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()
