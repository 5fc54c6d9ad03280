"""A node's decision log read over gRPC (``accord.v1.AuditService``), with mTLS.

The caller presents an officer certificate of the node's agency; the node logs
each call. Nothing read here is trusted: exports are verified offline against
the pinned verifier key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc

import pki
from accord.v1 import audit_service_pb2 as pb
from accord.v1 import audit_service_pb2_grpc as pb_grpc

from ._logerrors import LogUnavailable
from ._reader import CheckpointPage, InclusionProof, RecordPage
from ._serde import (
    checkpoint_from_proto,
    filter_to_request,
    inclusion_from_proto,
    record_from_proto,
)
from ._store import RecordFilter, StoredCheckpoint, StoredRecord

__all__ = ["RemoteLog"]

T = TypeVar("T")


class RemoteLog:
    """A node's decision log, read through its ``AuditService``.

    Parameters
    ----------
    address : str
        The node's ``HOST:PORT``.
    material : pki.TlsMaterial
        The officer's TLS kit (CA, certificate, key).
    server_name : str, optional
        The name to check the node's certificate against, if not the host.
    timeout : float, optional
        Deadline of each call, in seconds (default 30).
    """

    def __init__(
        self,
        address: str,
        material: pki.TlsMaterial,
        *,
        server_name: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        options: list[tuple[str, str | int]] = [
            ("grpc.max_receive_message_length", 64 << 20)
        ]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        self._address = address
        self._timeout = timeout
        self._channel = grpc.secure_channel(
            address, pki.channel_credentials(material), options=options
        )
        self._stub = pb_grpc.AuditServiceStub(self._channel)
        self._key: pb.GetLogKeyResponse | None = None

    def _call(self, method: Callable[..., T], request: object) -> T:
        try:
            return method(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            details = exc.details() if hasattr(exc, "details") else ""
            name = code.name if isinstance(code, grpc.StatusCode) else "ERROR"
            raise LogUnavailable(
                f"node {self._address}: {name}: {details or 'no details'}"
            ) from None

    def _log_key(self) -> pb.GetLogKeyResponse:
        if self._key is None:
            self._key = self._call(self._stub.GetLogKey, pb.GetLogKeyRequest())
        return self._key

    @property
    def origin(self) -> str:
        """The log's origin, as the node states it."""
        return self._log_key().origin

    @property
    def verifier_key(self) -> str:
        """The log's verifier key, as the node states it (pin it out of band)."""
        return self._log_key().verifier_key

    def records(
        self,
        where: RecordFilter | None = None,
        *,
        page_size: int = 100,
        page_token: str = "",
    ) -> RecordPage:
        """Fetch one page of records.

        Parameters
        ----------
        where : RecordFilter, optional
            Which records.
        page_size : int, optional
            At most this many (the node caps it at 1000).
        page_token : str, optional
            A previous page's token.

        Returns
        -------
        RecordPage
            The page.
        """
        request = filter_to_request(
            where or RecordFilter(), page_size=page_size, page_token=page_token
        )
        response: pb.ListRecordsResponse = self._call(self._stub.ListRecords, request)
        return RecordPage(
            [record_from_proto(r) for r in response.records],
            response.next_page_token,
            response.tree_size,
        )

    def iter_records(
        self, where: RecordFilter | None = None, *, stop: int | None = None
    ) -> Iterator[StoredRecord]:
        """Yield matching records with ``seq < stop``, by seq, a page at a time."""
        token = ""
        while True:
            page = self.records(where, page_size=1000, page_token=token)
            for record in page.records:
                if stop is not None and record.seq >= stop:
                    return
                yield record
            token = page.next_page_token
            if not token:
                return

    def checkpoints(
        self, *, page_size: int = 100, page_token: str = ""
    ) -> CheckpointPage:
        """Fetch one page of checkpoints."""
        response: pb.ListCheckpointsResponse = self._call(
            self._stub.ListCheckpoints,
            pb.ListCheckpointsRequest(page_size=page_size, page_token=page_token),
        )
        return CheckpointPage(
            [checkpoint_from_proto(c) for c in response.checkpoints],
            response.next_page_token,
        )

    def iter_checkpoints(
        self, *, stop: int | None = None
    ) -> Iterator[StoredCheckpoint]:
        """Yield checkpoints with ``tree_size <= stop``, by size."""
        token = ""
        while True:
            page = self.checkpoints(page_size=1000, page_token=token)
            for checkpoint in page.checkpoints:
                if stop is not None and checkpoint.tree_size > stop:
                    return
                yield checkpoint
            token = page.next_page_token
            if not token:
                return

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """Fetch the latest checkpoint, or ``None`` while the log has none."""
        response: pb.GetLatestCheckpointResponse = self._call(
            self._stub.GetLatestCheckpoint, pb.GetLatestCheckpointRequest()
        )
        if not response.HasField("checkpoint"):
            return None
        return checkpoint_from_proto(response.checkpoint)

    def inclusion_proof(self, seq: int, tree_size: int = 0) -> InclusionProof:
        """Fetch the inclusion proof of record ``seq`` (0: latest checkpoint)."""
        response: pb.GetInclusionProofResponse = self._call(
            self._stub.GetInclusionProof,
            pb.GetInclusionProofRequest(seq=seq, tree_size=tree_size),
        )
        return inclusion_from_proto(response)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()
