"""``accord officer``: serve the compliance officer's workbench."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import tomlconf

from ._config import Overrides, SettingsError, load_settings
from ._exit import EXIT_CODE_HELP, ExitCode

__all__ = ["cli"]

cli = typer.Typer(
    name="officer",
    help="The compliance officer's workbench: a read-only web application over "
    "the node's decision log, budgets and policy.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_err = Console(stderr=True, highlight=False, emoji=False)


def _fail(message: str, code: int) -> typer.Exit:
    _err.print(f"error: {message}", markup=False, soft_wrap=True)
    _err.print(
        f"exit {code}: {EXIT_CODE_HELP.get(code, '')}", markup=False, style="dim"
    )
    return typer.Exit(code)


@cli.command("serve")
def serve_command(
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            help="officer.toml, or the node's node.toml (then give --cert and --key).",
            show_default=False,
        ),
    ],
    node: Annotated[
        str | None,
        typer.Option("--node", help="The node's HOST:PORT.", show_default=False),
    ] = None,
    ca: Annotated[
        Path | None,
        typer.Option("--ca", help="The federation CA certificate.", show_default=False),
    ] = None,
    cert: Annotated[
        Path | None,
        typer.Option("--cert", help="The officer's certificate.", show_default=False),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="The officer's private key.", show_default=False),
    ] = None,
    verifier_key: Annotated[
        str | None,
        typer.Option(
            "--verifier-key",
            help="The log's pinned verifier key, or a file holding it.",
            show_default=False,
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="Where the web server listens (default 127.0.0.1:8470).",
            show_default=False,
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="Where the workbench keeps its local copy of the log.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the workbench until SIGTERM or Ctrl-C (bound to localhost by default)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        settings = load_settings(
            config,
            Overrides(
                node=node,
                ca=ca,
                cert=cert,
                key=key,
                verifier_key=verifier_key,
                listen=listen,
                state_dir=state_dir,
            ),
        )
        settings.check_exposure()
    except tomlconf.ConfigError as exc:
        raise _fail(f"invalid configuration: {exc}", ExitCode.CONFIG_INVALID) from None
    except SettingsError as exc:
        code = ExitCode.TLS_INVALID if exc.tls else ExitCode.CONFIG_INVALID
        raise _fail(str(exc), code) from None
    from ._serve import StartupError, open_workbench, serve

    try:
        workbench = open_workbench(settings)
        code = serve(settings, workbench)
    except StartupError as exc:
        raise _fail(exc.message, exc.code) from None
    raise typer.Exit(code)


@cli.command("exit-codes")
def exit_codes_command() -> None:
    """List the workbench's exit codes."""
    for code, text in sorted(EXIT_CODE_HELP.items()):
        typer.echo(f"{code:>4}  {text}")
