"""The coordinator's link to one node's ``SecureAggregationService``."""

from __future__ import annotations

import abc
import enum

import grpc

import pki
from accord.v1 import secure_aggregation_pb2 as pb
from accord.v1 import secure_aggregation_pb2_grpc as pb_grpc
from coordinator._link import GrpcNodeLink, NodeAddress, open_channel

#: Largest message a channel built here accepts (a masked vector of 8 M words).
MAX_MESSAGE_BYTES = 64 << 20


class SecureRound(enum.IntEnum):
    """The rounds the coordinator steps a session through, in order."""

    SHARE_KEYS = pb.SECURE_AGGREGATION_ROUND_SHARE_KEYS
    MASKED_INPUT = pb.SECURE_AGGREGATION_ROUND_MASKED_INPUT
    UNMASKING = pb.SECURE_AGGREGATION_ROUND_UNMASKING


class SecureAggregationLink(abc.ABC):
    """Steps one participant's side of secure-aggregation sessions.

    Parameters
    ----------
    participant_id : int
        The node's id in the session, as in the ``SecureAggregationRequest``
        that opened it.
    label : str
        How to name the node in results and errors (e.g. ``agency/name``).
    """

    def __init__(self, participant_id: int, label: str = "") -> None:
        self.participant_id = participant_id
        self.label = label or f"participant {participant_id}"

    @abc.abstractmethod
    def step(
        self, session_id: str, round: SecureRound, payload: bytes, timeout: float
    ) -> bytes:
        """Send the aggregator's message of ``round``; return the node's reply.

        Parameters
        ----------
        session_id : str
            The session.
        round : SecureRound
            The round the message belongs to.
        payload : bytes
            The aggregator's ``secagg`` message addressed to this node.
        timeout : float
            Seconds before the call is abandoned.

        Returns
        -------
        bytes
            The node's ``secagg`` message.

        Raises
        ------
        grpc.RpcError
            If the call fails or times out (implementations over other
            transports raise their own errors; `secure_sum` treats any error
            as the node dropping out).
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""


class GrpcSecureAggregationLink(SecureAggregationLink):
    """A link over a gRPC channel: its own, or one shared with a `GrpcNodeLink`.

    Parameters
    ----------
    channel : grpc.Channel
        A channel to the node (mutual TLS, see `connect`); closed by `close`
        only when ``owns_channel``.
    participant_id : int
        The node's id in the session.
    label : str
        How to name the node.
    owns_channel : bool
        Whether `close` closes the channel.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        participant_id: int,
        *,
        label: str = "",
        owns_channel: bool = False,
    ) -> None:
        super().__init__(participant_id, label)
        self._channel = channel
        self._owns = owns_channel
        self._stub = pb_grpc.SecureAggregationServiceStub(channel)

    @classmethod
    def over(cls, link: GrpcNodeLink, participant_id: int) -> GrpcSecureAggregationLink:
        """Return a link on the channel of ``link`` (which keeps owning it).

        Parameters
        ----------
        link : GrpcNodeLink
            The node's link, whose channel carried the opening request.
        participant_id : int
            The node's id in the session.

        Returns
        -------
        GrpcSecureAggregationLink
            A link whose `close` leaves the channel open.
        """
        return cls(link.channel, participant_id, label=link.node.label)

    @classmethod
    def connect(
        cls,
        node: NodeAddress,
        material: pki.TlsMaterial | None,
        participant_id: int,
    ) -> GrpcSecureAggregationLink:
        """Open a channel to ``node`` as `GrpcNodeLink` does, owned by the link.

        Parameters
        ----------
        node : NodeAddress
            Where the node listens and the TLS name it must present.
        material : pki.TlsMaterial or None
            The coordinator's kit; ``None`` for plaintext (``--insecure``).
        participant_id : int
            The node's id in the session.

        Returns
        -------
        GrpcSecureAggregationLink
            A link whose `close` closes the channel.
        """
        channel = open_channel(node, material, max_message_bytes=MAX_MESSAGE_BYTES)
        return cls(channel, participant_id, label=node.label, owns_channel=True)

    def step(
        self, session_id: str, round: SecureRound, payload: bytes, timeout: float
    ) -> bytes:
        """Call ``Step`` with a deadline."""
        response: pb.StepResponse = self._stub.Step(
            pb.StepRequest(session_id=session_id, round=round.value, payload=payload),
            timeout=timeout,
        )
        return response.payload

    def close(self) -> None:
        """Close the channel if the link owns it."""
        if self._owns:
            self._channel.close()
