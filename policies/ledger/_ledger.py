"""The privacy-budget ledger: reserve a request's charges atomically, or none of them."""

from __future__ import annotations

import abc
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

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
        self._reservations: dict[str, list[tuple[tuple[str, str, str], int]]] = {}
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
            self._reservations[request_id] = taken
            return [Balance(c, to_rho(self._spent[self._key(c)])) for c in charges]

    def release(self, request_id: str) -> None:
        """Give back a reservation."""
        with self._lock:
            for key, units in self._reservations.pop(request_id, []):
                self._spent[key] -= units

    def balances(self, charges: Sequence[BudgetCharge]) -> list[Balance]:
        """Return the current balances."""
        with self._lock:
            return [
                Balance(c, to_rho(self._spent.get(self._key(c), 0))) for c in charges
            ]
