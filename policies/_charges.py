"""The budget charges of an allowed request: one per applicable limit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from policies._match import requester_keys
from policies._model import Policy
from policies._request import AccessRequest, BudgetCharge, Requester

#: Budget periods are counted from here, so they do not move when a policy is revised.
PERIOD_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def current_period(now: datetime, days: int) -> tuple[datetime, datetime]:
    """Return the start and end (UTC) of the ``days``-long period containing ``now``."""
    length = timedelta(days=days)
    start = PERIOD_EPOCH + ((now - PERIOD_EPOCH) // length) * length
    return start, start + length


def account_of(request: AccessRequest, *, per_purpose: bool) -> str:
    """Return the ledger account of the requester (and purpose, if ``per_purpose``)."""
    uri = request.requester.uri
    return f"{uri}|{request.purpose}" if per_purpose else uri


def charges(
    policy: Policy,
    request: AccessRequest,
    keys: frozenset[str],
    rho: float,
    now: datetime,
) -> Iterator[BudgetCharge]:
    """Yield the charges of ``rho`` against every budget whose assignees match."""
    for budget in policy.budgets:
        if keys.isdisjoint(budget.assignees):
            continue
        account = account_of(request, per_purpose=budget.per_purpose)
        if budget.rho_per_period is not None and budget.period_days is not None:
            start, end = current_period(now, budget.period_days)
            yield BudgetCharge(
                budget.uid,
                account,
                start,
                end,
                budget.rho_per_period,
                rho,
                budget.alert_threshold,
            )
        if budget.rho_lifetime is not None:
            yield BudgetCharge(
                budget.uid,
                account,
                None,
                None,
                budget.rho_lifetime,
                rho,
                budget.alert_threshold,
            )


def standing_charges(
    policy: Policy, requester: Requester, purposes: Iterable[str], now: datetime
) -> list[BudgetCharge]:
    """Return every budget account of ``requester`` at ``now``, at zero cost.

    Per-purpose budgets give one account per purpose in ``purposes``; this is what a
    requester or officer sees when asking for the remaining budget.
    """
    keys = requester_keys(requester)
    seen: dict[tuple[str, str, str], BudgetCharge] = {}
    for purpose in sorted(set(purposes)) or [""]:
        request = AccessRequest(requester, "", frozenset(), purpose=purpose)
        for charge in charges(policy, request, keys, 0.0, now):
            seen.setdefault(
                (charge.budget_id, charge.account, charge.period_key), charge
            )
    return list(seen.values())


def permitted_purposes(policy: Policy, requester: Requester) -> list[str]:
    """Return the purposes any permission names for ``requester`` (sorted)."""
    keys = requester_keys(requester)
    purposes: set[str] = set()
    for permission in policy.permissions:
        if not keys.isdisjoint(permission.assignees):
            purposes.update(permission.purposes)
    return sorted(purposes)
