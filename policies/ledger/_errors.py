"""Errors of the privacy-budget ledger.

* LedgerError            -- the ledger cannot be used
  * BudgetExhausted      -- a charge does not fit in its budget; nothing was reserved
"""

from __future__ import annotations


class LedgerError(Exception):
    """The ledger cannot be used (storage unavailable, schema mismatch)."""


class BudgetExhausted(LedgerError):
    """A request's charge does not fit in one of its budgets; nothing was reserved.

    The message names the budget rule (declared), never other requesters' use.
    """

    def __init__(self, budget_id: str, remaining_rho: float, cost_rho: float) -> None:
        super().__init__(
            f"privacy budget {budget_id} has {remaining_rho:.6g} rho left; "
            f"the request needs {cost_rho:.6g}"
        )
        self.budget_id = budget_id
        self.remaining_rho = remaining_rho
        self.cost_rho = cost_rho
