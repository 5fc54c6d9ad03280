"""Tamper-evident decision log: hash chain, RFC 6962 Merkle tree, signed checkpoints.

The core (records, Merkle tree, signed notes, the offline verifier) is pure and
I/O-free: it encodes, hashes, signs and verifies (DESIGN.md, decision D6). Around
it: :class:`DecisionLog`, the node's durable, group-committed log in SQLite or
PostgreSQL (:class:`SqlDecisionLog`) or memory (:class:`MemoryDecisionLog`), its
reader, JSONL/CSV exports, the log key on disk, and the ``accord audit`` command
group (``cli`` and its ``EXIT_CODES``; loaded on first access so that a node does
not import typer, and left out of ``__all__``).
"""

from typing import TYPE_CHECKING, Any

from ._errors import AuditLogError as AuditLogError
from ._errors import MalformedNote as MalformedNote
from ._errors import MalformedRecord as MalformedRecord
from ._errors import SignatureInvalid as SignatureInvalid
from ._export import CSV_COLUMNS as CSV_COLUMNS
from ._export import EXPORT_FORMAT as EXPORT_FORMAT
from ._export import EXPORT_VERSION as EXPORT_VERSION
from ._export import ExportSummary as ExportSummary
from ._export import ExportVerification as ExportVerification
from ._export import LogSource as LogSource
from ._export import export_log as export_log
from ._export import read_note_file as read_note_file
from ._export import record_payload as record_payload
from ._export import verify_export as verify_export
from ._keys import load_or_create_log_key as load_or_create_log_key
from ._keys import log_origin as log_origin
from ._keys import log_verifier_key as log_verifier_key
from ._log import DecisionFields as DecisionFields
from ._log import DecisionLog as DecisionLog
from ._log import MemoryDecisionLog as MemoryDecisionLog
from ._log import SqlDecisionLog as SqlDecisionLog
from ._logerrors import ExportInvalid as ExportInvalid
from ._logerrors import InvalidPageToken as InvalidPageToken
from ._logerrors import LogClosed as LogClosed
from ._logerrors import LogCorrupted as LogCorrupted
from ._logerrors import LogKeyError as LogKeyError
from ._logerrors import LogMissing as LogMissing
from ._logerrors import LogUnavailable as LogUnavailable
from ._logerrors import OutOfRange as OutOfRange
from ._merkle import EMPTY_ROOT as EMPTY_ROOT
from ._merkle import HASH_SIZE as HASH_SIZE
from ._merkle import MerkleTree as MerkleTree
from ._merkle import leaf_hash as leaf_hash
from ._merkle import node_hash as node_hash
from ._merkle import root as root
from ._merkle import verify_consistency as verify_consistency
from ._merkle import verify_inclusion as verify_inclusion
from ._note import MAX_SIGNATURES as MAX_SIGNATURES
from ._note import Checkpoint as Checkpoint
from ._note import NoteSignature as NoteSignature
from ._note import add_signature as add_signature
from ._note import encode_verifier_key as encode_verifier_key
from ._note import key_id as key_id
from ._note import parse_note as parse_note
from ._note import parse_verifier_key as parse_verifier_key
from ._note import sign_checkpoint as sign_checkpoint
from ._note import sign_note as sign_note
from ._note import verify_note as verify_note
from ._pages import DEFAULT_PAGE_SIZE as DEFAULT_PAGE_SIZE
from ._pages import MAX_PAGE_SIZE as MAX_PAGE_SIZE
from ._reader import CheckpointPage as CheckpointPage
from ._reader import Clock as Clock
from ._reader import ConsistencyProof as ConsistencyProof
from ._reader import DecisionLogReader as DecisionLogReader
from ._reader import InclusionProof as InclusionProof
from ._reader import RecordPage as RecordPage
from ._reader import open_log_reader as open_log_reader
from ._record import DECISIONS as DECISIONS
from ._record import GENESIS_PREV_HASH as GENESIS_PREV_HASH
from ._record import OPERATIONS as OPERATIONS
from ._record import DecisionRecord as DecisionRecord
from ._sqlstore import SqlLogStore as SqlLogStore
from ._store import LogInfo as LogInfo
from ._store import LogStore as LogStore
from ._store import MemoryLogStore as MemoryLogStore
from ._store import RecordFilter as RecordFilter
from ._store import StoredCheckpoint as StoredCheckpoint
from ._store import StoredRecord as StoredRecord
from ._verify import VerificationReport as VerificationReport
from ._verify import verify_log as verify_log

if TYPE_CHECKING:
    from ._cli import EXIT_CODES as EXIT_CODES
    from ._cli import cli as cli

_CLI_NAMES = frozenset({"EXIT_CODES", "cli"})


def __getattr__(name: str) -> Any:
    """Load the command group on first access."""
    if name in _CLI_NAMES:
        from . import _cli

        return getattr(_cli, name)
    raise AttributeError(f"module 'policies.auditlog' has no attribute {name!r}")


__all__ = [
    "CSV_COLUMNS",
    "DECISIONS",
    "DEFAULT_PAGE_SIZE",
    "EMPTY_ROOT",
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "GENESIS_PREV_HASH",
    "HASH_SIZE",
    "MAX_PAGE_SIZE",
    "MAX_SIGNATURES",
    "OPERATIONS",
    "AuditLogError",
    "Checkpoint",
    "CheckpointPage",
    "Clock",
    "ConsistencyProof",
    "DecisionFields",
    "DecisionLog",
    "DecisionLogReader",
    "DecisionRecord",
    "ExportInvalid",
    "ExportSummary",
    "ExportVerification",
    "InclusionProof",
    "InvalidPageToken",
    "LogClosed",
    "LogCorrupted",
    "LogInfo",
    "LogKeyError",
    "LogMissing",
    "LogSource",
    "LogStore",
    "LogUnavailable",
    "MalformedNote",
    "MalformedRecord",
    "MemoryDecisionLog",
    "MemoryLogStore",
    "MerkleTree",
    "NoteSignature",
    "OutOfRange",
    "RecordFilter",
    "RecordPage",
    "SignatureInvalid",
    "SqlDecisionLog",
    "SqlLogStore",
    "StoredCheckpoint",
    "StoredRecord",
    "VerificationReport",
    "add_signature",
    "encode_verifier_key",
    "export_log",
    "key_id",
    "leaf_hash",
    "load_or_create_log_key",
    "log_origin",
    "log_verifier_key",
    "node_hash",
    "open_log_reader",
    "parse_note",
    "parse_verifier_key",
    "read_note_file",
    "record_payload",
    "root",
    "sign_checkpoint",
    "sign_note",
    "verify_consistency",
    "verify_export",
    "verify_inclusion",
    "verify_log",
    "verify_note",
]
