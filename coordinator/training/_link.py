"""The coordinator's link to one node's ``TrainingService`` (and its secure sessions)."""

from __future__ import annotations

import abc

import pki
from accord.v1 import training_service_pb2 as pb
from accord.v1 import training_service_pb2_grpc as pb_grpc
from coordinator._link import NodeAddress, open_channel
from coordinator._secure_link import GrpcSecureAggregationLink, SecureAggregationLink

#: Largest message a training channel accepts (models of a few million parameters).
MAX_MESSAGE_BYTES = 256 << 20


class TrainingLink(abc.ABC):
    """Calls one node's training service; implementations choose the transport.

    Parameters
    ----------
    node : NodeAddress
        Which node, for labels and results.
    """

    def __init__(self, node: NodeAddress) -> None:
        self.node = node

    @abc.abstractmethod
    def list_apps(self, timeout: float) -> pb.ListTrainingAppsResponse:
        """Call ``ListTrainingApps``."""

    @abc.abstractmethod
    def initialize(
        self, request: pb.InitializeModelRequest, timeout: float
    ) -> pb.InitializeModelResponse:
        """Call ``InitializeModel``."""

    @abc.abstractmethod
    def deliver(
        self, request: pb.DeliverMessageRequest, timeout: float
    ) -> pb.DeliverMessageResponse:
        """Call ``DeliverMessage``."""

    @abc.abstractmethod
    def secure(self, participant_id: int) -> SecureAggregationLink:
        """Return a link that steps this node's secure-aggregation sessions."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""


class GrpcTrainingLink(TrainingLink):
    """A link over gRPC: mutual TLS unless ``material`` is None (``--insecure``).

    Parameters
    ----------
    node : NodeAddress
        Where the node listens and the TLS name it must present.
    material : pki.TlsMaterial or None
        The coordinator's kit.
    """

    def __init__(self, node: NodeAddress, material: pki.TlsMaterial | None) -> None:
        super().__init__(node)
        self._channel = open_channel(
            node, material, max_message_bytes=MAX_MESSAGE_BYTES
        )
        self._stub = pb_grpc.TrainingServiceStub(self._channel)

    def list_apps(self, timeout: float) -> pb.ListTrainingAppsResponse:
        """Call ``ListTrainingApps`` with a deadline."""
        response: pb.ListTrainingAppsResponse = self._stub.ListTrainingApps(
            pb.ListTrainingAppsRequest(), timeout=timeout
        )
        return response

    def initialize(
        self, request: pb.InitializeModelRequest, timeout: float
    ) -> pb.InitializeModelResponse:
        """Call ``InitializeModel`` with a deadline."""
        response: pb.InitializeModelResponse = self._stub.InitializeModel(
            request, timeout=timeout
        )
        return response

    def deliver(
        self, request: pb.DeliverMessageRequest, timeout: float
    ) -> pb.DeliverMessageResponse:
        """Call ``DeliverMessage`` with a deadline."""
        response: pb.DeliverMessageResponse = self._stub.DeliverMessage(
            request, timeout=timeout
        )
        return response

    def secure(self, participant_id: int) -> SecureAggregationLink:
        """Return a secure-aggregation link on this link's channel."""
        return GrpcSecureAggregationLink(
            self._channel, participant_id, label=self.node.label
        )

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()
