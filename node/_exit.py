"""Numbered exit codes of ``accord node serve`` (node range 100-199)."""

from __future__ import annotations


class ExitCode:
    """Exit codes of the node process."""

    SUCCESS = 0
    USAGE = 2
    CONFIG_INVALID = 100
    TLS_INVALID = 101
    SOURCE_INVALID = 102
    BIND_FAILED = 103
    POLICY_INVALID = 104
    STATE_INVALID = 105


EXIT_CODE_HELP: dict[int, str] = {
    ExitCode.SUCCESS: "The node stopped after a shutdown signal.",
    ExitCode.USAGE: "The command line was malformed.",
    ExitCode.CONFIG_INVALID: "node.toml is missing or invalid; the message names file, line and field.",
    ExitCode.TLS_INVALID: "The node's certificate, key or CA is missing, expired or inconsistent.",
    ExitCode.SOURCE_INVALID: "A dataset's source cannot be opened or does not match its declared columns.",
    ExitCode.BIND_FAILED: "The listen address could not be bound (in use or not local).",
    ExitCode.POLICY_INVALID: "The policy file is missing or invalid; the message names file, line and field.",
    ExitCode.STATE_INVALID: "The node's state database cannot be opened.",
}
