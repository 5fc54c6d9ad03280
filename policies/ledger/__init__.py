"""The privacy-budget ledger: atomic, per-requester zCDP spending at one node."""

from policies.ledger._errors import BudgetExhausted as BudgetExhausted
from policies.ledger._errors import LedgerError as LedgerError
from policies.ledger._ledger import Balance as Balance
from policies.ledger._ledger import BudgetLedger as BudgetLedger
from policies.ledger._ledger import MemoryBudgetLedger as MemoryBudgetLedger
from policies.ledger._sql import SqlBudgetLedger as SqlBudgetLedger
from policies.ledger._storage import DirectWriter as DirectWriter
from policies.ledger._storage import begin_write as begin_write
from policies.ledger._storage import describe_error as describe_error
from policies.ledger._storage import make_engine as make_engine

__all__ = [
    "Balance",
    "BudgetExhausted",
    "BudgetLedger",
    "DirectWriter",
    "LedgerError",
    "MemoryBudgetLedger",
    "SqlBudgetLedger",
    "begin_write",
    "describe_error",
    "make_engine",
]
