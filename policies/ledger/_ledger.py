"""The privacy-budget ledger: reserve a request's charges atomically, or none of them."""

from __future__ import annotations

import abc
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from policies._request import BudgetCharge
from policies.ledger._errors import BudgetExhausted
from policies.ledger._units import cost_units, limit_units, to_rho


@dataclass(frozen=True)
class Balance:
    """Where one budget stands for one account and period."""

    charge: BudgetCharge
    spent_rho: float

    @property
    def remaining_rho(self) -> float:
        """What is left of the limit."""
        return max(0.0, to_rho(limit_units(self.charge.limit_rho)) - self.spent_rho)

    @property
    def past_threshold(self) -> bool:
        """Whether spending passed the budget's alert threshold."""
        limit = self.charge.limit_rho
        return limit > 0 and self.spent_rho >= self.charge.alert_threshold * limit


T = TypeVar("T")


class Reservations(Generic[T]):
    """What recent requests reserved, so a failed one can give it back.

    Kept in memory by the process that reserved: only it releases, moments later.
    The oldest entries are forgotten past ``capacity`` (their requests were answered
    long ago); forgetting only ever leaves a charge spent, the safe side.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._held: OrderedDict[str, list[T]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def hold(self, request_id: str, items: list[T]) -> None:
        """Remember what ``request_id`` reserved."""
        with self._lock:
            self._held[request_id] = items
            while len(self._held) > self._capacity:
                self._held.popitem(last=False)

    def take(self, request_id: str) -> list[T]:
        """Return and forget what ``request_id`` reserved (empty if unknown)."""
        with self._lock:
            return self._held.pop(request_id, [])


class BudgetLedger(abc.ABC):
    """Per-requester privacy spending at one node."""

    @abc.abstractmethod
    def reserve(
        self, request_id: str, charges: Sequence[BudgetCharge], *, now: datetime
    ) -> list[Balance]:
        """Add every charge to its budget atomically; return the balances after.

        Raises
        ------
        BudgetExhausted
            If any charge does not fit; then nothing is reserved.
        LedgerError
            If the ledger's storage fails; then nothing is reserved.
        """

    @abc.abstractmethod
    def release(self, request_id: str) -> None:
        """Give back what ``request_id`` reserved (its computation failed)."""

    @abc.abstractmethod
    def balances(self, charges: Sequence[BudgetCharge]) -> list[Balance]:
        """Return the current balance of each charge's budget (the costs are ignored)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release storage."""


class MemoryBudgetLedger(BudgetLedger):
    """An in-process ledger (tests, dry runs)."""

    def __init__(self) -> None:
        self._spent: dict[tuple[str, str, str], int] = {}
        self._reservations: Reservations[tuple[tuple[str, str, str], int]] = (
            Reservations()
        )
        self._lock = threading.Lock()

    @staticmethod
    def _key(charge: BudgetCharge) -> tuple[str, str, str]:
        return (charge.account, charge.budget_id, charge.period_key)

    def reserve(
        self, request_id: str, charges: Sequence[BudgetCharge], *, now: datetime
    ) -> list[Balance]:
        """Reserve all charges or none."""
        with self._lock:
            for charge in charges:
                spent = self._spent.get(self._key(charge), 0)
                if spent + cost_units(charge.cost_rho) > limit_units(charge.limit_rho):
                    remaining = max(0, limit_units(charge.limit_rho) - spent)
                    raise BudgetExhausted(
                        charge.budget_id, to_rho(remaining), charge.cost_rho
                    )
            taken = []
            for charge in charges:
                key = self._key(charge)
                units = cost_units(charge.cost_rho)
                self._spent[key] = self._spent.get(key, 0) + units
                taken.append((key, units))
            self._reservations.hold(request_id, taken)
            return [Balance(c, to_rho(self._spent[self._key(c)])) for c in charges]

    def release(self, request_id: str) -> None:
        """Give back a reservation."""
        taken = self._reservations.take(request_id)
        with self._lock:
            for key, units in taken:
                self._spent[key] -= units

    def balances(self, charges: Sequence[BudgetCharge]) -> list[Balance]:
        """Return the current balances."""
        with self._lock:
            return [
                Balance(c, to_rho(self._spent.get(self._key(c), 0))) for c in charges
            ]
