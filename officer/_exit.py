"""Numbered exit codes of ``accord officer`` (command-line range 40-49)."""

from __future__ import annotations

__all__ = ["EXIT_CODE_HELP", "ExitCode"]


class ExitCode:
    """Exit codes of ``accord officer serve``."""

    SUCCESS = 0
    USAGE = 2
    CONFIG_INVALID = 40
    TLS_INVALID = 41
    NODE_UNAVAILABLE = 42
    BIND_FAILED = 43


EXIT_CODE_HELP: dict[int, str] = {
    ExitCode.SUCCESS: "The workbench stopped after a shutdown signal.",
    ExitCode.USAGE: "The command line was malformed.",
    ExitCode.CONFIG_INVALID: (
        "officer.toml (or node.toml) is missing or invalid, or a setting the "
        "workbench needs is missing; the message names file, line and field."
    ),
    ExitCode.TLS_INVALID: (
        "The officer's TLS kit or the web server's certificate cannot be used "
        "(missing, not an officer certificate, other CA), or the listen address "
        "is not loopback and [web.tls] is missing."
    ),
    ExitCode.NODE_UNAVAILABLE: (
        "The node is unreachable, refused the officer's certificate, or its log key "
        "is not the pinned one."
    ),
    ExitCode.BIND_FAILED: "The web listen address could not be bound.",
}
