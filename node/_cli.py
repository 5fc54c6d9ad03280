"""``accord node``: run and check an agency node."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import tomlconf
from node._config import NodeConfig, load_node_config
from node._errors import NodeStartupError
from node._exit import EXIT_CODE_HELP, ExitCode
from node._logging import LogFormat, configure_logging
from node._server import check_node, create_server, serve

cli = typer.Typer(
    name="node",
    help="Run an agency node beside its data.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_err = Console(stderr=True, highlight=False, emoji=False)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="The node's node.toml.", show_default=False),
]


def _fail(message: str, code: int) -> typer.Exit:
    _err.print(f"[red]error:[/red] {message}", markup=True, soft_wrap=True)
    _err.print(
        f"[dim]exit {code}: {EXIT_CODE_HELP.get(code, '')}[/dim]", soft_wrap=True
    )
    return typer.Exit(code)


def _load(config: Path) -> NodeConfig:
    try:
        return load_node_config(config)
    except tomlconf.ConfigError as exc:
        raise _fail(
            f"invalid node configuration: {exc}", ExitCode.CONFIG_INVALID
        ) from None


def _follow_parent() -> None:
    """Under a supervisor that set ACCORD_PARENT_PID, stop when that process dies.

    Linux delivers SIGTERM to the node when its parent exits, even by SIGKILL, so a
    crashed supervisor (``accord demo``, a test) never leaves a node behind.
    """
    expected = os.environ.get("ACCORD_PARENT_PID", "")
    if not expected.isdigit() or not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != int(expected):  # the parent died before prctl took effect
        raise typer.Exit(ExitCode.SUCCESS)


@cli.command("serve")
def serve_command(
    config: ConfigOption,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure", help="Serve plaintext gRPC without mutual TLS (unsafe)."
        ),
    ] = False,
    enable_reflection: Annotated[
        bool, typer.Option("--enable-reflection", help="Serve gRPC server reflection.")
    ] = False,
    listen: Annotated[
        str | None, typer.Option("--listen", help="Override node.listen (host:port).")
    ] = None,
    log_format: Annotated[
        str, typer.Option("--log-format", help="Logs on stderr: text or json.")
    ] = "text",
    ready_file: Annotated[
        Path | None,
        typer.Option(
            "--ready-file", help="Write address, port and pid here once serving."
        ),
    ] = None,
) -> None:
    """Serve the node until SIGTERM or SIGINT."""
    if log_format not in ("text", "json"):
        raise _fail("--log-format: expected text or json", ExitCode.USAGE)
    _follow_parent()
    fmt: LogFormat = "json" if log_format == "json" else "text"
    configure_logging(fmt)
    cfg = _load(config)
    if insecure:
        _err.print(
            "[bold yellow]warning:[/bold yellow] --insecure: plaintext gRPC, no client "
            "certificates; any caller on the network can query this node",
            soft_wrap=True,
        )
    try:
        node = create_server(
            cfg, insecure=insecure, enable_reflection=enable_reflection, listen=listen
        )
    except NodeStartupError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    raise typer.Exit(serve(node, ready_file=ready_file))


@cli.command("check")
def check_command(config: ConfigOption) -> None:
    """Check node.toml, its policy, certificates and data sources, then exit."""
    cfg = _load(config)
    try:
        report = check_node(cfg)
    except NodeStartupError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    state = (
        "no state yet (made at the first start)"
        if report.log_records is None
        else f"decision log of {report.log_records} records, {report.log_signed} signed"
    )
    _err.print(
        f"[green]ok:[/green] node {cfg.node.agency}/{cfg.node.name}: "
        f"{report.datasets} dataset(s), policy {cfg.policy.file.name}; {state}",
        soft_wrap=True,
    )


@cli.command("exit-codes")
def exit_codes_command() -> None:
    """List the node's exit codes."""
    for code, text in sorted(EXIT_CODE_HELP.items()):
        typer.echo(f"{code:>4}  {text}")
