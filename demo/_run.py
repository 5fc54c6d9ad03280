"""``accord demo``: a three-agency federation on this machine, start to finish."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import coordinator
import node
import pki
import policies
from coordinator import Aggregation, Filter, QuerySpec
from demo._processes import NodeFleet, NodeProcess
from demo._provision import DATASET, AgencySite, DemoFederation, provision
from demo._training import run_training, training_table
from policies import auditlog


@dataclass(frozen=True)
class DemoQuery:
    """One query the demo runs, with the sentence that introduces it."""

    title: str
    spec: QuerySpec


def demo_queries() -> list[DemoQuery]:
    """Return the demo's queries: two every agency answers, one that policies split."""
    return [
        DemoQuery(
            "Incidents by region: how many, how severe, how costly",
            QuerySpec(
                dataset=DATASET,
                aggregations=(
                    Aggregation("count"),
                    Aggregation("mean", "severity"),
                    Aggregation("mean", "damage_eur"),
                ),
                group_by=("region",),
                purpose="statistics",
                legal_basis="LED-2016/680 Art.8(1)",
                justification="Quarterly cross-agency crime trends",
            ),
        ),
        DemoQuery(
            "Cross-border incidents by offence: count and mean number of suspects",
            QuerySpec(
                dataset=DATASET,
                aggregations=(Aggregation("count"), Aggregation("mean", "suspects")),
                filters=(Filter("cross_border", "=", (True,)),),
                group_by=("offence",),
                purpose="statistics",
                legal_basis="LED-2016/680 Art.8(1)",
                justification="Trafficking and smuggling routes",
            ),
        ),
        DemoQuery(
            "Total damage of severe incidents by offence, for a policy evaluation",
            QuerySpec(
                dataset=DATASET,
                aggregations=(Aggregation("count"), Aggregation("sum", "damage_eur")),
                filters=(Filter("severity", ">=", (4,)),),
                group_by=("offence",),
                purpose="policy-evaluation",
                legal_basis="national-law-§12",
                justification="Evaluating the 2025 anti-fraud programme",
            ),
        ),
        DemoQuery(
            "Severity by region under secure aggregation: the hub sees only totals",
            QuerySpec(
                dataset=DATASET,
                aggregations=(Aggregation("count"), Aggregation("mean", "severity")),
                group_by=("region",),
                purpose="statistics",
                legal_basis="LED-2016/680 Art.8(1)",
                justification="Regional severity, no agency's own figures disclosed",
                rho=0.05,
                secure_aggregation=True,
            ),
        ),
    ]


@contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="accord-demo-") as tmp:
        yield Path(tmp)


def run_demo(
    *, out: Console, err: Console, workdir: Path | None = None, as_json: bool = False
) -> int:
    """Provision, start three node processes, query them, stop them. Returns 0 or 1."""
    start = time.perf_counter()
    with _workdir(workdir) as root:
        err.print(f"[bold]Accord demo[/bold] — a throw-away federation in {root}")
        fed = provision(root / "federation")
        _describe_sites(fed, err)
        nodes = [
            NodeProcess(site.agency, site.node_config, site.folder)
            for site in fed.sites
        ]
        results: dict[str, list[dict[str, Any]]] = {"queries": []}
        with NodeFleet(nodes) as fleet:
            addresses = fleet.wait_ready(timeout=30)
            err.print(
                "[green]✓[/green] 3 nodes serving with mutual TLS: "
                + ", ".join(
                    f"{a} at {addr} (pid {n.process.pid if n.process else '?'})"
                    for (a, addr), n in zip(addresses.items(), nodes, strict=True)
                )
            )
            federation_file = fed.write_federation_file(addresses)
            config = coordinator.load_federation(federation_file)
            try:
                with coordinator.Coordinator.from_config(config) as hub:
                    for number, query in enumerate(demo_queries(), start=1):
                        result = hub.query(query.spec)
                        if as_json:
                            results["queries"].append(
                                {
                                    "title": query.title,
                                    **coordinator.result_json(result),
                                }
                            )
                        else:
                            out.print()
                            out.print(
                                coordinator.render_result(
                                    result, title=f"{number}. {query.title}"
                                )
                            )
                    job = run_training(config, root, err=err)
                    if as_json:
                        results["training"] = [
                            {
                                "round": r.round,
                                "participants": r.participants,
                                "loss": r.loss,
                                "accuracy": r.accuracy,
                                "rho": {k: v.rho for k, v in r.privacy.items()},
                            }
                            for r in job.rounds
                        ]
                    else:
                        out.print()
                        out.print(training_table(job))
                    budgets = hub.budgets()
                    if as_json:
                        results["budgets"] = coordinator.budget_rows(budgets)
                    else:
                        out.print()
                        out.print(coordinator.budget_table(budgets))
            except coordinator.CoordinatorError as exc:
                err.print(f"[red]✗[/red] the demo federation failed: {exc}")
                return 1  # leaving the fleet's block stops every node
            codes = fleet.stop()
        clean = all(code == 0 for code in codes.values())
        err.print(
            ("[green]✓[/green]" if clean else "[red]✗[/red]")
            + " nodes stopped gracefully: "
            + ", ".join(f"{a} exit {c}" for a, c in codes.items())
        )
        audits = [audit_site(site) for site in fed.sites]
        if as_json:
            results["audit"] = [a.as_json() for a in audits]
        else:
            out.print()
            out.print(audit_table(audits))
        clean = clean and all(a.ok for a in audits)
    if as_json:
        out.print_json(json.dumps(results, default=str))
    err.print(
        f"[bold]done[/bold] in {time.perf_counter() - start:.1f} s; nothing left running"
    )
    return 0 if clean else 1


@dataclass(frozen=True)
class SiteAudit:
    """One node's decision log, exported and verified offline after the run."""

    agency: str
    records: int
    allowed: int
    denied: int
    checkpoints: int
    ok: bool
    problems: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """Return the audit as JSON."""
        return {
            "agency": self.agency,
            "records": self.records,
            "allowed": self.allowed,
            "denied": self.denied,
            "checkpoints": self.checkpoints,
            "verified": self.ok,
            "problems": list(self.problems),
        }


def audit_site(site: AgencySite) -> SiteAudit:
    """Export a stopped node's decision log and verify it against its pinned key."""
    config = node.load_node_config(site.node_config)
    origin = auditlog.log_origin(config.node.agency, site_federation(site))
    verifier_key = auditlog.log_verifier_key(
        origin, auditlog.load_or_create_log_key(config.audit.key)
    )
    export = site.folder / "audit-export.jsonl"
    reader = auditlog.open_log_reader(config.node.state_url)
    try:
        summary = auditlog.export_log(reader, export, now=datetime.now(UTC))
    finally:
        reader.close()
    checked = auditlog.verify_export(export, verifier_key)
    lines = [
        json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()
    ]
    decisions = [entry["decision"] for entry in lines if "type" not in entry]
    return SiteAudit(
        agency=site.agency,
        records=summary.records,
        allowed=decisions.count("allow"),
        denied=decisions.count("deny"),
        checkpoints=summary.checkpoints,
        ok=checked.ok,
        problems=tuple(checked.problems),
    )


def site_federation(site: AgencySite) -> str:
    """Return the federation of a site, from its node certificate."""
    return pki.identity_of(
        pki.load_certificate(site.folder / "pki" / "node.crt")
    ).federation


def audit_table(audits: list[SiteAudit]) -> Table:
    """Each node's log, verified offline."""
    table = Table(
        title="decision logs, exported and verified offline (signatures, chain, Merkle roots)",
        title_justify="left",
    )
    for column in ("agency", "records", "allowed", "denied", "checkpoints", "verified"):
        table.add_column(column)
    for a in audits:
        table.add_row(
            a.agency,
            str(a.records),
            str(a.allowed),
            str(a.denied),
            str(a.checkpoints),
            "[green]yes[/green]" if a.ok else f"[red]no: {a.problems[0]}[/red]",
        )
    return table


def _describe_sites(fed: DemoFederation, err: Console) -> None:
    table = Table(
        title=f"federation {fed.name!r}: CA in {fed.ca_dir.name}/", title_justify="left"
    )
    for column in ("agency", "who", "rows", "source", "declared policy"):
        table.add_column(column, overflow="fold")
    for site in fed.sites:
        rules = "\n".join(policies.summarise(policies.load_policy(site.policy).policy))
        table.add_row(
            site.agency, site.title, f"{site.rows:,}", site.source_kind, rules
        )
    err.print(table)
