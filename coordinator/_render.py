"""Show federated results: rich tables for people, JSON for scripts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from accord.v1 import node_service_pb2 as pb
from coordinator._combine import FederatedResult
from coordinator._outcome import NodeOutcome

_STATUS_STYLE = {
    "ok": "green",
    "refused": "yellow",
    "invalid": "yellow",
    "failed": "red",
    "unreachable": "red",
}


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.1f}"
    return f"{value:,.3f}"


def _note(outcome: NodeOutcome[Any]) -> str:
    if outcome.ok:
        rules = getattr(outcome.response, "matched_rules", None)
        return f"allowed by {', '.join(rules)}" if rules else "answered"
    return outcome.message


def result_table(result: FederatedResult) -> Table:
    """Return the combined groups as a table, one row each."""
    spec = result.spec
    total = len(result.outcomes)
    table = Table(
        caption=f"contributors: {', '.join(result.contributors) or 'none'} "
        f"({len(result.contributors)} of {total} node{'s' if total != 1 else ''})",
        caption_justify="left",
    )
    for name in spec.group_columns:
        table.add_column(name)
    for agg in spec.aggregations:
        for label in agg.output_labels():
            table.add_column(label, justify="right")
    noisy = False
    for group in result.groups:
        cells = []
        for v in group.values:
            text = _fmt(v.value)
            if not v.exact and v.low is not None and v.high is not None:
                text += f" [dim]({_fmt(v.low)} to {_fmt(v.high)})[/dim]"
                noisy = True
            cells.append(text)
        if group.suppressed_at:
            cells[-1] += (
                f" [yellow]suppressed at {', '.join(group.suppressed_at)}[/yellow]"
            )
        table.add_row(*(str(k) for k in group.key), *cells)
    if noisy:
        table.caption = (table.caption or "") + "; in brackets: 95% interval"
    if result.secure_aggregation:
        table.caption = (table.caption or "") + "; combined by secure aggregation"
    return table


def participation_table(outcomes: Sequence[NodeOutcome[Any]]) -> Table:
    """Which node took part, which refused and under which declared rule, which failed."""
    table = Table(title="participation", title_justify="left", title_style="italic")
    for column in ("agency", "node", "status", "detail", "policy", "time"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        digest = (
            getattr(o.response, "policy_digest", "")
            if o.ok
            else o.metadata.get("revision", "")
        )
        style = _STATUS_STYLE.get(o.status, "")
        table.add_row(
            o.agency,
            o.node,
            f"[{style}]{o.status}[/{style}]" if style else o.status,
            _note(o),
            digest[:12],
            f"{o.seconds * 1000:.0f} ms",
        )
    return table


def render_result(
    result: FederatedResult, *, title: str | None = None
) -> RenderableType:
    """Title, result and participation together."""
    heading = Text(title or f"{result.spec.dataset}: federated result", style="bold")
    return Group(heading, result_table(result), participation_table(result.outcomes))


def outcome_json(o: NodeOutcome[Any]) -> dict[str, Any]:
    """One node's part, as JSON."""
    entry: dict[str, Any] = {
        "agency": o.agency,
        "node": o.node,
        "address": o.address,
        "status": o.status,
        "seconds": round(o.seconds, 4),
    }
    if isinstance(o.response, pb.RunQueryResponse) and o.response.HasField("plan"):
        plan = o.response.plan
        entry["plan"] = {
            "allowed": plan.allowed,
            "reason": plan.reason,
            "rho": plan.rho,
            "rho_remaining": plan.rho_remaining
            if plan.HasField("rho_remaining")
            else None,
            "min_group_size": plan.min_group_size,
            "at_risk_below": plan.at_risk_below,
            "statistics": [
                {
                    "name": s.name,
                    "mechanism": s.mechanism,
                    "noise_scale": s.noise_scale,
                    "half_width_95": s.half_width * s.unit,
                }
                for s in plan.statistics
            ],
        }
    if isinstance(o.response, pb.RunQueryResponse):
        entry["policy_digest"] = o.response.policy_digest
        entry["matched_rules"] = list(o.response.matched_rules)
        entry["decision_seq"] = o.response.decision_seq
        entry["rho_charged"] = o.response.privacy.rho_charged
        entry["noise"] = {
            s.name: {"mechanism": s.mechanism, "scale": s.noise_scale, "unit": s.unit}
            for s in o.response.statistics
        }
    if not o.ok:
        entry.update(
            code=o.code, reason=o.reason, message=o.message, metadata=o.metadata
        )
    return entry


def result_json(result: FederatedResult) -> dict[str, Any]:
    """Return the whole result as a JSON-ready dict."""
    spec = result.spec
    groups = []
    for group in result.groups:
        groups.append(
            {
                "key": dict(zip(spec.group_columns, group.key, strict=True)),
                "values": {
                    v.label: {
                        "value": v.value,
                        "interval95": None
                        if v.low is None or v.high is None
                        else [v.low, v.high],
                        "exact": v.exact,
                    }
                    for v in group.values
                },
                "suppressed_at": list(group.suppressed_at),
            }
        )
    return {
        "query_id": spec.query_id,
        "dataset": spec.dataset,
        "group_by": list(spec.group_columns),
        "aggregations": [a.label for a in spec.aggregations],
        "secure_aggregation": result.secure_aggregation,
        "privacy_spent_rho": result.privacy_spent,
        "groups": groups,
        "contributors": list(result.contributors),
        "policy_digests": result.policy_digests,
        "nodes": [outcome_json(o) for o in result.outcomes],
    }


def budget_rows(
    outcomes: Sequence[NodeOutcome[pb.GetBudgetResponse]],
) -> list[dict[str, Any]]:
    """One row per budget per node (nodes that did not answer get one error row)."""
    rows: list[dict[str, Any]] = []
    for o in outcomes:
        if o.response is None:
            rows.append({"agency": o.agency, "status": o.status, "message": o.message})
            continue
        if not o.response.budgets:
            rows.append({"agency": o.agency, "status": "ok", "budget": None})
        for b in o.response.budgets:
            rows.append(
                {
                    "agency": o.agency,
                    "status": "ok",
                    "budget": b.budget_id,
                    "purpose": b.purpose,
                    "scope": b.scope,
                    "rho_limit": b.rho_limit,
                    "rho_spent": b.rho_spent,
                    "rho_remaining": b.rho_remaining,
                    "epsilon_remaining": b.epsilon_remaining,
                    "delta": b.delta,
                    "past_threshold": b.rho_limit > 0
                    and b.rho_spent >= b.alert_threshold * b.rho_limit,
                }
            )
    return rows


def budget_table(outcomes: Sequence[NodeOutcome[pb.GetBudgetResponse]]) -> Table:
    """Remaining privacy budgets, per node and budget."""
    table = Table(
        title="privacy budgets (zCDP rho; epsilon at the node's delta)",
        title_justify="left",
    )
    for column in (
        "agency",
        "budget",
        "purpose",
        "scope",
        "spent",
        "limit",
        "left (ε)",
    ):
        table.add_column(column, overflow="fold")
    for row in budget_rows(outcomes):
        if row["status"] != "ok":
            table.add_row(
                row["agency"],
                f"[red]{row['status']}[/red]",
                row.get("message", ""),
                "",
                "",
                "",
                "",
            )
        elif row["budget"] is None:
            table.add_row(row["agency"], "none declared", "", "", "", "", "")
        else:
            style = "yellow" if row["past_threshold"] else ""
            spent = f"{row['rho_spent']:.4g}"
            table.add_row(
                row["agency"],
                row["budget"],
                row["purpose"] or "any",
                row["scope"],
                f"[{style}]{spent}[/{style}]" if style else spent,
                f"{row['rho_limit']:.4g}",
                f"{row['rho_remaining']:.4g} ({row['epsilon_remaining']:.3g})",
            )
    return table


def plan_table(outcomes: Sequence[NodeOutcome[pb.RunQueryResponse]]) -> Table:
    """Return the dry run: per node, the decision, the noise and the budget cost."""
    table = Table(
        title="dry run (no data touched, no budget spent)", title_justify="left"
    )
    for column in ("agency", "decision", "rho", "left", "statistic", "noise", "±95%"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        if o.response is None or not o.response.HasField("plan"):
            table.add_row(o.agency, f"[red]{o.status}[/red]", "", "", o.message, "", "")
            continue
        plan = o.response.plan
        if not plan.allowed:
            table.add_row(
                o.agency, f"[yellow]refused[/yellow]: {plan.reason}", "", "", "", "", ""
            )
            continue
        left = f"{plan.rho_remaining:.4g}" if plan.HasField("rho_remaining") else "—"
        first = True
        for s in plan.statistics:
            table.add_row(
                o.agency if first else "",
                "allowed" if first else "",
                f"{plan.rho:.4g}" if first else "",
                left if first else "",
                s.name,
                s.mechanism
                if s.mechanism == "none"
                else f"{s.mechanism} scale {s.noise_scale:.3g}",
                _fmt(s.half_width * s.unit),
            )
            first = False
        if plan.min_group_size:
            table.add_row(
                "",
                "",
                "",
                "",
                f"groups under {plan.min_group_size} are suppressed",
                f"at risk below {plan.at_risk_below} rows",
                "",
            )
    return table
