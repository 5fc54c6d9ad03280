"""The job store: training jobs, their rounds and final models (SQLModel).

SQLite by default (``sqlite:///accord-jobs.db``, WAL), PostgreSQL by URL
(``postgresql+psycopg://...``). A job is written after every completed round --
metrics, participants, privacy spent, and a checkpoint of the model and of the
strategy's state -- so a restarted coordinator resumes from the last completed round.

Errors::

    JobStoreError
      JobNotFound
"""

from __future__ import annotations

import abc
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from coordinator._errors import CoordinatorError

#: Job statuses.
STATUSES = ("running", "interrupted", "failed", "completed")


class JobStoreError(CoordinatorError):
    """The job store cannot be opened or written."""


class JobNotFound(JobStoreError):
    """No job (or no model) with that id."""


class JobRow(SQLModel, table=True):
    """One training job."""

    __tablename__ = "training_jobs"

    id: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    status: str = Field(max_length=16, index=True)
    federation: str = Field(default="", max_length=128)
    spec: str = Field(sa_type=sa.Text)
    nodes: str = Field(default="[]", sa_type=sa.Text)
    rounds_total: int
    rounds_done: int = 0
    error: str = Field(default="", sa_type=sa.Text)
    app_digest: str = Field(default="", max_length=80)
    input_names: str = Field(default="[]", sa_type=sa.Text)
    checkpoint: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    strategy_state: bytes | None = Field(default=None, sa_type=sa.LargeBinary)


class RoundRow(SQLModel, table=True):
    """One completed round of a job."""

    __tablename__ = "training_rounds"

    job_id: str = Field(primary_key=True, foreign_key="training_jobs.id", max_length=64)
    round: int = Field(primary_key=True)
    finished_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    report: str = Field(sa_type=sa.Text)


class ModelRow(SQLModel, table=True):
    """The final model of a job, with its provenance."""

    __tablename__ = "training_models"

    job_id: str = Field(primary_key=True, foreign_key="training_jobs.id", max_length=64)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    arrays: bytes = Field(sa_type=sa.LargeBinary)
    provenance: str = Field(sa_type=sa.Text)


@dataclass(frozen=True)
class JobRecord:
    """A job as the store returns it (aware datetimes, decoded JSON)."""

    id: str
    created_at: datetime
    updated_at: datetime
    status: str
    federation: str
    spec: dict[str, Any]
    nodes: list[str]
    rounds_total: int
    rounds_done: int
    error: str
    app_digest: str
    input_names: list[str]
    checkpoint: bytes | None
    strategy_state: bytes | None


@dataclass(frozen=True)
class ModelRecord:
    """A stored model: its arrays (``.npz`` bytes) and provenance."""

    job_id: str
    created_at: datetime
    arrays: bytes
    provenance: dict[str, Any]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _record(row: JobRow) -> JobRecord:
    return JobRecord(
        id=row.id,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        status=row.status,
        federation=row.federation,
        spec=json.loads(row.spec),
        nodes=json.loads(row.nodes),
        rounds_total=row.rounds_total,
        rounds_done=row.rounds_done,
        error=row.error,
        app_digest=row.app_digest,
        input_names=json.loads(row.input_names),
        checkpoint=row.checkpoint,
        strategy_state=row.strategy_state,
    )


class JobStore(abc.ABC):
    """Where training jobs, rounds and models persist."""

    @abc.abstractmethod
    def create(
        self,
        job_id: str,
        *,
        spec: dict[str, Any],
        federation: str,
        nodes: Sequence[str],
        rounds_total: int,
        now: datetime,
    ) -> JobRecord:
        """Record a new running job."""

    @abc.abstractmethod
    def get(self, job_id: str) -> JobRecord:
        """Return a job; raise `JobNotFound`."""

    @abc.abstractmethod
    def jobs(self, *, limit: int = 100) -> list[JobRecord]:
        """Return the latest jobs, newest first."""

    @abc.abstractmethod
    def update(self, job_id: str, *, now: datetime, **fields: Any) -> None:
        """Change fields of a job (``status``, ``error``, ``app_digest``, ...)."""

    @abc.abstractmethod
    def finish_round(
        self,
        job_id: str,
        round_: int,
        report: dict[str, Any],
        *,
        checkpoint: bytes,
        strategy_state: bytes,
        now: datetime,
    ) -> None:
        """Record a completed round and the checkpoint after it, atomically."""

    @abc.abstractmethod
    def rounds(self, job_id: str) -> list[dict[str, Any]]:
        """Return the reports of a job's completed rounds, in order."""

    @abc.abstractmethod
    def save_model(
        self, job_id: str, arrays: bytes, provenance: dict[str, Any], *, now: datetime
    ) -> None:
        """Store the final model and mark the job completed."""

    @abc.abstractmethod
    def model(self, job_id: str) -> ModelRecord:
        """Return a job's final model; raise `JobNotFound`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class SqlJobStore(JobStore):
    """The job store in SQLite (default) or PostgreSQL.

    Parameters
    ----------
    url : str
        SQLAlchemy URL; ``sqlite://`` alone is an in-memory store (tests).
    """

    def __init__(self, url: str) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        try:
            if url in ("sqlite://", "sqlite:///:memory:"):
                self._engine = create_engine(
                    "sqlite://",
                    connect_args={"check_same_thread": False},
                    poolclass=StaticPool,
                )
            elif url.startswith("sqlite"):
                self._engine = create_engine(
                    url, connect_args={"check_same_thread": False, "timeout": 30}
                )
                with self._engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            else:
                self._engine = create_engine(url, pool_pre_ping=True)
            SQLModel.metadata.create_all(
                self._engine,
                tables=[
                    SQLModel.metadata.tables[name]
                    for name in ("training_jobs", "training_rounds", "training_models")
                ],
            )
        except (sa.exc.SQLAlchemyError, ImportError) as exc:
            raise JobStoreError(
                f"cannot open the job store at "
                f"{sa.engine.make_url(url).render_as_string(hide_password=True)}: "
                f"{type(exc).__name__}"
            ) from None

    def create(
        self,
        job_id: str,
        *,
        spec: dict[str, Any],
        federation: str,
        nodes: Sequence[str],
        rounds_total: int,
        now: datetime,
    ) -> JobRecord:
        """Record a new running job."""
        row = JobRow(
            id=job_id,
            created_at=now,
            updated_at=now,
            status="running",
            federation=federation,
            spec=json.dumps(spec, sort_keys=True),
            nodes=json.dumps(list(nodes)),
            rounds_total=rounds_total,
        )
        with Session(self._engine) as session:
            session.add(row)
            session.commit()
            session.refresh(row)
            return _record(row)

    def _row(self, session: Session, job_id: str) -> JobRow:
        row = session.get(JobRow, job_id)
        if row is None:
            raise JobNotFound(f"no training job {job_id!r} in the job store")
        return row

    def get(self, job_id: str) -> JobRecord:
        """Return a job."""
        with Session(self._engine) as session:
            return _record(self._row(session, job_id))

    def jobs(self, *, limit: int = 100) -> list[JobRecord]:
        """Return the latest jobs, newest first."""
        with Session(self._engine) as session:
            rows = session.exec(
                select(JobRow).order_by(col(JobRow.created_at).desc()).limit(limit)
            ).all()
            return [_record(r) for r in rows]

    def update(self, job_id: str, *, now: datetime, **fields: Any) -> None:
        """Change fields of a job."""
        with Session(self._engine) as session:
            row = self._row(session, job_id)
            for name, value in fields.items():
                if name in ("nodes", "input_names"):
                    value = json.dumps(list(value))
                setattr(row, name, value)
            row.updated_at = now
            session.add(row)
            session.commit()

    def finish_round(
        self,
        job_id: str,
        round_: int,
        report: dict[str, Any],
        *,
        checkpoint: bytes,
        strategy_state: bytes,
        now: datetime,
    ) -> None:
        """Record a completed round and the checkpoint after it, in one transaction."""
        with Session(self._engine) as session:
            row = self._row(session, job_id)
            existing = session.get(RoundRow, (job_id, round_))
            if existing is not None:
                session.delete(existing)
                session.flush()
            session.add(
                RoundRow(
                    job_id=job_id,
                    round=round_,
                    finished_at=now,
                    report=json.dumps(report, sort_keys=True),
                )
            )
            row.rounds_done = round_
            row.checkpoint = checkpoint
            row.strategy_state = strategy_state
            row.updated_at = now
            session.add(row)
            session.commit()

    def rounds(self, job_id: str) -> list[dict[str, Any]]:
        """Return the reports of a job's completed rounds, in order."""
        with Session(self._engine) as session:
            self._row(session, job_id)
            rows = session.exec(
                select(RoundRow)
                .where(RoundRow.job_id == job_id)
                .order_by(col(RoundRow.round))
            ).all()
            return [json.loads(r.report) for r in rows]

    def save_model(
        self, job_id: str, arrays: bytes, provenance: dict[str, Any], *, now: datetime
    ) -> None:
        """Store the final model and mark the job completed, in one transaction."""
        with Session(self._engine) as session:
            row = self._row(session, job_id)
            existing = session.get(ModelRow, job_id)
            if existing is not None:
                session.delete(existing)
                session.flush()
            session.add(
                ModelRow(
                    job_id=job_id,
                    created_at=now,
                    arrays=arrays,
                    provenance=json.dumps(provenance, sort_keys=True),
                )
            )
            row.status = "completed"
            row.error = ""
            row.updated_at = now
            session.add(row)
            session.commit()

    def model(self, job_id: str) -> ModelRecord:
        """Return a job's final model."""
        with Session(self._engine) as session:
            row = session.get(ModelRow, job_id)
            if row is None:
                raise JobNotFound(f"no model for job {job_id!r} (not completed?)")
            return ModelRecord(
                row.job_id,
                _aware(row.created_at),
                row.arrays,
                json.loads(row.provenance),
            )

    def close(self) -> None:
        """Dispose of the connection pool."""
        self._engine.dispose()
