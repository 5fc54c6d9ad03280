"""The pure policy evaluator: default deny, prohibitions override permissions."""

from __future__ import annotations

import math
from datetime import datetime

from policies._charges import charges
from policies._match import explain_unmet, prohibits, requester_keys, unmet
from policies._model import Policy
from policies._privacy import rho_of_pure_epsilon
from policies._request import AccessRequest, Decision, Obligations, PrivacyLoss
from policies._rules import Permission


def evaluate(
    policy: Policy, request: AccessRequest, *, digest: str, now: datetime
) -> Decision:
    """Decide ``request`` under ``policy`` at time ``now``.

    Pure and total: no I/O, no clock, no logging; a deny is a return value. In order,
    a request is denied when the policy is not in force at ``now``; its dataset is not
    declared; a prohibition matches it; it uses a never-released column, the privacy
    unit's id column or an undeclared column; it groups by a column without public
    domain or aggregates the values of one without numeric bounds; it states an
    invalid privacy loss; or no permission permits it. The first permission, in file
    order, that permits the request decides its cost, budget charges and obligations.

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
        ALLOW with the permission, its cost, charges and obligations; or DENY naming
        the declared rule that refused (or the nearest permission and what it lacks).
    """
    header = policy.policy
    uid = header.uid

    def deny(
        reason: str, rules: tuple[str, ...] = (), missing: tuple[str, ...] = ()
    ) -> Decision:
        return Decision(False, rules, reason, uid, digest, missing)

    if now.utcoffset() is None:
        return deny("the evaluation time has no UTC offset (default deny)")
    if header.valid_from is not None and now < header.valid_from:
        return deny(
            f"policy {uid} is not in force before {header.valid_from.isoformat()}"
        )
    if header.valid_until is not None and now >= header.valid_until:
        return deny(f"policy {uid} ended at {header.valid_until.isoformat()}")
    if not request.actions:
        return deny("the request names no action (default deny)")
    dataset = policy.datasets.get(request.dataset)
    if dataset is None:
        return deny(f"dataset {request.dataset!r} is not declared in policy {uid}")

    keys = requester_keys(request.requester)
    used = request.used_columns
    for prohibition in policy.prohibitions:
        if prohibits(prohibition, request, keys, used):
            return deny(f"prohibited by rule {prohibition.uid}", (prohibition.uid,))

    refusal = _column_refusal(policy, request, used)
    if refusal is not None:
        return deny(*refusal)
    requested, problem = _requested_rho(request.privacy)
    if problem:
        return deny(problem)

    nearest: tuple[int, list[str]] | None = None
    caps = policy.rho_caps
    for index, permission in enumerate(policy.permissions):
        if keys.isdisjoint(permission.sets.assignees):
            continue
        missing = unmet(permission, request, used, requested, cap=caps[index], now=now)
        cost = requested if requested is not None else permission.default_rho
        if not missing and cost is not None:
            return _allow(policy, permission, request, keys, cost, digest, now)
        if nearest is None or len(missing) < len(nearest[1]):
            nearest = (index, missing)
    if nearest is None:
        return deny(
            f"no permission of policy {uid} is granted to this requester (default deny)"
        )
    index, missing = nearest
    permission = policy.permissions[index]
    why = explain_unmet(
        permission,
        request,
        used,
        requested,
        missing,
        cap=caps[index],
        delta=header.delta,
    )
    return deny(f"rule {permission.uid} does not permit {why}", (), tuple(missing))


def _column_refusal(
    policy: Policy, request: AccessRequest, used: frozenset[str]
) -> tuple[str, tuple[str, ...]] | None:
    """Refuse columns the dataset's declaration rules out, naming the declaration."""
    name = request.dataset
    dataset = policy.datasets[name]
    id_column = policy.policy.privacy_unit.id_column
    if id_column is not None and id_column in used:
        return (
            f"column {id_column!r} identifies a person and is never released "
            "(policy.privacy_unit.id_column)",
            ("policy.privacy_unit.id_column",),
        )
    released = sorted(used.intersection(dataset.never_release))
    if released:
        rule = f"datasets.{name}.never_release"
        return f"column {', '.join(released)} is never released ({rule})", (rule,)
    undeclared = sorted(used.difference(dataset.columns))
    if undeclared:
        rule = f"datasets.{name}.columns"
        return (
            f"column {', '.join(undeclared)} is not declared in dataset {name!r} ({rule})",
            (rule,),
        )
    for column in request.group_by:
        if not dataset.columns[column].groupable:
            rule = f"datasets.{name}.columns.{column}"
            return (
                f"column {column!r} has no public domain (category with categories, "
                f"or boolean), so it cannot be grouped by ({rule})",
                (rule,),
            )
    for column in sorted(request.value_columns):
        spec = dataset.columns[column]
        if not spec.numeric or spec.bounds is None:
            rule = f"datasets.{name}.columns.{column}"
            return (
                f"column {column!r} needs numeric bounds for its values to be "
                f"aggregated ({rule})",
                (rule,),
            )
    return None


def _requested_rho(privacy: PrivacyLoss | None) -> tuple[float | None, str]:
    """Return the rho a request states (``None``: none) or why its statement is invalid."""
    if privacy is None:
        return None, ""
    stated = [
        (kind, value)
        for kind, value in (("epsilon", privacy.epsilon), ("rho", privacy.rho))
        if value is not None
    ]
    if len(stated) != 1:
        return None, "the request must state epsilon or rho, exactly one of them"
    kind, stated_value = stated[0]
    value: object = stated_value  # callers may pass anything: stay total
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        return None, f"the requested {kind} must be a positive, finite number"
    return (rho_of_pure_epsilon(value) if kind == "epsilon" else float(value)), ""


def _allow(
    policy: Policy,
    permission: Permission,
    request: AccessRequest,
    keys: frozenset[str],
    rho: float,
    digest: str,
    now: datetime,
) -> Decision:
    header = policy.policy
    dataset = policy.datasets[request.dataset]
    bounds = tuple(
        (column, pair[0], pair[1])
        for column in sorted(request.value_columns)
        if (pair := dataset.columns[column].bounds) is not None
    )
    obligations = Obligations(
        delta=header.delta,
        max_rows_per_person=header.privacy_unit.max_rows_per_person,
        min_group_size=permission.min_group_size,
        exact_allowed=permission.exact,
        secure_aggregation_required=permission.secure_aggregation_required,
        min_participants=permission.min_participants,
        clamp_bounds=bounds,
        notify=policy.duties.notify,
        log_retention_days=policy.duties.log_retention_days,
    )
    return Decision(
        True,
        (permission.uid,),
        f"permitted by rule {permission.uid}",
        header.uid,
        digest,
        rho=rho,
        charges=tuple(charges(policy, request, keys, rho, now)),
        obligations=obligations,
    )
