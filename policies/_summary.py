"""A short human summary of who may do what under a policy."""

from __future__ import annotations

from policies._model import Policy, Rule


def _any(values: list[str], what: str) -> str:
    return ", ".join(values) if values else f"any {what}"


def describe_rule(rule: Rule) -> str:
    """One sentence for one rule."""
    text = (
        f"{', '.join(rule.assignees)} may {_any(list(rule.actions), 'action')} "
        f"on {_any(rule.datasets, 'dataset')} for {_any(rule.purposes, 'purpose')}"
    )
    if rule.group_by:
        text += f", grouped by {', '.join(rule.group_by)} only"
    if rule.columns:
        text += f", columns {', '.join(rule.columns)} only"
    if rule.legal_bases:
        text += f", under {'; '.join(rule.legal_bases)}"
    return text


def summarise(policy: Policy) -> list[str]:
    """One line per rule: permissions first, then prohibitions."""
    lines = [f"{r.uid}: {describe_rule(r)}" for r in policy.permissions]
    for r in policy.prohibitions:
        what = []
        if r.actions:
            what.append(f"actions {', '.join(r.actions)}")
        if r.columns:
            what.append(f"columns {', '.join(r.columns)}")
        if r.datasets:
            what.append(f"datasets {', '.join(r.datasets)}")
        if r.purposes:
            what.append(f"purposes {', '.join(r.purposes)}")
        lines.append(
            f"{r.uid}: never for {', '.join(r.assignees)}: {'; '.join(what) or 'anything'}"
        )
    if not policy.permissions:
        lines.append("(no permissions: every request is denied)")
    return lines
