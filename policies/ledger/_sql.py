"""The ledger in SQL (SQLite in WAL mode, or PostgreSQL), safe across processes.

Each charge is one conditional upsert -- ``INSERT ... ON CONFLICT DO UPDATE SET spent
= spent + cost WHERE spent + cost <= limit RETURNING spent`` -- inside a single
transaction: the database serialises concurrent updates of a row and re-checks the
condition, so concurrent requests -- threads or processes -- can never overspend.
A charge that does not fit returns no row and rolls the whole transaction back.

What a request reserved is kept in memory (:class:`Reservations`): only the process
that reserved gives it back, after a failed computation. A crash in between leaves
the charge spent -- the safe side -- and nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from policies._request import BudgetCharge
from policies.ledger._errors import BudgetExhausted, LedgerError
from policies.ledger._ledger import Balance, BudgetLedger, Reservations
from policies.ledger._storage import (
    DirectWriter,
    begin_write,
    describe_error,
    make_engine,
)
from policies.ledger._units import cost_units, limit_units, to_rho

metadata = sa.MetaData()

spend = sa.Table(
    "budget_spend",
    metadata,
    sa.Column("account", sa.String(512), primary_key=True),
    sa.Column("budget_id", sa.String(128), primary_key=True),
    sa.Column("period_key", sa.String(64), primary_key=True),
    sa.Column("spent_nrho", sa.BigInteger, nullable=False, default=0),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

_KEY = ("account", "budget_id", "period_key")

#: The spent units of one budget row.
_SPENT = sa.select(spend.c.spent_nrho).where(
    *(spend.c[name] == sa.bindparam(name) for name in _KEY)
)


def _charge_statement(dialect: str) -> Any:
    """Return the conditional upsert of one charge, for ``dialect``."""
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(spend).values(
        account=sa.bindparam("account"),
        budget_id=sa.bindparam("budget_id"),
        period_key=sa.bindparam("period_key"),
        spent_nrho=sa.bindparam("cost"),
        updated_at=sa.bindparam("now"),
    )
    return stmt.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={
            "spent_nrho": spend.c.spent_nrho + stmt.excluded.spent_nrho,
            "updated_at": stmt.excluded.updated_at,
        },
        where=spend.c.spent_nrho + stmt.excluded.spent_nrho <= sa.bindparam("limit"),
    ).returning(spend.c.spent_nrho)


@contextlib.contextmanager
def _ledger_errors(action: str) -> Iterator[None]:
    """Turn a database error into :class:`LedgerError` naming ``action``."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise LedgerError(f"cannot {action}: {describe_error(exc)}") from None


def _key(charge: BudgetCharge) -> dict[str, str]:
    return {
        "account": charge.account,
        "budget_id": charge.budget_id,
        "period_key": charge.period_key,
    }


class SqlBudgetLedger(BudgetLedger):
    """The ledger in the node's state database.

    Parameters
    ----------
    url : str
        SQLAlchemy URL: ``sqlite:///path`` (WAL, synchronous=FULL) or
        ``postgresql+psycopg://...``.
    durable_commits : bool, optional
        ``False`` when a durable commit to the same database always follows a
        reservation before its answer leaves -- the node's decision record -- so
        the reservation need not wait for the disk itself (see
        :func:`~policies.ledger.make_engine`).
    """

    def __init__(self, url: str, *, durable_commits: bool = True) -> None:
        self._engine = make_engine(url, durable_commits=durable_commits)
        try:
            metadata.create_all(self._engine)
        except sa.exc.SQLAlchemyError as exc:
            raise LedgerError(
                f"cannot open the budget ledger: {type(exc).__name__}"
            ) from None
        self._writer = DirectWriter(self._engine)
        self._charge = self._writer.prepare(
            _charge_statement(self._engine.dialect.name)
        )
        self._spent = self._writer.prepare(_SPENT)
        self._reserved: Reservations[tuple[dict[str, str], int]] = Reservations()

    def reserve(
        self, request_id: str, charges: Sequence[BudgetCharge], *, now: datetime
    ) -> list[Balance]:
        """Reserve all charges in one transaction, or none."""
        balances: list[Balance] = []
        taken: list[tuple[dict[str, str], int]] = []
        with _ledger_errors("reserve budget"), self._writer.transaction() as cursor:
            for charge in charges:
                key = _key(charge)
                cost = cost_units(charge.cost_rho)
                limit = limit_units(charge.limit_rho)
                row = None
                if cost <= limit:
                    values = {**key, "cost": cost, "limit": limit, "now": now}
                    cursor.execute(self._charge.sql, self._charge.params(values))
                    row = cursor.fetchone()
                if row is None:
                    cursor.execute(self._spent.sql, self._spent.params(key))
                    held = cursor.fetchone()
                    raise BudgetExhausted(
                        charge.budget_id,
                        to_rho(max(0, limit - int(held[0] if held else 0))),
                        charge.cost_rho,
                    )
                taken.append((key, cost))
                balances.append(Balance(charge, to_rho(int(row[0]))))
        self._reserved.hold(request_id, taken)
        return balances

    def release(self, request_id: str) -> None:
        """Give back a reservation (idempotent)."""
        taken = self._reserved.take(request_id)
        if not taken:
            return
        with _ledger_errors("release budget"), begin_write(self._engine) as conn:
            for key, units in taken:
                conn.execute(
                    sa.update(spend)
                    .where(*(spend.c[name] == key[name] for name in _KEY))
                    .values(spent_nrho=spend.c.spent_nrho - units)
                )

    def balances(self, charges: Sequence[BudgetCharge]) -> list[Balance]:
        """Return the current balances."""
        with _ledger_errors("read budgets"), self._engine.connect() as conn:
            return [
                Balance(c, to_rho(int(conn.execute(_SPENT, _key(c)).scalar() or 0)))
                for c in charges
            ]

    def close(self) -> None:
        """Dispose of the connection pool."""
        self._writer.close()
        self._engine.dispose()
