"""The job store contract, on in-memory SQLite, a SQLite file and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from coordinator.training import JobNotFound, JobStore, SqlJobStore

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class StoreContract:
    __test__ = False

    def store(self, tmp_path: Path) -> JobStore:
        raise NotImplementedError

    def test_a_job_round_trip(self, tmp_path: Path) -> None:
        store = self.store(tmp_path)
        job_id = uuid.uuid4().hex[:16]
        try:
            created = store.create(
                job_id,
                spec={"job": {"app": "mlp"}},
                federation="demo",
                nodes=["agency-a/node", "agency-b/node"],
                rounds_total=3,
                now=NOW,
            )
            assert (created.status, created.rounds_done) == ("running", 0)
            store.finish_round(
                job_id, 1, {"round": 1}, checkpoint=b"c1", strategy_state=b"s1", now=NOW
            )
            store.finish_round(
                job_id,
                2,
                {"round": 2},
                checkpoint=b"c2",
                strategy_state=b"s2",
                now=NOW + timedelta(seconds=1),
            )
            job = store.get(job_id)
            assert (job.rounds_done, job.checkpoint, job.strategy_state) == (
                2,
                b"c2",
                b"s2",
            )
            assert job.created_at == NOW and job.updated_at.tzinfo is not None
            assert [r["round"] for r in store.rounds(job_id)] == [1, 2]
            store.update(job_id, now=NOW, status="interrupted", input_names=["x"])
            assert store.get(job_id).input_names == ["x"]
            store.save_model(job_id, b"arrays", {"format": "accord-model/1"}, now=NOW)
            assert store.get(job_id).status == "completed"
            assert store.model(job_id).provenance == {"format": "accord-model/1"}
            assert job_id in [j.id for j in store.jobs()]
        finally:
            store.close()

    def test_unknown_jobs_and_models(self, tmp_path: Path) -> None:
        store = self.store(tmp_path)
        try:
            with pytest.raises(JobNotFound):
                store.get("nope")
            with pytest.raises(JobNotFound):
                store.model("nope")
        finally:
            store.close()


class TestMemoryStore(StoreContract):
    __test__ = True

    def store(self, tmp_path: Path) -> JobStore:
        return SqlJobStore("sqlite://")


class TestSqliteFileStore(StoreContract):
    __test__ = True

    def store(self, tmp_path: Path) -> JobStore:
        return SqlJobStore(f"sqlite:///{tmp_path / 'jobs.db'}")


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    __test__ = True

    @pytest.fixture(autouse=True)
    def _url(self, postgres_url: str) -> None:
        self.url = postgres_url

    def store(self, tmp_path: Path) -> JobStore:
        return SqlJobStore(self.url)
