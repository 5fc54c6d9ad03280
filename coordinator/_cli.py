"""Coordinator commands: ``accord query`` and ``accord status``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import tomlconf
from coordinator._client import Coordinator
from coordinator._errors import (
    CoordinatorError,
    NoNodeAnswered,
    SpecError,
    TlsSetupError,
)
from coordinator._exit import EXIT_CODE_HELP, ExitCode
from coordinator._federation import FederationConfig, load_federation
from coordinator._render import (
    budget_rows,
    budget_table,
    outcome_json,
    plan_table,
    render_result,
    result_json,
)
from coordinator._spec import QuerySpec, parse_aggregation, parse_binning, parse_filter
from coordinator._specfile import load_spec

cli = typer.Typer(
    name="coordinator",
    help="Run federated queries.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_out = Console(highlight=False, emoji=False)
_err = Console(stderr=True, highlight=False, emoji=False)

FederationOption = Annotated[
    Path,
    typer.Option(
        "--federation",
        "-f",
        help="federation.toml: our TLS files and the nodes.",
        show_default=False,
    ),
]
FormatOption = Annotated[str, typer.Option("--format", help="table or json.")]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure", help="Talk plaintext gRPC to --insecure nodes (unsafe)."
    ),
]


def _fail(message: str, code: int) -> typer.Exit:
    _err.print(f"[red]error:[/red] {message}", soft_wrap=True)
    _err.print(
        f"[dim]exit {code}: {EXIT_CODE_HELP.get(code, '')}[/dim]", soft_wrap=True
    )
    return typer.Exit(code)


def _federation(path: Path) -> FederationConfig:
    try:
        return load_federation(path)
    except tomlconf.ConfigError as exc:
        raise _fail(
            f"invalid federation file: {exc}", ExitCode.FEDERATION_INVALID
        ) from None


def _coordinator(path: Path, insecure: bool, deadline: float | None) -> Coordinator:
    config = _federation(path)
    if insecure:
        _err.print(
            "[bold yellow]warning:[/bold yellow] --insecure: plaintext gRPC, no TLS"
        )
    try:
        return Coordinator.from_config(config, insecure=insecure, deadline=deadline)
    except TlsSetupError as exc:
        raise _fail(str(exc), ExitCode.TLS_SETUP) from None


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json"):
        raise _fail("--format: expected table or json", ExitCode.USAGE)


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@cli.command("query")
def query_command(
    federation: FederationOption,
    spec_file: Annotated[
        Path | None,
        typer.Argument(help="A query spec (YAML or JSON); or use the options below."),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Dataset id.", show_default=False),
    ] = None,
    aggregate: Annotated[
        list[str] | None,
        typer.Option(
            "--aggregate",
            "-a",
            help="count, sum:COL, mean:COL, variance:COL, stddev:COL, "
            "histogram:COL:EDGES, quantile:COL:LEVELS:GRID, median:COL:GRID "
            "(repeatable; default count).",
        ),
    ] = None,
    bins: Annotated[
        list[str] | None,
        typer.Option(
            "--bin", help="Group by a number column binned: COL:EDGE,EDGE,..."
        ),
    ] = None,
    epsilon: Annotated[
        float | None, typer.Option("--epsilon", help="Pure-DP epsilon for this query.")
    ] = None,
    rho: Annotated[
        float | None, typer.Option("--rho", help="zCDP rho for this query.")
    ] = None,
    exact: Annotated[
        bool, typer.Option("--exact", help="Exact answers, where policies allow them.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Plan only: no data touched, no budget spent."),
    ] = False,
    secure_aggregation: Annotated[
        bool,
        typer.Option("--secure-aggregation", help="Learn only the cross-agency total."),
    ] = False,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            "-w",
            help="Filter: COL=VALUE, COL>=N, 'COL in a,b' (repeatable).",
        ),
    ] = None,
    group_by: Annotated[
        list[str] | None,
        typer.Option("--group-by", "-g", help="Group by a category column."),
    ] = None,
    purpose: Annotated[
        str, typer.Option("--purpose", help="Declared purpose.")
    ] = "statistics",
    legal_basis: Annotated[
        str, typer.Option("--legal-basis", help="Legal basis.")
    ] = "",
    justification: Annotated[str, typer.Option("--justification", help="Why.")] = "",
    on_behalf_of: Annotated[
        str, typer.Option("--on-behalf-of", help="The person you act for.")
    ] = "",
    deadline: Annotated[
        float | None,
        typer.Option("--deadline", help="Seconds each node has to answer."),
    ] = None,
    require_all: Annotated[
        bool,
        typer.Option("--require-all", help="Exit 204 unless every node contributed."),
    ] = False,
    fmt: FormatOption = "table",
    insecure: InsecureOption = False,
) -> None:
    """Run one aggregate query on every node and combine the answers."""
    _check_format(fmt)
    try:
        if spec_file is not None:
            spec = load_spec(spec_file)
        elif dataset is None:
            raise SpecError("--dataset", "give a spec file or --dataset")
        else:
            spec = QuerySpec(
                dataset=dataset,
                aggregations=tuple(
                    parse_aggregation(a) for a in aggregate or ["count"]
                ),
                filters=tuple(parse_filter(w) for w in where or ()),
                group_by=tuple(group_by or ()),
                binned_group_by=tuple(parse_binning(b) for b in bins or ()),
                purpose=purpose,
                legal_basis=legal_basis,
                justification=justification,
                on_behalf_of=on_behalf_of,
                epsilon=epsilon,
                rho=rho,
                exact=exact,
                secure_aggregation=secure_aggregation,
            )
        if dry_run:
            spec = dataclasses.replace(spec, dry_run=True)
    except SpecError as exc:
        raise _fail(str(exc), ExitCode.SPEC_INVALID) from None
    with _coordinator(federation, insecure, deadline) as coordinator:
        try:
            result = coordinator.query(spec)
        except NoNodeAnswered as exc:
            raise _fail(str(exc), ExitCode.NO_NODE_ANSWERED) from None
        except SpecError as exc:
            raise _fail(str(exc), ExitCode.SPEC_INVALID) from None
        except CoordinatorError as exc:  # pragma: no cover - other coordinator errors
            raise _fail(str(exc), ExitCode.NO_NODE_ANSWERED) from None
    if spec.dry_run:
        if fmt == "json":
            _emit_json([outcome_json(o) for o in result.outcomes])
        else:
            _out.print(plan_table(result.outcomes))
        return
    if fmt == "json":
        _emit_json(result_json(result))
    else:
        _out.print(render_result(result))
    if not result.contributors:
        raise _fail("no node contributed to the result", ExitCode.NO_NODE_ANSWERED)
    if require_all and len(result.contributors) < len(result.outcomes):
        raise _fail("not every node contributed", ExitCode.NOT_ALL_NODES)


@cli.command("budget")
def budget_command(
    federation: FederationOption,
    purpose: Annotated[
        str, typer.Option("--purpose", help="Per-purpose budgets: this purpose only.")
    ] = "",
    requester: Annotated[
        str,
        typer.Option("--requester", help="Officers: another requester's SAN URI."),
    ] = "",
    deadline: Annotated[
        float | None,
        typer.Option("--deadline", help="Seconds each node has to answer."),
    ] = None,
    fmt: FormatOption = "table",
    insecure: InsecureOption = False,
) -> None:
    """Show the privacy budget left at every node."""
    _check_format(fmt)
    with _coordinator(federation, insecure, deadline) as coordinator:
        outcomes = coordinator.budgets(requester=requester, purpose=purpose)
    if fmt == "json":
        _emit_json(budget_rows(outcomes))
    else:
        _out.print(budget_table(outcomes))
    if not any(o.ok for o in outcomes):
        raise _fail("no node answered", ExitCode.NO_NODE_ANSWERED)


@cli.command("status")
def status_command(
    federation: FederationOption,
    deadline: Annotated[
        float | None,
        typer.Option("--deadline", help="Seconds each node has to answer."),
    ] = None,
    fmt: FormatOption = "table",
    insecure: InsecureOption = False,
) -> None:
    """Show every node of the federation: reachable, identity, datasets, policy."""
    _check_format(fmt)
    with _coordinator(federation, insecure, deadline) as coordinator:
        outcomes = coordinator.node_info()
    if fmt == "json":
        rows = []
        for o in outcomes:
            entry = outcome_json(o)
            if o.response is not None:
                r = o.response
                entry.update(
                    identity=r.identity,
                    version=r.version,
                    policy_digest=r.policy_digest,
                    datasets=[d.dataset_id for d in r.datasets],
                    caller_identity=r.caller_identity,
                )
            rows.append(entry)
        _emit_json(rows)
    else:
        table = Table(title="federation nodes", title_justify="left")
        for column in ("agency", "address", "status", "identity", "datasets", "policy"):
            table.add_column(column, overflow="fold")
        for o in outcomes:
            info = o.response
            if info is None:
                table.add_row(o.agency, o.address, o.status, o.message, "", "")
                continue
            table.add_row(
                o.agency,
                o.address,
                o.status,
                info.identity,
                ", ".join(d.dataset_id for d in info.datasets),
                info.policy_digest[:12],
            )
        _out.print(table)
    if not any(o.ok for o in outcomes):
        raise typer.Exit(ExitCode.NO_NODE_ANSWERED)
