"""``accord demo``: a three-agency federation on this machine, start to finish."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import coordinator
import policies
from coordinator import Aggregation, Filter, QuerySpec
from demo._processes import NodeFleet, NodeProcess
from demo._provision import DATASET, DemoFederation, provision


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
        results: list[dict[str, Any]] = []
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
            with coordinator.Coordinator.from_config(config) as hub:
                for number, query in enumerate(demo_queries(), start=1):
                    result = hub.query(query.spec)
                    if as_json:
                        results.append(
                            {"title": query.title, **coordinator.result_json(result)}
                        )
                    else:
                        out.print()
                        out.print(
                            coordinator.render_result(
                                result, title=f"{number}. {query.title}"
                            )
                        )
            codes = fleet.stop()
        clean = all(code == 0 for code in codes.values())
        err.print(
            ("[green]✓[/green]" if clean else "[red]✗[/red]")
            + " nodes stopped gracefully: "
            + ", ".join(f"{a} exit {c}" for a, c in codes.items())
        )
    if as_json:
        out.print_json(json.dumps(results, default=str))
    err.print(
        f"[bold]done[/bold] in {time.perf_counter() - start:.1f} s; nothing left running"
    )
    return 0 if clean else 1


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
