"""A short human summary of who may do what under a policy."""

from __future__ import annotations

from policies._budgets import Budget
from policies._model import Policy
from policies._privacy import epsilon_at
from policies._rules import Permission, Rule


def _any(values: list[str], what: str) -> str:
    return ", ".join(values) if values else f"any {what}"


def _rho(rho: float, delta: float) -> str:
    return f"rho {rho:g} (epsilon {epsilon_at(rho, delta):.3g} at delta {delta:g})"


def describe_rule(rule: Rule, *, delta: float | None = None) -> str:
    """One sentence for one rule: a permission, or a prohibition."""
    if not isinstance(rule, Permission):
        return _describe_prohibition(rule)
    text = (
        f"{', '.join(rule.assignees)} may {_any(list(rule.actions), 'action')} "
        f"on {_any(rule.datasets, 'dataset')} for {_any(rule.purposes, 'purpose')}"
    )
    extras = []
    if rule.apps:
        extras.append(f"apps {', '.join(app.name for app in rule.apps)}")
    if rule.group_by:
        extras.append(f"grouped by {', '.join(rule.group_by)} only")
    if rule.columns:
        extras.append(f"columns {', '.join(rule.columns)} only")
    if rule.legal_bases:
        extras.append(f"under {'; '.join(rule.legal_bases)}")
    if delta is not None:
        cap = rule.rho_cap(delta)
        if cap is not None:
            extras.append(f"at most {_rho(cap, delta)} per query")
        if rule.default_rho is not None:
            extras.append(f"rho {rule.default_rho:g} by default")
    extras += _conditions(rule)
    return "; ".join([text, *extras])


def _conditions(rule: Permission) -> list[str]:
    out = []
    if rule.exact:
        out.append("exact answers allowed")
    if rule.min_group_size is not None:
        out.append(f"groups under {rule.min_group_size} suppressed")
    if rule.secure_aggregation_required:
        out.append("secure aggregation required")
    if rule.min_participants is not None:
        out.append(f"at least {rule.min_participants} agencies")
    if rule.max_rounds is not None:
        out.append(f"at most {rule.max_rounds} rounds")
    if rule.require_justification:
        out.append("justification required")
    if rule.require_on_behalf_of:
        out.append("on-behalf-of required")
    if rule.expires is not None:
        out.append(f"until {rule.expires.isoformat()}")
    return out


def _describe_prohibition(rule: Rule) -> str:
    what = []
    for label, values in (
        ("actions", list(rule.actions)),
        ("apps", [app.name for app in rule.apps]),
        ("columns", rule.columns),
        ("group_by", rule.group_by),
        ("datasets", rule.datasets),
        ("purposes", rule.purposes),
        ("legal bases", rule.legal_bases),
    ):
        if values:
            what.append(f"{label} {', '.join(values)}")
    return f"never for {', '.join(rule.assignees)}: {'; '.join(what) or 'anything'}"


def describe_budget(budget: Budget, *, delta: float) -> str:
    """One sentence for one budget."""
    whose = "each requester and purpose" if budget.per_purpose else "each requester"
    if budget.assignees != ["*"]:
        whose += f" among {', '.join(budget.assignees)}"
    limits = []
    if budget.rho_per_period is not None and budget.period_days is not None:
        limits.append(
            f"{_rho(budget.rho_per_period, delta)} per {budget.period_days} days"
        )
    if budget.rho_lifetime is not None:
        limits.append(f"{_rho(budget.rho_lifetime, delta)} in all")
    return f"{whose}: {' and '.join(limits)}; alert at {budget.alert_threshold:.0%}"


def summarise(policy: Policy) -> list[str]:
    """One line per rule, budget and declaration: who may do what, and what never."""
    delta = policy.policy.delta
    lines = [f"{r.uid}: {describe_rule(r, delta=delta)}" for r in policy.permissions]
    if not policy.permissions:
        lines.append("(no permissions: every request is denied)")
    lines += [f"{r.uid}: {describe_rule(r)}" for r in policy.prohibitions]
    for name, dataset in policy.datasets.items():
        never = list(dataset.never_release)
        if policy.policy.privacy_unit.id_column:
            never.append(policy.policy.privacy_unit.id_column)
        if never:
            lines.append(f"{name}: never released: {', '.join(never)}")
    lines += [f"{b.uid}: {describe_budget(b, delta=delta)}" for b in policy.budgets]
    if not policy.budgets and policy.permissions:
        lines.append("(no budgets: permitted requests are not limited in number)")
    duties = policy.duties
    if duties.notify is not None:
        lines.append(f"notify {duties.notify} when a budget passes its threshold")
    if duties.log_retention_days is not None:
        lines.append(f"decision records kept {duties.log_retention_days} days")
    return lines


def header_lines(policy: Policy) -> list[str]:
    """Identity, validity and privacy unit of the policy, one fact a line."""
    head = policy.policy
    unit = head.privacy_unit
    window = (
        f"valid from {head.valid_from.isoformat() if head.valid_from else 'always'}"
        f" until {head.valid_until.isoformat() if head.valid_until else 'revoked'}"
    )
    person = f"at most {unit.max_rows_per_person} row(s) per person"
    if unit.id_column:
        person += f" (identified by {unit.id_column})"
    return [
        f"policy {head.uid} of {head.agency}, version {head.version}",
        window,
        f"privacy unit: {person}; epsilon shown at delta {head.delta:g}",
        "datasets: " + (", ".join(policy.datasets) or "none (every request is denied)"),
    ]
