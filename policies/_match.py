"""Whether one rule matches a request, and which constraints a permission leaves unmet."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from policies._privacy import epsilon_at
from policies._request import AccessRequest, Requester
from policies._rules import Permission, Prohibition

#: Tolerance for floating-point noise when comparing a cost with a cap.
_CAP_SLACK = 1e-12


def requester_keys(requester: Requester) -> frozenset[str]:
    """Return every assignee string that names ``requester``."""
    keys = {"*", requester.uri}
    if requester.agency:
        keys.add(requester.agency)
    if requester.role:
        keys.add(f"role:{requester.role}")
    return frozenset(keys)


def prohibits(
    rule: Prohibition,
    request: AccessRequest,
    keys: frozenset[str],
    used: frozenset[str],
) -> bool:
    """Whether prohibition ``rule`` matches ``request``.

    Every field the rule lists must match: the requester is an assignee; the dataset,
    purpose and legal basis are listed; and the request uses at least one of the
    listed actions, apps, columns and group-by columns.
    """
    sets = rule.sets
    return (
        not keys.isdisjoint(sets.assignees)
        and (not sets.datasets or request.dataset in sets.datasets)
        and (not sets.purposes or request.purpose in sets.purposes)
        and (not sets.legal_bases or request.legal_basis in sets.legal_bases)
        and (not sets.actions or not request.actions.isdisjoint(sets.actions))
        and (
            not sets.apps
            or any(
                name == request.app and digest in (None, request.app_digest)
                for name, digest in sets.apps
            )
        )
        and (not sets.columns or not used.isdisjoint(sets.columns))
        and (not sets.group_by or not sets.group_by.isdisjoint(request.group_by))
    )


def _listed(values: frozenset[str] | list[str]) -> str:
    return ", ".join(sorted(values))


def unmet(
    rule: Permission,
    request: AccessRequest,
    used: frozenset[str],
    rho: float | None,
    *,
    cap: float | None,
    now: datetime,
) -> list[str]:
    """Return the names of the constraints of ``rule`` that ``request`` does not meet.

    The requester is assumed to be an assignee. ``rho`` is the loss the request
    states (``None``: the rule's default applies); ``cap`` is the rule's cap in rho at
    the policy's delta. Names come in a fixed order: dataset, action, app, purpose,
    legal_basis, column, group_by, privacy, secure_aggregation, participants, round,
    justification, on_behalf_of, expires.
    """
    sets = rule.sets
    missing = []
    if request.dataset not in sets.datasets:
        missing.append("dataset")
    if not request.actions <= sets.actions:
        missing.append("action")
    training = "train" in request.actions
    if training and (request.app, request.app_digest) not in sets.apps:
        missing.append("app")
    if request.purpose not in sets.purposes:
        missing.append("purpose")
    if sets.legal_bases and request.legal_basis not in sets.legal_bases:
        missing.append("legal_basis")
    if sets.columns and not used <= sets.columns:
        missing.append("column")
    if sets.group_by and not sets.group_by.issuperset(request.group_by):
        missing.append("group_by")
    cost = rho if rho is not None else rule.default_rho
    if cost is None or (cap is not None and cost > cap * (1.0 + _CAP_SLACK)):
        missing.append("privacy")
    if rule.secure_aggregation_required and not request.secure_aggregation:
        missing.append("secure_aggregation")
    if rule.min_participants is not None and (
        request.participants is None or request.participants < rule.min_participants
    ):
        missing.append("participants")
    if (
        training
        and rule.max_rounds is not None
        and (request.round is None or not 1 <= request.round <= rule.max_rounds)
    ):
        missing.append("round")
    if rule.require_justification and not request.justification.strip():
        missing.append("justification")
    if rule.require_on_behalf_of and not request.on_behalf_of.strip():
        missing.append("on_behalf_of")
    if rule.expires is not None and now >= rule.expires:
        missing.append("expires")
    return missing


def explain_unmet(
    rule: Permission,
    request: AccessRequest,
    used: frozenset[str],
    rho: float | None,
    missing: list[str],
    *,
    cap: float | None,
    delta: float,
) -> str:
    """Say, for each unmet constraint, what the request asked and the rule permits."""
    sets = rule.sets
    cost = rho if rho is not None else rule.default_rho
    phrases: dict[str, Callable[[], str]] = {
        "dataset": lambda: (
            f"dataset {request.dataset!r} (permits {_listed(sets.datasets)})"
        ),
        "action": lambda: (
            f"action {_listed(request.actions - sets.actions)} "
            f"(permits {_listed(sets.actions)})"
        ),
        "app": lambda: (
            f"app {request.app!r} at that digest "
            f"(permits {_listed(frozenset(name for name, _ in sets.apps))})"
        ),
        "purpose": lambda: (
            f"purpose {request.purpose!r} (permits {_listed(sets.purposes)})"
        ),
        "legal_basis": lambda: (
            f"legal basis {request.legal_basis!r} (permits {_listed(sets.legal_bases)})"
        ),
        "column": lambda: (
            f"column {_listed(used - sets.columns)} (permits {_listed(sets.columns)})"
        ),
        "group_by": lambda: (
            f"grouping by {_listed(frozenset(request.group_by) - sets.group_by)} "
            f"(permits {_listed(sets.group_by)})"
        ),
        "privacy": lambda: (
            "a request without epsilon or rho: the rule sets no default_rho"
            if cost is None or cap is None
            else f"rho {cost:.6g} per query: the cap is rho {cap:.6g} "
            f"(epsilon {epsilon_at(cap, delta):.4g} at delta {delta:g})"
        ),
        "secure_aggregation": lambda: "a request without secure aggregation",
        "participants": lambda: (
            f"fewer than {rule.min_participants} participating agencies "
            f"({'none stated' if request.participants is None else request.participants})"
        ),
        "round": lambda: (
            f"round {'none stated' if request.round is None else request.round} "
            f"(permits 1 to {rule.max_rounds})"
        ),
        "justification": lambda: "a request without justification",
        "on_behalf_of": lambda: (
            "a request that does not say on whose behalf it is made"
        ),
        "expires": lambda: (
            "any request: it expired at "
            f"{rule.expires.isoformat() if rule.expires else '?'}"
        ),
    }
    return "; ".join(phrases[name]() for name in missing)
