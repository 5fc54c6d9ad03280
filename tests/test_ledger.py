"""The budget ledger never overspends: threads, processes, SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from policies import BudgetCharge
from policies.ledger import (
    BudgetExhausted,
    BudgetLedger,
    MemoryBudgetLedger,
    SqlBudgetLedger,
)

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
PERIOD = datetime(2026, 11, 1, tzinfo=UTC)


def charge(
    cost: float,
    limit: float = 1.0,
    budget: str = "b-life",
    account: str = "spiffe://x/a",
) -> BudgetCharge:
    return BudgetCharge(budget, account, None, None, limit, cost)


def period_charge(cost: float, limit: float) -> BudgetCharge:
    return BudgetCharge(
        "b-30d", "spiffe://x/a", PERIOD, datetime(2026, 12, 1, tzinfo=UTC), limit, cost
    )


class LedgerContract:
    """Behaviour every ledger implementation must have."""

    __test__ = False

    @pytest.fixture
    def ledger(self) -> Iterator[BudgetLedger]:
        raise NotImplementedError

    def test_reserve_until_exhausted(self, ledger: BudgetLedger) -> None:
        for i in range(10):
            balances = ledger.reserve(f"r{i}", [charge(0.1)], now=NOW)
        assert balances[0].spent_rho == pytest.approx(1.0)
        assert balances[0].remaining_rho == pytest.approx(0.0)
        with pytest.raises(BudgetExhausted) as info:
            ledger.reserve("r10", [charge(0.1)], now=NOW)
        assert info.value.budget_id == "b-life"

    def test_all_or_nothing(self, ledger: BudgetLedger) -> None:
        ledger.reserve("a", [period_charge(0.45, 0.5)], now=NOW)
        with pytest.raises(BudgetExhausted):
            ledger.reserve("b", [charge(0.1), period_charge(0.1, 0.5)], now=NOW)
        # The lifetime budget was not charged by the refused request.
        [life, period] = ledger.balances([charge(0.0), period_charge(0.0, 0.5)])
        assert life.spent_rho == 0.0
        assert period.spent_rho == pytest.approx(0.45)

    def test_release_gives_back(self, ledger: BudgetLedger) -> None:
        ledger.reserve("a", [charge(0.7)], now=NOW)
        ledger.release("a")
        ledger.release("a")  # idempotent
        assert ledger.balances([charge(0.0)])[0].spent_rho == 0.0
        ledger.reserve("b", [charge(1.0)], now=NOW)

    def test_accounts_and_periods_are_separate(self, ledger: BudgetLedger) -> None:
        ledger.reserve("a", [charge(1.0, account="u1")], now=NOW)
        ledger.reserve("b", [charge(1.0, account="u2")], now=NOW)
        later = BudgetCharge(
            "b-30d", "spiffe://x/a", datetime(2026, 12, 1, tzinfo=UTC), None, 0.5, 0.5
        )
        ledger.reserve("c", [period_charge(0.5, 0.5)], now=NOW)
        ledger.reserve("d", [later], now=NOW)

    def test_threshold(self, ledger: BudgetLedger) -> None:
        [balance] = ledger.reserve("a", [charge(0.85)], now=NOW)
        assert balance.past_threshold

    def test_many_threads_never_overspend(self, ledger: BudgetLedger) -> None:
        ok: list[int] = []
        refused: list[int] = []
        lock = threading.Lock()

        def worker(n: int) -> None:
            for i in range(25):
                try:
                    ledger.reserve(f"t{n}-{i}", [charge(0.01, limit=0.5)], now=NOW)
                    with lock:
                        ok.append(1)
                except BudgetExhausted:
                    with lock:
                        refused.append(1)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(ok) == 50
        assert len(refused) == 150
        assert ledger.balances([charge(0.0, limit=0.5)])[0].spent_rho == pytest.approx(
            0.5
        )


class TestMemoryLedger(LedgerContract):
    __test__ = True

    @pytest.fixture
    def ledger(self) -> Iterator[BudgetLedger]:
        yield MemoryBudgetLedger()


class TestSqliteLedger(LedgerContract):
    __test__ = True

    @pytest.fixture
    def ledger(self, tmp_path: Path) -> Iterator[BudgetLedger]:
        ledger = SqlBudgetLedger(f"sqlite:///{tmp_path / 'state.db'}")
        yield ledger
        ledger.close()


@pytest.mark.postgres
class TestPostgresLedger(LedgerContract):
    __test__ = True

    @pytest.fixture
    def ledger(self, postgres_url: str) -> Iterator[BudgetLedger]:
        ledger = SqlBudgetLedger(postgres_url)
        engine = sa.create_engine(postgres_url)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM budget_spend"))
            conn.execute(sa.text("DELETE FROM budget_reservations"))
        engine.dispose()
        yield ledger
        ledger.close()


def _process_worker(
    url: str, worker: int, attempts: int, results: multiprocessing.Queue[int]
) -> None:
    ledger = SqlBudgetLedger(url)
    granted = 0
    for i in range(attempts):
        try:
            ledger.reserve(
                f"p{worker}-{i}-{uuid.uuid4().hex}", [charge(0.01, limit=0.3)], now=NOW
            )
            granted += 1
        except BudgetExhausted:
            pass
    ledger.close()
    results.put(granted)


def _run_processes(url: str) -> int:
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[int] = ctx.Queue()
    procs = [
        ctx.Process(target=_process_worker, args=(url, n, 20, results))
        for n in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    return sum(results.get(timeout=5) for _ in procs)


@pytest.mark.slow
def test_several_processes_never_overspend_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    SqlBudgetLedger(url).close()
    assert _run_processes(url) == 30
    ledger = SqlBudgetLedger(url)
    assert ledger.balances([charge(0.0, limit=0.3)])[0].spent_rho == pytest.approx(0.3)
    ledger.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_several_processes_never_overspend_postgres(postgres_url: str) -> None:
    ledger = SqlBudgetLedger(postgres_url)
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM budget_spend"))
        conn.execute(sa.text("DELETE FROM budget_reservations"))
    engine.dispose()
    ledger.close()
    assert _run_processes(postgres_url) == 30
