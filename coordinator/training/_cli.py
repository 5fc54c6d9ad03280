"""``accord train``, ``accord jobs list|show`` and ``accord models export``.

Data goes to stdout (a table, or JSON with ``--format json``); the progress bar,
per-round lines and errors go to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

import tomlconf
from coordinator._errors import (
    CoordinatorError,
    NoNodeAnswered,
    SpecError,
    TlsSetupError,
)
from coordinator._exit import EXIT_CODE_HELP, ExitCode
from coordinator.training._exit import TRAINING_EXIT_CODE_HELP, TrainingExitCode

if TYPE_CHECKING:
    from coordinator.training._store import JobRecord, JobStore
    from coordinator.training._trainer import JobResult, RoundReport

cli = typer.Typer(
    name="training",
    help="Federated training: train, jobs, models.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
jobs_cli = typer.Typer(
    name="jobs",
    help="Training jobs in the job store.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
models_cli = typer.Typer(
    name="models",
    help="Trained models and their provenance.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
cli.add_typer(jobs_cli, name="jobs")
cli.add_typer(models_cli, name="models")

_out = Console(highlight=False, emoji=False)
_err = Console(stderr=True, highlight=False, emoji=False)

StoreOption = Annotated[
    str,
    typer.Option(
        "--store",
        envvar="ACCORD_JOB_STORE",
        help="Job store: a SQLAlchemy URL (SQLite file or PostgreSQL).",
    ),
]
FormatOption = Annotated[str, typer.Option("--format", help="table or json.")]
DEFAULT_STORE = "sqlite:///accord-jobs.db"


def _fail(message: str, code: int) -> typer.Exit:
    helps = {**EXIT_CODE_HELP, **TRAINING_EXIT_CODE_HELP}
    _err.print(f"[red]error:[/red] {message}", soft_wrap=True)
    _err.print(f"[dim]exit {code}: {helps.get(code, '')}[/dim]", soft_wrap=True)
    return typer.Exit(code)


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json"):
        raise _fail("--format: expected table or json", ExitCode.USAGE)


def _store(url: str) -> JobStore:
    from coordinator.training._store import JobStoreError, SqlJobStore

    try:
        return SqlJobStore(url)
    except JobStoreError as exc:
        raise _fail(str(exc), TrainingExitCode.STORE_UNAVAILABLE) from None


def _emit(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _rounds_table(rounds: list[RoundReport], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("round", "nodes", "loss", "accuracy", "rho (max node)", "failures"):
        table.add_column(column, overflow="fold")
    for report in rounds:
        table.add_row(
            str(report.round),
            str(len(report.participants)),
            _number(report.loss),
            _number(report.accuracy),
            _number(max((s.rho for s in report.privacy.values()), default=0.0)),
            "; ".join(f"{k}: {v}" for k, v in report.failures.items()),
        )
    return table


def _spend_table(result_nodes: list[dict[str, Any]]) -> Table:
    table = Table(title="privacy spent per node", title_justify="left")
    for column in (
        "node",
        "rounds",
        "rho",
        "epsilon",
        "delta",
        "noise z",
        "clip C",
        "policy",
    ):
        table.add_column(column, overflow="fold")
    for node in result_nodes:
        table.add_row(
            node["node"],
            str(node["rounds_contributed"]),
            _number(node["rho"]),
            _number(node["epsilon"], 3),
            f"{node['delta']:g}",
            _number(node["noise_multiplier"], 3),
            _number(node["clipping_norm"], 3),
            node["policy_digest"][:12],
        )
    return table


def _job_json(job: JobRecord) -> dict[str, Any]:
    return {
        "id": job.id,
        "status": job.status,
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
        "federation": job.federation,
        "app": job.spec.get("job", {}).get("app", ""),
        "app_digest": job.app_digest,
        "dataset": job.spec.get("job", {}).get("dataset", ""),
        "strategy": job.spec.get("strategy", {}).get("name", ""),
        "rounds_done": job.rounds_done,
        "rounds_total": job.rounds_total,
        "nodes": job.nodes,
        "error": job.error,
    }


@cli.command("train")
def train_command(
    spec_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="SPEC", help="The training spec (TOML).", show_default=False
        ),
    ] = None,
    federation: Annotated[
        Path,
        typer.Option(
            "--federation", "-f", help="federation.toml: our TLS files and the nodes."
        ),
    ] = Path("federation.toml"),
    store_url: StoreOption = DEFAULT_STORE,
    resume: Annotated[
        str | None,
        typer.Option("--resume", help="Resume this job from its last completed round."),
    ] = None,
    job_id: Annotated[
        str | None,
        typer.Option("--job-id", help="Id of the new job (default: random)."),
    ] = None,
    fmt: FormatOption = "table",
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure", help="Talk plaintext gRPC to --insecure nodes (unsafe)."
        ),
    ] = False,
) -> None:
    """Train a model across the federation, each node under its own policy."""
    _check_format(fmt)
    from coordinator import load_federation
    from coordinator._client import load_tls
    from coordinator._link import NodeAddress
    from coordinator.training._link import GrpcTrainingLink
    from coordinator.training._spec import load_spec
    from coordinator.training._store import JobNotFound
    from coordinator.training._trainer import JobFailed, Trainer

    if (spec_file is None) == (resume is None):
        raise _fail("give a SPEC file, or --resume JOB_ID (not both)", ExitCode.USAGE)
    try:
        config = load_federation(federation)
    except tomlconf.ConfigError as exc:
        raise _fail(
            f"invalid federation file: {exc}", ExitCode.FEDERATION_INVALID
        ) from None
    spec = None
    if spec_file is not None:
        try:
            spec = load_spec(spec_file)
        except tomlconf.ConfigError as exc:
            raise _fail(
                f"invalid training spec: {exc}", ExitCode.SPEC_INVALID
            ) from None
    try:
        material = None if insecure else load_tls(config)
    except TlsSetupError as exc:
        raise _fail(str(exc), ExitCode.TLS_SETUP) from None
    store = _store(store_url)
    links = [
        GrpcTrainingLink(
            NodeAddress(
                n.agency, n.name, n.address, n.server_name, config.federation.name
            ),
            material,
        )
        for n in config.nodes
    ]
    trainer = Trainer(links, store, federation=config.federation.name)
    total = spec.job.rounds if spec is not None else 0
    if resume is not None:
        try:
            job = store.get(resume)
        except JobNotFound as exc:
            raise _fail(str(exc), TrainingExitCode.JOB_NOT_FOUND) from None
        total = job.rounds_total
    progress = Progress(
        TextColumn("[bold]training[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=_err,
        transient=False,
    )

    def on_round(report: RoundReport) -> None:
        spent = max((s.epsilon for s in report.privacy.values()), default=0.0)
        line = (
            f"round {report.round}/{report.rounds}: loss {_number(report.loss)}, "
            f"accuracy {_number(report.accuracy)}, {len(report.participants)} node(s), "
            f"epsilon this round <= {spent:.3g}"
        )
        if report.failures:
            line += f", {len(report.failures)} failure(s)"
        progress.console.print(line, soft_wrap=True)
        progress.update(
            task, completed=report.round, description=f"round {report.round}"
        )

    result: JobResult
    try:
        with progress:
            task = progress.add_task("starting", total=total)
            if resume is not None:
                done = store.get(resume).rounds_done
                progress.update(task, completed=done)
                result = trainer.resume(resume, on_round=on_round)
            else:
                assert spec is not None
                result = trainer.start(spec, job_id=job_id, on_round=on_round)
    except KeyboardInterrupt:
        raise _fail("interrupted", TrainingExitCode.INTERRUPTED) from None
    except NoNodeAnswered as exc:
        raise _fail(str(exc), ExitCode.NO_NODE_ANSWERED) from None
    except SpecError as exc:
        raise _fail(str(exc), ExitCode.SPEC_INVALID) from None
    except JobFailed as exc:
        raise _fail(str(exc), TrainingExitCode.JOB_FAILED) from None
    except CoordinatorError as exc:
        raise _fail(str(exc), TrainingExitCode.JOB_FAILED) from None
    finally:
        for link in links:
            link.close()
        store.close()
    if fmt == "json":
        _emit(
            {
                "job": _job_json(result.job),
                "rounds": [r.to_json() for r in result.rounds],
                "model": result.provenance,
            }
        )
        return
    _out.print(
        _rounds_table(result.rounds, f"job {result.job.id}: {result.job.status}")
    )
    _out.print(_spend_table(result.provenance.get("nodes", [])))
    _out.print(f"model stored: accord models export {result.job.id} --output model.zip")


@jobs_cli.command("list")
def jobs_list(
    store_url: StoreOption = DEFAULT_STORE, fmt: FormatOption = "table"
) -> None:
    """List training jobs, newest first."""
    _check_format(fmt)
    store = _store(store_url)
    try:
        jobs = store.jobs()
    finally:
        store.close()
    if fmt == "json":
        _emit([_job_json(j) for j in jobs])
        return
    table = Table(title="training jobs", title_justify="left")
    for column in ("id", "status", "created", "app", "strategy", "rounds", "nodes"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        data = _job_json(job)
        table.add_row(
            job.id,
            job.status,
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            data["app"],
            data["strategy"],
            f"{job.rounds_done}/{job.rounds_total}",
            str(len(job.nodes)),
        )
    _out.print(table)


@jobs_cli.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job id.")],
    store_url: StoreOption = DEFAULT_STORE,
    fmt: FormatOption = "table",
) -> None:
    """Show one job: its spec, every completed round, and its model's provenance."""
    _check_format(fmt)
    from coordinator.training._store import JobNotFound
    from coordinator.training._trainer import RoundReport

    store = _store(store_url)
    try:
        job = store.get(job_id)
        rounds = [RoundReport.from_json(r) for r in store.rounds(job_id)]
        try:
            provenance: dict[str, Any] | None = store.model(job_id).provenance
        except JobNotFound:
            provenance = None
    except JobNotFound as exc:
        raise _fail(str(exc), TrainingExitCode.JOB_NOT_FOUND) from None
    finally:
        store.close()
    if fmt == "json":
        _emit(
            {
                "job": {**_job_json(job), "spec": job.spec},
                "rounds": [r.to_json() for r in rounds],
                "model": provenance,
            }
        )
        return
    summary = _job_json(job)
    for key in (
        "id",
        "status",
        "app",
        "app_digest",
        "dataset",
        "strategy",
        "federation",
    ):
        _out.print(f"{key}: {summary[key]}")
    _out.print(f"rounds: {job.rounds_done}/{job.rounds_total}")
    if job.error:
        _out.print(f"error: {job.error}", soft_wrap=True)
    _out.print(_rounds_table(rounds, "rounds"))
    if provenance is not None:
        _out.print(_spend_table(provenance.get("nodes", [])))


@models_cli.command("export")
def models_export(
    job_id: Annotated[
        str, typer.Argument(metavar="ID", help="The job whose model to export.")
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="The file to write (accord-model/1, a zip)."
        ),
    ] = Path("model.zip"),
    store_url: StoreOption = DEFAULT_STORE,
    fmt: FormatOption = "table",
) -> None:
    """Write a job's final model with its provenance in the portable accord-model/1 format."""
    _check_format(fmt)
    from coordinator.training._export import export_model
    from coordinator.training._store import JobNotFound

    store = _store(store_url)
    try:
        model = store.model(job_id)
    except JobNotFound as exc:
        raise _fail(str(exc), TrainingExitCode.JOB_NOT_FOUND) from None
    finally:
        store.close()
    manifest = export_model(model, output)
    if fmt == "json":
        _emit({"path": str(output), "model": manifest})
    else:
        _out.print(f"{output} ({manifest['format']}, {len(manifest['arrays'])} arrays)")
