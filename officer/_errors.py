"""The workbench's errors, each mapped to one HTTP status by the web application.

::

    * OfficerError
      x BadRequest        -> 400, names the query parameter (a filter, a page)
      x NotFound          -> 404 (no such record, policy version or requester)
      x NodeUnavailable   -> 502 (the node is unreachable, refused the officer's
                                  certificate, or its answer could not be used)
      x IndexBroken       -> 502 (the node served records that contradict those it
                                  served before: the local copy stops growing)
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "IndexBroken",
    "NodeUnavailable",
    "NotFound",
    "OfficerError",
]


class OfficerError(Exception):
    """Base of the workbench's errors.

    Parameters
    ----------
    message : str
        One line for the officer, never a data value.
    """

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(OfficerError):
    """A query parameter is malformed.

    Parameters
    ----------
    field : str
        The parameter.
    message : str
        What was expected.
    """

    status_code = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFound(OfficerError):
    """What the page names does not exist (yet)."""

    status_code = 404


class NodeUnavailable(OfficerError):
    """The node could not be read: unreachable, refused, or a malformed answer."""

    status_code = 502


class IndexBroken(OfficerError):
    """The node's answers contradict what it served before (seq gap, changed record)."""

    status_code = 502
