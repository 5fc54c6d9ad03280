"""Exceptions raised by the tamper-evident decision log.

The tree::

    * AuditLogError          base class; catch this to handle every failure below
      x MalformedNote        a signed note, checkpoint or verifier key that does not
                             follow C2SP signed-note / tlog-checkpoint syntax
      x MalformedRecord      a decision record whose fields or types are not the
                             canonical record format
      x SignatureInvalid     a note carries no valid signature by the expected key,
                             or a signature by that key fails to verify

``MalformedNote`` and ``MalformedRecord`` are also ``ValueError``s, so building a
``Checkpoint`` or ``DecisionRecord`` from bad values fails the usual way. Failed
Merkle proofs are not exceptions: the ``verify_*`` functions return
``False``, and the offline verifier returns a report.
"""

from __future__ import annotations

__all__ = ["AuditLogError", "MalformedNote", "MalformedRecord", "SignatureInvalid"]


class AuditLogError(Exception):
    """Base class of every error raised by :mod:`policies.auditlog`."""


class MalformedNote(AuditLogError, ValueError):
    """A signed note, checkpoint body or verifier key is not well formed."""


class MalformedRecord(AuditLogError, ValueError):
    """A decision record is not in the canonical record format."""


class SignatureInvalid(AuditLogError):
    """A note lacks a valid signature by the expected key."""
