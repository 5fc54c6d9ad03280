"""``accord policy``: check a policy file, explain a decision, publish the schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console

import tomlconf
from policies._evaluate import evaluate
from policies._load import LoadedPolicy, load_policy
from policies._report import decision_report
from policies._requestfile import load_request
from policies._schema import SCHEMA_PATH, policy_schema_text
from policies._summary import header_lines, summarise

EXIT_POLICY_INVALID: Final = 1
EXIT_USAGE: Final = 2
EXIT_CODES: Final[dict[int, str]] = {
    EXIT_POLICY_INVALID: (
        "The policy file has errors (each line: file:line:column: field: what was "
        "expected), or the published schema is out of date."
    ),
    EXIT_USAGE: (
        "The command was used wrongly: a missing file, a bad option, or a request "
        "file that does not describe a request."
    ),
}

cli = typer.Typer(
    name="policy",
    help="Check, explain and publish declared sharing policies.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class OutputFormat(StrEnum):
    """How a command prints its result."""

    table = "table"
    json = "json"


PolicyFile = Annotated[
    Path,
    typer.Argument(
        exists=True,
        dir_okay=False,
        help="The policy file (TOML).",
        show_default=False,
    ),
]
FormatOption = Annotated[
    OutputFormat, typer.Option("--format", help="table (for people) or json.")
]


def _consoles() -> tuple[Console, Console]:
    return (
        Console(highlight=False, emoji=False, soft_wrap=True),
        Console(stderr=True, highlight=False, emoji=False, soft_wrap=True),
    )


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _problem_data(problem: tomlconf.Problem) -> dict[str, Any]:
    return {
        "file": str(problem.file),
        "line": problem.line,
        "column": problem.column,
        "field": problem.field,
        "message": problem.message,
    }


def _fail(
    exc: tomlconf.ConfigError, code: int, fmt: OutputFormat, *, what: str
) -> typer.Exit:
    """Print every problem of ``exc`` (stdout: it is the result) and return the exit."""
    out, err = _consoles()
    if fmt is OutputFormat.json:
        _print_json(
            {"valid": False, "problems": [_problem_data(p) for p in exc.problems]}
        )
    else:
        for problem in exc.problems:
            out.print(str(problem), markup=False)
    count = len(exc.problems)
    err.print(
        f"{what}: {count} problem{'' if count == 1 else 's'}; exit {code}: "
        f"{EXIT_CODES[code]}",
        markup=False,
    )
    return typer.Exit(code)


def _load(file: Path, fmt: OutputFormat) -> LoadedPolicy:
    try:
        return load_policy(file)
    except tomlconf.ConfigError as exc:
        raise _fail(exc, EXIT_POLICY_INVALID, fmt, what="invalid policy") from None


@cli.command("check")
def check_command(file: PolicyFile, fmt: FormatOption = OutputFormat.table) -> None:
    """Validate FILE: every error at once, or a summary of who may do what."""
    loaded = _load(file, fmt)
    policy = loaded.policy
    if fmt is OutputFormat.json:
        _print_json(
            {
                "valid": True,
                "file": str(file),
                "digest": loaded.digest,
                "summary": summarise(policy),
                "policy": policy.model_dump(mode="json"),
            }
        )
        return
    out, _ = _consoles()
    out.print(f"{file}: valid", markup=False)
    for line in header_lines(policy):
        out.print(f"  {line}", markup=False)
    out.print(f"  sha256 {loaded.digest}", markup=False)
    for line in summarise(policy):
        out.print(f"  - {line}", markup=False)


def _parse_at(at: str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        when = None
    if when is None or when.utcoffset() is None:
        raise typer.BadParameter(
            "expected a date-time with a UTC offset, e.g. 2026-06-01T12:00:00Z",
            param_hint="--at",
        )
    return when


@cli.command("explain")
def explain_command(
    file: PolicyFile,
    request: Annotated[
        Path,
        typer.Option(
            "--request",
            "-r",
            exists=True,
            dir_okay=False,
            help="The request, as JSON (see docs/policy.md).",
            show_default=False,
        ),
    ],
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Decide at this time (RFC 3339 with offset); default: now.",
            show_default=False,
        ),
    ] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Dry-run REQUEST against FILE: the decision, the rule and the budget charges.

    No data is touched and no budget is spent.
    """
    when = _parse_at(at)
    loaded = _load(file, fmt)
    try:
        access = load_request(request)
    except tomlconf.ConfigError as exc:
        raise _fail(exc, EXIT_USAGE, fmt, what="invalid request") from None
    decision = evaluate(loaded.policy, access, digest=loaded.digest, now=when)
    report = decision_report(decision, at=when, delta=loaded.policy.policy.delta)
    if fmt is OutputFormat.json:
        _print_json(report)
    else:
        _print_explanation(report)


def _print_explanation(report: dict[str, Any]) -> None:
    out, _ = _consoles()
    verdict = "ALLOW" if report["allowed"] else "DENY"
    out.print(f"decision  {verdict}: {report['reason']}", markup=False)
    rules = ", ".join(report["matched_rules"]) or "none matched (default deny)"
    out.print(f"rule      {rules}", markup=False)
    if report["unmet"]:
        out.print(f"unmet     {', '.join(report['unmet'])}", markup=False)
    out.print(
        f"policy    {report['policy_uid']} (sha256 {report['policy_digest']})",
        markup=False,
    )
    out.print(f"at        {report['at']}", markup=False)
    if not report["allowed"]:
        out.print("charges   none: a refused request spends nothing", markup=False)
        return
    delta = report["delta"]
    out.print(
        f"cost      rho {report['rho']:g} per query = epsilon "
        f"{report['epsilon']:.4g} at delta {delta:g}",
        markup=False,
    )
    if report["charges"]:
        out.print("charges   (each only if it fits in what is left of its budget)")
        for charge in report["charges"]:
            period = (
                "lifetime"
                if charge["period_start"] is None
                else f"{charge['period_start']} to {charge['period_end']}"
            )
            out.print(
                f"  {charge['budget_id']} [{charge['account']}] {period}: rho "
                f"{charge['cost_rho']:g} of a limit of rho {charge['limit_rho']:g} "
                f"(epsilon {charge['limit_epsilon']:.3g}); alert at "
                f"{charge['alert_threshold']:.0%}",
                markup=False,
            )
    else:
        out.print("charges   none: no budget applies to this requester", markup=False)
    duties = report["obligations"]
    out.print("obligations", markup=False)
    for key, value in duties.items():
        if value not in (None, False, []):
            out.print(f"  {key}: {value}", markup=False)


@cli.command("schema")
def schema_command(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the schema here instead of stdout."),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help=f"Exit 1 if the published schema ({SCHEMA_PATH.name}) is out of date.",
        ),
    ] = False,
) -> None:
    """Print (or write) the JSON Schema of the policy file, generated from the model."""
    text = policy_schema_text()
    _, err = _consoles()
    if check:
        target = out or SCHEMA_PATH
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            err.print(
                f"{target} is out of date; regenerate it with: "
                f"accord policy schema --out {target}",
                markup=False,
            )
            raise typer.Exit(EXIT_POLICY_INVALID)
        err.print(f"{target} is up to date", markup=False)
        return
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    err.print(f"wrote {out}", markup=False)
