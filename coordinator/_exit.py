"""Numbered exit codes of the coordinator commands (range 200-299)."""

from __future__ import annotations


class ExitCode:
    """Exit codes of ``accord query`` and the other coordinator commands."""

    SUCCESS = 0
    USAGE = 2
    FEDERATION_INVALID = 200
    TLS_SETUP = 201
    SPEC_INVALID = 202
    NO_NODE_ANSWERED = 203
    NOT_ALL_NODES = 204


EXIT_CODE_HELP: dict[int, str] = {
    ExitCode.SUCCESS: "At least one node contributed; the result names which.",
    ExitCode.USAGE: "The command line was malformed.",
    ExitCode.FEDERATION_INVALID: "The federation file is missing or invalid; the message names file, line and field.",
    ExitCode.TLS_SETUP: "The coordinator's own certificate, key or CA cannot be used (missing, expired, other CA).",
    ExitCode.SPEC_INVALID: "The query does not fit the schema the nodes publish; the message names the field.",
    ExitCode.NO_NODE_ANSWERED: "No node contributed: all were unreachable, refused or failed.",
    ExitCode.NOT_ALL_NODES: "--require-all was given and at least one node did not contribute.",
}
