"""The pure policy evaluator: default deny, prohibitions override permissions."""

from __future__ import annotations

from datetime import datetime

from policies._model import Policy, Rule
from policies._request import AccessRequest, Decision


def evaluate(
    policy: Policy, request: AccessRequest, *, digest: str, now: datetime
) -> Decision:
    """Decide ``request`` under ``policy`` at time ``now``.

    Pure and total: no I/O, no clock; a deny is a return value.

    Parameters
    ----------
    policy : Policy
        The policy in force.
    request : AccessRequest
        The request, with the requester taken from its certificate.
    digest : str
        SHA-256 (hex) of the policy file, stamped on the decision.
    now : datetime
        The current time (aware).

    Returns
    -------
    Decision
        ALLOW with the matching permission ids, or DENY with the declared reason.
    """
    header = policy.policy

    def deny(
        reason: str, rules: tuple[str, ...] = (), unmet: tuple[str, ...] = ()
    ) -> Decision:
        return Decision(False, rules, reason, header.uid, digest, unmet)

    if header.valid_from is not None and now < header.valid_from:
        return deny(f"policy {header.uid} is not yet valid")
    if header.valid_until is not None and now >= header.valid_until:
        return deny(f"policy {header.uid} has expired")
    for rule in policy.prohibitions:
        if not _unmet(rule, request, prohibition=True):
            return deny(f"prohibited by rule {rule.uid}", (rule.uid,))
    nearest: tuple[str, tuple[str, ...]] | None = None
    for rule in policy.permissions:
        unmet = _unmet(rule, request, prohibition=False)
        if not unmet:
            return Decision(
                True, (rule.uid,), f"permitted by rule {rule.uid}", header.uid, digest
            )
        if "assignee" not in unmet and (
            nearest is None or len(unmet) < len(nearest[1])
        ):
            nearest = (rule.uid, unmet)
    if nearest is not None:
        uid, unmet = nearest
        return deny(f"rule {uid} does not permit this {', '.join(unmet)}", (), unmet)
    return deny(f"no rule of policy {header.uid} permits this requester (default deny)")


def _assignee_matches(rule: Rule, request: AccessRequest) -> bool:
    who = request.requester
    return any(
        a == "*" or a == who.uri or a == who.agency or a == f"role:{who.role}"
        for a in rule.assignees
    )


def _unmet(rule: Rule, request: AccessRequest, *, prohibition: bool) -> tuple[str, ...]:
    """Return the constraints of ``rule`` that ``request`` does not meet.

    For a prohibition, a constraint listing nothing matches everything; for a
    permission the same holds, so an empty list means "any".
    """
    unmet: list[str] = []
    if not _assignee_matches(rule, request):
        unmet.append("assignee")
    if rule.datasets and request.dataset not in rule.datasets:
        unmet.append("dataset")
    if prohibition:
        if rule.actions and not request.actions & set(rule.actions):
            unmet.append("action")
        if rule.columns and not request.columns & set(rule.columns):
            unmet.append("column")
        if rule.group_by and not set(request.group_by) & set(rule.group_by):
            unmet.append("group_by")
    else:
        if rule.actions and not request.actions <= set(rule.actions):
            unmet.append("action")
        if rule.columns and not request.columns <= set(rule.columns):
            unmet.append("column")
        if rule.group_by and not set(request.group_by) <= set(rule.group_by):
            unmet.append("group_by")
    if rule.purposes and request.purpose not in rule.purposes:
        unmet.append("purpose")
    if rule.legal_bases and request.legal_basis not in rule.legal_bases:
        unmet.append("legal_basis")
    return tuple(unmet)
