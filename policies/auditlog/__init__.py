"""Tamper-evident decision log: hash chain, RFC 6962 Merkle tree, signed checkpoints.

Pure and I/O-free: callers read and write records and notes; this package encodes,
hashes, signs and verifies them (DESIGN.md, decision D6).
"""

from ._errors import AuditLogError as AuditLogError
from ._errors import MalformedNote as MalformedNote
from ._errors import MalformedRecord as MalformedRecord
from ._errors import SignatureInvalid as SignatureInvalid
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
from ._record import DECISIONS as DECISIONS
from ._record import GENESIS_PREV_HASH as GENESIS_PREV_HASH
from ._record import OPERATIONS as OPERATIONS
from ._record import DecisionRecord as DecisionRecord
from ._verify import VerificationReport as VerificationReport
from ._verify import verify_log as verify_log

__all__ = [
    "DECISIONS",
    "EMPTY_ROOT",
    "GENESIS_PREV_HASH",
    "HASH_SIZE",
    "MAX_SIGNATURES",
    "OPERATIONS",
    "AuditLogError",
    "Checkpoint",
    "DecisionRecord",
    "MalformedNote",
    "MalformedRecord",
    "MerkleTree",
    "NoteSignature",
    "SignatureInvalid",
    "VerificationReport",
    "add_signature",
    "encode_verifier_key",
    "key_id",
    "leaf_hash",
    "node_hash",
    "parse_note",
    "parse_verifier_key",
    "root",
    "sign_checkpoint",
    "sign_note",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
    "verify_note",
]
