"""Alert detection, pure: budgets past their thresholds, bursts of denials."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from ._views import BudgetReport

__all__ = ["BudgetAlert", "DenialBurst", "budget_alerts", "denial_bursts"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """A budget whose spending reached its alert threshold, or its limit.

    Attributes
    ----------
    requester, budget_id, purpose, scope : str
        Which budget.
    rho_spent, rho_limit, alert_threshold : float
        Where it stands.
    level : {"exhausted", "threshold"}
        Nothing left, or past the threshold.
    """

    requester: str
    budget_id: str
    purpose: str
    scope: str
    rho_spent: float
    rho_limit: float
    alert_threshold: float
    level: Literal["exhausted", "threshold"]

    @property
    def fraction(self) -> float:
        """Spent as a fraction of the limit."""
        return self.rho_spent / self.rho_limit if self.rho_limit > 0 else 0.0


def budget_alerts(reports: Iterable[BudgetReport]) -> list[BudgetAlert]:
    """Return an alert for each budget at or past its threshold, worst first.

    Parameters
    ----------
    reports : Iterable[BudgetReport]
        Budgets of each requester, as the node's ledger stands.

    Returns
    -------
    list[BudgetAlert]
        Exhausted budgets first, then by fraction spent.
    """
    alerts = []
    for report in reports:
        for line in report.budgets:
            if not (line.past_threshold or (line.exhausted and line.rho_limit > 0)):
                continue
            alerts.append(
                BudgetAlert(
                    requester=line.requester or report.requester,
                    budget_id=line.budget_id,
                    purpose=line.purpose,
                    scope=line.scope,
                    rho_spent=line.rho_spent,
                    rho_limit=line.rho_limit,
                    alert_threshold=line.alert_threshold,
                    level="exhausted" if line.exhausted else "threshold",
                )
            )
    return sorted(
        alerts,
        key=lambda a: (a.level != "exhausted", -a.fraction, a.requester, a.budget_id),
    )


@dataclass(frozen=True, slots=True)
class DenialBurst:
    """Denials of one requester close together in time.

    Attributes
    ----------
    requester : str
        Who was denied.
    count : int
        Denials in the burst.
    start, end : datetime
        The first and last of them.
    first_seq, last_seq : int
        Their records.
    """

    requester: str
    count: int
    start: datetime
    end: datetime
    first_seq: int
    last_seq: int


def denial_bursts(
    seqs: Sequence[int],
    times_us: Sequence[int],
    requesters: Sequence[str],
    *,
    threshold: int,
    window: timedelta,
) -> list[DenialBurst]:
    """Find bursts: ``threshold`` or more denials of one requester within ``window``.

    Every denial that lies in some window of length ``window`` holding at least
    ``threshold`` denials of the same requester belongs to a burst; such denials
    closer than ``window`` to each other are merged into one burst.

    Parameters
    ----------
    seqs, times_us, requesters : Sequence
        The denials: record seq, time (microseconds since the epoch), requester.
    threshold : int
        Denials that make a burst (2 or more).
    window : timedelta
        The sliding window.

    Returns
    -------
    list[DenialBurst]
        The bursts, latest first.
    """
    if threshold < 2:
        raise ValueError("threshold must be at least 2")
    span = window // timedelta(microseconds=1)
    grouped: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for seq, moment, requester in zip(seqs, times_us, requesters, strict=True):
        grouped[requester].append((int(moment), int(seq)))
    bursts = []
    for requester, events in grouped.items():
        events.sort()
        marked = [False] * len(events)
        low = 0
        for high, (moment, _) in enumerate(events):
            while moment - events[low][0] > span:
                low += 1
            if high - low + 1 >= threshold:
                for i in range(high, low - 1, -1):
                    if marked[i]:
                        break
                    marked[i] = True
        run: list[tuple[int, int]] = []
        for i, event in enumerate(events):
            if marked[i] and run and event[0] - run[-1][0] <= span:
                run.append(event)
                continue
            if len(run) >= threshold:
                bursts.append(_burst(requester, run))
            run = [event] if marked[i] else []
        if len(run) >= threshold:
            bursts.append(_burst(requester, run))
    return sorted(bursts, key=lambda b: (b.end, b.requester), reverse=True)


def _burst(requester: str, run: list[tuple[int, int]]) -> DenialBurst:
    seqs = [seq for _, seq in run]
    return DenialBurst(
        requester=requester,
        count=len(run),
        start=_EPOCH + timedelta(microseconds=run[0][0]),
        end=_EPOCH + timedelta(microseconds=run[-1][0]),
        first_seq=min(seqs),
        last_seq=max(seqs),
    )
