"""Errors of the coordinator.

* CoordinatorError       -- the coordinator cannot run the request
  * SpecError            -- the query spec is malformed (names the option or field)
  * SchemaMismatch       -- the spec does not fit the schema the nodes publish
  * TlsSetupError        -- our own certificate, key or CA cannot be used
  * NoNodeAnswered       -- every node failed or refused

Per-node failures are not exceptions: they are reported, per node, in the result.
"""

from __future__ import annotations


class CoordinatorError(Exception):
    """The coordinator cannot run the request."""


class SpecError(CoordinatorError):
    """The query spec is malformed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class SchemaMismatch(SpecError):
    """The spec names a column or value that the nodes' published schema rejects."""


class TlsSetupError(CoordinatorError):
    """The coordinator's own TLS material cannot be used."""


class NoNodeAnswered(CoordinatorError):
    """No node contributed to the result."""
