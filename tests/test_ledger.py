"""The budget ledger never overspends: threads, processes, SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from policies import BudgetCharge
from policies.ledger import (
    BudgetExhausted,
    BudgetLedger,
    DirectWriter,
    MemoryBudgetLedger,
    SqlBudgetLedger,
    begin_write,
    make_engine,
)
from policies.ledger._ledger import Reservations

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

    @pytest.fixture(params=[True, False], ids=["durable", "deferred"])
    def ledger(
        self, tmp_path: Path, request: pytest.FixtureRequest
    ) -> Iterator[BudgetLedger]:
        ledger = SqlBudgetLedger(
            f"sqlite:///{tmp_path / 'state.db'}", durable_commits=request.param
        )
        yield ledger
        ledger.close()


@pytest.mark.postgres
class TestPostgresLedger(LedgerContract):
    __test__ = True

    @pytest.fixture
    def ledger(self, postgres_url: str) -> Iterator[BudgetLedger]:
        ledger = SqlBudgetLedger(postgres_url, durable_commits=False)
        engine = sa.create_engine(postgres_url)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM budget_spend"))
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
    engine.dispose()
    ledger.close()
    assert _run_processes(postgres_url) == 30


def test_reservations_forget_the_oldest_past_their_capacity() -> None:
    held: Reservations[int] = Reservations(capacity=3)
    for n in range(5):
        held.hold(f"r{n}", [n])
    assert held.take("r0") == [] and held.take("r1") == []
    assert held.take("r4") == [4]
    assert held.take("r4") == []


def test_a_forgotten_reservation_stays_spent(tmp_path: Path) -> None:
    ledger = SqlBudgetLedger(f"sqlite:///{tmp_path / 'state.db'}")
    ledger.reserve("old", [charge(0.25)], now=NOW)
    ledger.release("unknown")  # nothing to give back
    ledger.release("old")
    ledger.release("old")  # idempotent
    assert ledger.balances([charge(0.0)])[0].spent_rho == 0.0
    ledger.reserve("kept", [charge(0.25)], now=NOW)
    ledger.close()
    reopened = SqlBudgetLedger(f"sqlite:///{tmp_path / 'state.db'}")
    reopened.release("kept")  # another process: it cannot give back
    assert reopened.balances([charge(0.0)])[0].spent_rho == pytest.approx(0.25)
    reopened.close()


def test_deferred_commits_are_asked_of_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    for durable, level in ((True, 2), (False, 1)):  # FULL, NORMAL
        engine = make_engine(url, durable_commits=durable)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == level
        engine.dispose()


@pytest.mark.postgres
def test_deferred_commits_are_asked_of_postgresql(postgres_url: str) -> None:
    for durable, setting in ((True, "on"), (False, "off")):
        engine = make_engine(postgres_url, durable_commits=durable)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == setting
        engine.dispose()


def _no_busy_wait(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA busy_timeout=0")


def test_writers_of_one_sqlite_file_take_turns_without_busy_waits(
    tmp_path: Path,
) -> None:
    """Two engines on one file, 8 threads: every write commits, none meets a lock."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engines = [make_engine(url), make_engine(url)]
    for engine in engines:  # after make_engine's own: a lock would fail at once
        sa.event.listen(engine, "connect", _no_busy_wait)
    with begin_write(engines[0]) as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    errors: list[BaseException] = []

    def work(engine: sa.Engine) -> None:
        try:
            for n in range(50):
                with begin_write(engine) as conn:
                    conn.exec_driver_sql(f"INSERT INTO t VALUES ({n})")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(engines[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engines[0].connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 400
    for engine in engines:
        engine.dispose()


_pairs = sa.Table(
    "direct_pairs",
    sa.MetaData(),
    sa.Column("k", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


def _direct_writer_round(url: str) -> None:
    engine = make_engine(url)
    _pairs.drop(engine, checkfirst=True)
    _pairs.create(engine)
    writer = DirectWriter(engine)
    insert = writer.prepare(sa.insert(_pairs), ("k", "at"))
    count = writer.prepare(sa.select(sa.func.count()).select_from(_pairs))
    try:
        with writer.transaction() as cursor:
            cursor.execute(insert.sql, insert.params({"k": 1, "at": NOW}))
        # A duplicate key part-way: the whole transaction is rolled back, and the
        # driver's error arrives as SQLAlchemy's.
        with pytest.raises(sa.exc.IntegrityError):
            with writer.transaction() as cursor:
                cursor.execute(insert.sql, insert.params({"k": 2, "at": NOW}))
                cursor.execute(insert.sql, insert.params({"k": 1, "at": NOW}))
        with pytest.raises(RuntimeError):  # any error in the body rolls back too
            with writer.transaction() as cursor:
                cursor.execute(insert.sql, insert.params({"k": 3, "at": NOW}))
                raise RuntimeError("caller gave up")

        # The writer is usable afterwards, from several threads at once.
        def add(base: int) -> None:
            for i in range(20):
                with writer.transaction() as cursor:
                    cursor.execute(
                        insert.sql, insert.params({"k": base + i, "at": NOW})
                    )

        threads = [threading.Thread(target=add, args=(100 * t,)) for t in range(1, 5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with writer.transaction() as cursor:
            cursor.execute(count.sql, count.params({}))
            assert cursor.fetchone()[0] == 81
        with engine.connect() as conn:
            keys = [r.k for r in conn.execute(sa.select(_pairs.c.k))]
            [at] = {r.at for r in conn.execute(sa.select(_pairs.c.at))}
        assert 2 not in keys and 3 not in keys
        assert at.replace(tzinfo=UTC) == NOW  # the DateTime went through its type
    finally:
        writer.close()
        _pairs.drop(engine, checkfirst=True)
        engine.dispose()


def test_direct_writer_sqlite(tmp_path: Path) -> None:
    _direct_writer_round(f"sqlite:///{tmp_path / 'state.db'}")


@pytest.mark.postgres
def test_direct_writer_postgres(postgres_url: str) -> None:
    _direct_writer_round(postgres_url)


def test_direct_writer_survives_a_connection_lost_mid_transaction(
    tmp_path: Path,
) -> None:
    """The caller's error wins over the broken connection; the next one is fresh."""
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    writer = DirectWriter(engine)
    one = writer.prepare(sa.select(sa.literal(1)))
    try:
        with pytest.raises(RuntimeError, match="caller gave up"):
            with writer.transaction() as cursor:
                cursor.connection.close()  # the driver connection dies
                raise RuntimeError("caller gave up")
        with writer.transaction() as cursor:
            cursor.execute(one.sql, one.params({}))
            assert cursor.fetchone()[0] == 1
    finally:
        writer.close()
        engine.dispose()


def test_direct_writer_on_in_memory_sqlite_serialises_threads() -> None:
    """No file lock exists for :memory:, yet the kept connection is never shared."""
    engine = make_engine("sqlite://")
    writer = DirectWriter(engine)
    one = writer.prepare(sa.select(sa.literal(1)))
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                with writer.transaction() as cursor:
                    cursor.execute(one.sql, one.params({}))
                    assert cursor.fetchone()[0] == 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    engine.dispose()
    assert errors == []
