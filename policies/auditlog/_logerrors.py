"""Errors of the stored decision log, its reading API and its exports.

They extend the tree of :mod:`policies.auditlog._errors`::

    * AuditLogError            (policies.auditlog._errors)
      x LogUnavailable         the log cannot be written or read now (database
                               down, commit failed); nothing was acknowledged
        x LogClosed            the log was closed; it takes no more records
        x LogMissing           a reader found no log: no database file, or a
                               database without the log's tables or row
      x LogCorrupted           at start, the stored log fails its own checks
                               (gap, broken chain head, checkpoint mismatch);
                               the writer refuses to write on top of it
      x LogKeyError            a log key file cannot be used, or the log was
                               created under another origin or key
      x InvalidPageToken       a page token that this log did not issue for
                               this query (also ``ValueError``)
      x OutOfRange             a sequence number or tree size the log does not
                               have, or has not signed (also ``ValueError``)
      x ExportInvalid          a file that is not a decision-log export
                               (also ``ValueError``)

Messages name the file, field or number concerned and never a secret.
"""

from __future__ import annotations

from ._errors import AuditLogError

__all__ = [
    "ExportInvalid",
    "InvalidPageToken",
    "LogClosed",
    "LogCorrupted",
    "LogKeyError",
    "LogMissing",
    "LogUnavailable",
    "OutOfRange",
]


class LogUnavailable(AuditLogError):
    """The log cannot be written or read now; the record was not acknowledged."""


class LogClosed(LogUnavailable):
    """The log was closed and takes no more records."""


class LogMissing(LogUnavailable):
    """There is no decision log where a reader looked (nothing was created)."""


class LogCorrupted(AuditLogError):
    """The stored log fails its own consistency checks at start."""


class LogKeyError(AuditLogError):
    """A log key cannot be used, or does not match the stored log."""


class InvalidPageToken(AuditLogError, ValueError):
    """A page token was not issued by this log for this query."""


class OutOfRange(AuditLogError, ValueError):
    """A sequence number or tree size is beyond what the log holds or has signed."""


class ExportInvalid(AuditLogError, ValueError):
    """A file is not a decision-log export in the documented format."""
