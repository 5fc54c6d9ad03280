"""Assemble ``accord`` from the node, coordinator, policies and pki command groups."""

from __future__ import annotations

import os

# Flower phones home unless told not to; set before anything imports flwr.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
# gRPC's C core would write its own unstructured lines to stderr (failed handshakes,
# bind errors); Accord reports those itself. Set GRPC_VERBOSITY to see them anyway.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import coordinator
import coordinator.training
import node
import officer
import pki
import policies
import policies.auditlog

app = typer.Typer(
    name="accord",
    help="Accord: federated, policy-governed data sharing between security agencies.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"accord {node.node_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_version,
            is_eager=True,
            help="Show the version.",
        ),
    ] = False,
) -> None:
    """Accord: federated, policy-governed data sharing between security agencies."""


@app.command("demo")
def demo_command(
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            help="Keep the federation in this folder instead of a temporary one.",
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Run a three-agency federation on this machine and query it."""
    from demo import run_demo

    if fmt not in ("table", "json"):
        raise typer.BadParameter("expected table or json", param_hint="--format")
    code = run_demo(
        out=Console(highlight=False, emoji=False),
        err=Console(stderr=True, highlight=False, emoji=False),
        workdir=workdir,
        as_json=fmt == "json",
    )
    raise typer.Exit(code)


app.add_typer(node.cli, name="node")
app.add_typer(pki.cli, name="pki")
app.add_typer(policies.cli, name="policy")
app.add_typer(policies.auditlog.cli, name="audit")
app.add_typer(officer.cli, name="officer")
app.registered_commands.extend(coordinator.cli.registered_commands)
app.registered_commands.extend(coordinator.training.cli.registered_commands)
app.registered_groups.extend(coordinator.training.cli.registered_groups)


def main() -> None:
    """Entry point of the ``accord`` console script."""
    app()
