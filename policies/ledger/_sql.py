"""The ledger in SQL (SQLite in WAL mode, or PostgreSQL), safe across processes.

Each charge is one conditional ``UPDATE ... SET spent = spent + cost WHERE spent + cost
<= limit`` inside a single transaction: the database serialises concurrent updates of a
row and re-checks the condition, so concurrent requests -- threads or processes -- can
never overspend. Any charge that does not fit rolls the whole transaction back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from policies._request import BudgetCharge
from policies.ledger._errors import BudgetExhausted, LedgerError
from policies.ledger._ledger import Balance, BudgetLedger
from policies.ledger._storage import make_engine
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

reservations = sa.Table(
    "budget_reservations",
    metadata,
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("charges", sa.Text, nullable=False),
)


class SqlBudgetLedger(BudgetLedger):
    """The ledger in the node's state database.

    Parameters
    ----------
    url : str
        SQLAlchemy URL: ``sqlite:///path`` (WAL, synchronous=FULL) or
        ``postgresql+psycopg://...``.
    """

    def __init__(self, url: str) -> None:
        self._engine = make_engine(url)
        try:
            metadata.create_all(self._engine)
        except sa.exc.SQLAlchemyError as exc:
            raise LedgerError(
                f"cannot open the budget ledger: {type(exc).__name__}"
            ) from None

    def _insert_missing(
        self, conn: sa.Connection, charge: BudgetCharge, now: datetime
    ) -> None:
        values = {
            "account": charge.account,
            "budget_id": charge.budget_id,
            "period_key": charge.period_key,
            "spent_nrho": 0,
            "updated_at": now,
        }
        stmt: Any
        if self._engine.dialect.name == "postgresql":
            stmt = postgresql.insert(spend).values(**values).on_conflict_do_nothing()
        else:
            stmt = sqlite.insert(spend).values(**values).on_conflict_do_nothing()
        conn.execute(stmt)

    def _spent(self, conn: sa.Connection, charge: BudgetCharge) -> int:
        value = conn.execute(
            sa.select(spend.c.spent_nrho).where(*self._where(charge))
        ).scalar_one_or_none()
        return int(value or 0)

    @staticmethod
    def _where(charge: BudgetCharge) -> list[sa.ColumnElement[bool]]:
        return [
            spend.c.account == charge.account,
            spend.c.budget_id == charge.budget_id,
            spend.c.period_key == charge.period_key,
        ]

    def reserve(
        self, request_id: str, charges: Sequence[BudgetCharge], *, now: datetime
    ) -> list[Balance]:
        """Reserve all charges in one transaction, or none."""
        with self._engine.begin() as conn:
            for charge in charges:
                self._insert_missing(conn, charge, now)
            for charge in charges:
                cost = cost_units(charge.cost_rho)
                limit = limit_units(charge.limit_rho)
                done = conn.execute(
                    sa.update(spend)
                    .where(*self._where(charge), spend.c.spent_nrho + cost <= limit)
                    .values(spent_nrho=spend.c.spent_nrho + cost, updated_at=now)
                )
                if done.rowcount != 1:
                    remaining = max(0, limit - self._spent(conn, charge))
                    raise BudgetExhausted(
                        charge.budget_id, to_rho(remaining), charge.cost_rho
                    )
            conn.execute(
                sa.insert(reservations).values(
                    request_id=request_id,
                    created_at=now,
                    charges=json.dumps(
                        [
                            [
                                c.account,
                                c.budget_id,
                                c.period_key,
                                cost_units(c.cost_rho),
                            ]
                            for c in charges
                        ]
                    ),
                )
            )
            return [Balance(c, to_rho(self._spent(conn, c))) for c in charges]

    def release(self, request_id: str) -> None:
        """Give back a reservation (idempotent)."""
        with self._engine.begin() as conn:
            row = conn.execute(
                sa.delete(reservations)
                .where(reservations.c.request_id == request_id)
                .returning(reservations.c.charges)
            ).scalar_one_or_none()
            if row is None:
                return
            for account, budget_id, period_key, units in json.loads(row):
                conn.execute(
                    sa.update(spend)
                    .where(
                        spend.c.account == account,
                        spend.c.budget_id == budget_id,
                        spend.c.period_key == period_key,
                    )
                    .values(spent_nrho=spend.c.spent_nrho - units)
                )

    def balances(self, charges: Sequence[BudgetCharge]) -> list[Balance]:
        """Return the current balances."""
        with self._engine.connect() as conn:
            return [Balance(c, to_rho(self._spent(conn, c))) for c in charges]

    def close(self) -> None:
        """Dispose of the connection pool."""
        self._engine.dispose()
