"""Conversions between the log's dataclasses and ``accord.v1`` AuditService messages.

Symmetric pairs, used by the node's ``AuditServicer`` (``*_to_proto``) and by the
``accord audit`` client (``*_from_proto``); proto messages go no further.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from accord.v1 import audit_service_pb2 as pb

from ._reader import ConsistencyProof, InclusionProof
from ._store import RecordFilter, StoredCheckpoint, StoredRecord

__all__ = [
    "checkpoint_from_proto",
    "checkpoint_to_proto",
    "consistency_from_proto",
    "consistency_to_proto",
    "filter_from_request",
    "filter_to_request",
    "inclusion_from_proto",
    "inclusion_to_proto",
    "record_from_proto",
    "record_to_proto",
]


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment)
    return ts


def _datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def record_to_proto(record: StoredRecord) -> pb.AuditRecord:
    """Convert a stored record to an ``AuditRecord``."""
    return pb.AuditRecord(
        seq=record.seq,
        canonical_json=record.canonical_json,
        chain_hash=record.chain_hash,
        leaf_hash=record.leaf_hash,
        time=_timestamp(record.time),
        requester=record.requester,
        decision=record.decision,
        dataset=record.dataset,
        purpose=record.purpose,
    )


def record_from_proto(message: pb.AuditRecord) -> StoredRecord:
    """Convert an ``AuditRecord`` to a stored record (not verified)."""
    return StoredRecord(
        seq=message.seq,
        time=_datetime(message.time),
        requester=message.requester,
        purpose=message.purpose,
        decision=message.decision,
        dataset=message.dataset,
        canonical_json=message.canonical_json,
        chain_hash=message.chain_hash,
        leaf_hash=message.leaf_hash,
    )


def checkpoint_to_proto(checkpoint: StoredCheckpoint) -> pb.Checkpoint:
    """Convert a stored checkpoint to a ``Checkpoint`` message."""
    return pb.Checkpoint(
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash,
        note=checkpoint.note,
        time=_timestamp(checkpoint.time),
    )


def checkpoint_from_proto(message: pb.Checkpoint) -> StoredCheckpoint:
    """Convert a ``Checkpoint`` message to a stored checkpoint (not verified)."""
    return StoredCheckpoint(
        tree_size=message.tree_size,
        root_hash=message.root_hash,
        note=message.note,
        time=_datetime(message.time),
    )


def filter_to_request(
    where: RecordFilter, *, page_size: int = 0, page_token: str = ""
) -> pb.ListRecordsRequest:
    """Build a ``ListRecordsRequest`` for a filter and page."""
    request = pb.ListRecordsRequest(
        page_size=page_size,
        page_token=page_token,
        requester=where.requester or "",
        purpose=where.purpose or "",
        decision=where.decision or "",
        dataset=where.dataset or "",
    )
    if where.since is not None:
        request.start_time.CopyFrom(_timestamp(where.since))
    if where.until is not None:
        request.end_time.CopyFrom(_timestamp(where.until))
    return request


def filter_from_request(request: pb.ListRecordsRequest) -> RecordFilter:
    """Read the filter of a ``ListRecordsRequest`` (empty strings: no filter)."""
    return RecordFilter(
        requester=request.requester or None,
        purpose=request.purpose or None,
        decision=request.decision or None,
        dataset=request.dataset or None,
        since=_datetime(request.start_time) if request.HasField("start_time") else None,
        until=_datetime(request.end_time) if request.HasField("end_time") else None,
    )


def inclusion_to_proto(proof: InclusionProof) -> pb.GetInclusionProofResponse:
    """Convert an inclusion proof to its response message."""
    return pb.GetInclusionProofResponse(
        record=record_to_proto(proof.record),
        tree_size=proof.tree_size,
        hashes=proof.hashes,
        root_hash=proof.root_hash,
    )


def inclusion_from_proto(message: pb.GetInclusionProofResponse) -> InclusionProof:
    """Convert an inclusion-proof response (not verified)."""
    return InclusionProof(
        record=record_from_proto(message.record),
        tree_size=message.tree_size,
        hashes=list(message.hashes),
        root_hash=message.root_hash,
    )


def consistency_to_proto(proof: ConsistencyProof) -> pb.GetConsistencyProofResponse:
    """Convert a consistency proof to its response message (roots are not sent)."""
    return pb.GetConsistencyProofResponse(
        first_size=proof.first_size,
        second_size=proof.second_size,
        hashes=proof.hashes,
    )


def consistency_from_proto(
    message: pb.GetConsistencyProofResponse, first_root: bytes, second_root: bytes
) -> ConsistencyProof:
    """Convert a consistency-proof response, with the roots the caller trusts."""
    return ConsistencyProof(
        first_size=message.first_size,
        second_size=message.second_size,
        hashes=list(message.hashes),
        first_root=first_root,
        second_root=second_root,
    )
