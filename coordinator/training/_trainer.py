"""Run a training job: a Flower strategy over `AccordGrid`, one round at a time.

Each round runs ``strategy.start(grid, arrays, num_rounds=1)`` with the grid's
round offset set, so the nodes see absolute round numbers (their policies cap
rounds across restarts); after the round the job store records its report and a
checkpoint (model and strategy state) in one transaction. A restarted
coordinator resumes from the last completed round; a node that drops out or
refuses is reported and the strategy goes on with the others while at least
``min_nodes`` remain.

Errors::

    CoordinatorError
      JobFailed           the job stopped (recorded as failed in the store)
      JobStoreError / JobNotFound
"""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import numpy as np
from numpy.typing import NDArray

import policies
from accord.v1 import training_service_pb2 as pb
from coordinator._errors import CoordinatorError, NoNodeAnswered
from coordinator._outcome import describe_rpc_error
from coordinator.training import _flower as fl
from coordinator.training._grid import AccordGrid, Delivery, GridJob
from coordinator.training._link import TrainingLink
from coordinator.training._spec import TrainSpec
from coordinator.training._store import JobRecord, JobStore
from coordinator.training._strategies import (
    build_strategy,
    restore_strategy_state,
    strategy_state,
)

Clock = Callable[[], datetime]

#: The model format `accord models export` writes.
MODEL_FORMAT = "accord-model/1"


class JobFailed(CoordinatorError):
    """The job stopped before its last round; the store says why."""

    def __init__(self, job_id: str, message: str) -> None:
        super().__init__(f"job {job_id}: {message}")
        self.job_id = job_id


@dataclass(frozen=True)
class NodeSpend:
    """What one node charged in a round (or over a job), from its receipts.

    Parameters
    ----------
    rho : float
        zCDP rho charged to the requester's budgets at that node.
    delta : float
        The node's policy delta.
    noise_multiplier, clipping_norm : float
        What the node applied last (0: exact, as its policy allows).
    policy_digest : str
        The policy that allowed the messages (last seen).
    messages : int
        Messages the node answered.
    """

    rho: float = 0.0
    delta: float = 1e-6
    noise_multiplier: float = 0.0
    clipping_norm: float = 0.0
    policy_digest: str = ""
    messages: int = 0

    @property
    def epsilon(self) -> float:
        """The loss as epsilon at the node's delta."""
        return policies.epsilon_at(self.rho, self.delta)

    def plus(self, other: NodeSpend) -> NodeSpend:
        """Add ``other`` (a later round) to this spend."""
        return NodeSpend(
            self.rho + other.rho,
            other.delta,
            other.noise_multiplier or self.noise_multiplier,
            other.clipping_norm or self.clipping_norm,
            other.policy_digest or self.policy_digest,
            self.messages + other.messages,
        )


@dataclass(frozen=True)
class RoundReport:
    """One completed round, as the store keeps it and progress shows it."""

    round: int
    rounds: int
    participants: list[str]
    failures: dict[str, str]
    train_metrics: dict[str, float]
    evaluate_metrics: dict[str, float]
    privacy: dict[str, NodeSpend]
    seconds: float

    @property
    def loss(self) -> float | None:
        """The aggregated evaluation loss, if the nodes evaluated."""
        return self.evaluate_metrics.get("loss")

    @property
    def accuracy(self) -> float | None:
        """The aggregated evaluation accuracy, for classifiers."""
        return self.evaluate_metrics.get("accuracy")

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        data = asdict(self)
        data["privacy"] = {
            node: {**asdict(spend), "epsilon": spend.epsilon}
            for node, spend in self.privacy.items()
        }
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundReport:
        """Read a report written by `to_json`."""
        privacy = {
            node: NodeSpend(**{k: v for k, v in spend.items() if k != "epsilon"})
            for node, spend in data["privacy"].items()
        }
        return cls(**{**data, "privacy": privacy})


@dataclass(frozen=True)
class JobResult:
    """A finished (or stopped) job: its record, rounds and the model's provenance."""

    job: JobRecord
    rounds: list[RoundReport]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def spent(self) -> dict[str, NodeSpend]:
        """Privacy spent per node over the completed rounds."""
        return total_spend(self.rounds)


def total_spend(rounds: Sequence[RoundReport]) -> dict[str, NodeSpend]:
    """Sum the per-node spend of ``rounds``."""
    total: dict[str, NodeSpend] = {}
    for report in rounds:
        for node, spend in report.privacy.items():
            total[node] = total.get(node, NodeSpend()).plus(spend)
    return total


def arrays_to_npz(arrays: dict[str, NDArray[Any]]) -> bytes:
    """Serialize named arrays as ``.npz`` bytes (no pickles)."""
    buffer = io.BytesIO()
    named: dict[str, Any] = dict(arrays)
    np.savez(buffer, **named)
    return buffer.getvalue()


def arrays_from_npz(data: bytes) -> dict[str, NDArray[Any]]:
    """Read `arrays_to_npz` bytes, in their order (never unpickles)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _round_spend(deliveries: Sequence[Delivery]) -> dict[str, NodeSpend]:
    spend: dict[str, NodeSpend] = {}
    for delivery in deliveries:
        receipt = delivery.receipt
        if receipt is None:
            continue
        current = NodeSpend(
            receipt.privacy.rho_charged,
            receipt.privacy.delta or 1e-6,
            receipt.noise_multiplier,
            receipt.clipping_norm,
            receipt.policy_digest,
            1,
        )
        spend[delivery.node] = spend.get(delivery.node, NodeSpend()).plus(current)
    return spend


def _metrics(record: Any) -> dict[str, float]:
    if record is None:
        return {}
    return {
        key: float(value)
        for key, value in record.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


class Trainer:
    """Runs and resumes training jobs over a set of node links.

    Parameters
    ----------
    links : Sequence[TrainingLink]
        One link per node.
    store : JobStore
        Where jobs persist.
    federation : str
        The federation's name, recorded with each job.
    clock : Clock
        The clock.
    """

    def __init__(
        self,
        links: Sequence[TrainingLink],
        store: JobStore,
        *,
        federation: str = "",
        clock: Clock = _utcnow,
    ) -> None:
        self.links = list(links)
        self.store = store
        self.federation = federation
        self._clock = clock

    # -- entry points ----------------------------------------------------------

    def start(
        self,
        spec: TrainSpec,
        *,
        job_id: str | None = None,
        on_round: Callable[[RoundReport], None] | None = None,
    ) -> JobResult:
        """Create a job for ``spec`` and run it to the end.

        Raises
        ------
        NoNodeAnswered
            If no node could initialize the model.
        JobFailed
            If the job stopped (the store records why).
        """
        job_id = job_id or secrets.token_hex(8)
        job = self.store.create(
            job_id,
            spec=spec.model_dump(mode="json", by_alias=True),
            federation=self.federation,
            nodes=[link.node.label for link in self.links],
            rounds_total=spec.job.rounds,
            now=self._clock(),
        )
        return self._run(job, spec, on_round)

    def resume(
        self, job_id: str, *, on_round: Callable[[RoundReport], None] | None = None
    ) -> JobResult:
        """Continue a job from its last completed round.

        Raises
        ------
        JobNotFound
            If there is no such job.
        JobFailed
            If the job is already completed, or stops again.
        """
        job = self.store.get(job_id)
        if job.status == "completed":
            raise JobFailed(job_id, "already completed; nothing to resume")
        spec = TrainSpec.model_validate(job.spec)
        self.store.update(job_id, now=self._clock(), status="running", error="")
        return self._run(self.store.get(job_id), spec, on_round)

    # -- the job ---------------------------------------------------------------

    def _initialize(
        self, spec: TrainSpec
    ) -> tuple[dict[str, NDArray[Any]], str, list[str]]:
        job = spec.job
        request = pb.InitializeModelRequest(
            # No digest: the nodes' answer says which they run; each message then
            # names the digest the job expects, and a node running another refuses.
            app=pb.AppReference(name=job.app),
            dataset_id=job.dataset,
            features=job.features,
            label=job.label,
            seed=job.seed,
            options=spec.model,
        )
        problems = []
        for link in self.links:
            try:
                response = link.initialize(request, timeout=job.deadline_seconds)
            except grpc.RpcError as error:
                _, code, _, message, _ = describe_rpc_error(error)
                problems.append(f"{link.node.label}: {code}: {message}")
                continue
            record = fl.arrays_from_bytes(response.arrays)
            arrays = {name: array.numpy() for name, array in record.items()}
            return arrays, response.app_digest, list(response.input_names)
        raise NoNodeAnswered(
            "no node could initialize the model: " + "; ".join(problems)
        )

    def _run(
        self,
        job: JobRecord,
        spec: TrainSpec,
        on_round: Callable[[RoundReport], None] | None,
    ) -> JobResult:
        try:
            return self._rounds(job, spec, on_round)
        except KeyboardInterrupt:
            self.store.update(
                job.id,
                now=self._clock(),
                status="interrupted",
                error="interrupted; resume with accord train --resume",
            )
            raise
        except JobFailed as exc:
            self.store.update(
                job.id, now=self._clock(), status="failed", error=str(exc)
            )
            raise
        except CoordinatorError as exc:
            self.store.update(
                job.id, now=self._clock(), status="failed", error=str(exc)
            )
            raise JobFailed(job.id, str(exc)) from None

    def _rounds(
        self,
        job: JobRecord,
        spec: TrainSpec,
        on_round: Callable[[RoundReport], None] | None,
    ) -> JobResult:
        section = spec.job
        if job.checkpoint is not None and job.rounds_done > 0:
            arrays = arrays_from_npz(job.checkpoint)
            digest = job.app_digest or section.app_digest or ""
            input_names = job.input_names
        else:
            arrays, reported, input_names = self._initialize(spec)
            digest = section.app_digest or reported
            self.store.update(
                job.id,
                now=self._clock(),
                app_digest=digest,
                input_names=input_names,
            )
        with fl.quiet_flower():  # strategies log their settings when built
            strategy = build_strategy(spec.strategy, min_nodes=section.min_nodes)
        if job.strategy_state:
            restore_strategy_state(strategy, job.strategy_state)
        grid = AccordGrid(
            self.links,
            GridJob(
                job_id=job.id,
                app=section.app,
                app_digest=digest,
                dataset=section.dataset,
                features=tuple(section.features),
                label=section.label,
                purpose=section.purpose,
                legal_basis=section.legal_basis,
                justification=section.justification,
                on_behalf_of=section.on_behalf_of,
                noise_multiplier=spec.privacy.noise_multiplier,
                clipping_norm=spec.privacy.clipping_norm,
                secure_aggregation=spec.secure_aggregation.enabled,
                max_weight=spec.secure_aggregation.max_weight,
                min_participants=max(2, section.min_nodes),
            ),
            run_id=int(job.id[:12], 16) if _is_hex(job.id[:12]) else 1,
            deadline=section.deadline_seconds,
            min_nodes=section.min_nodes,
        )
        record = fl.ArrayRecord({k: fl.Array(v) for k, v in arrays.items()})
        try:
            for round_ in range(job.rounds_done + 1, section.rounds + 1):
                live = grid.live_node_ids()
                if len(live) < section.min_nodes:
                    raise JobFailed(
                        job.id,
                        f"round {round_}: {len(live)} node(s) remain, at least "
                        f"{section.min_nodes} required; left out: "
                        + "; ".join(f"{n}: {w}" for n, w in grid.excluded.items()),
                    )
                grid.round_offset = round_ - 1
                began = time.perf_counter()
                with fl.quiet_flower(), fl.task_identity(grid.run.run_id):
                    result = strategy.start(
                        grid,
                        record,
                        num_rounds=1,
                        timeout=section.deadline_seconds * 5 + 5,
                        train_config=fl.ConfigRecord(dict(spec.train)),
                        evaluate_config=fl.ConfigRecord(dict(spec.evaluate)),
                    )
                deliveries = grid.deliveries_of(round_)
                trained = sorted(
                    d.node for d in deliveries if d.category == "train" and d.ok
                )
                if not trained:
                    raise JobFailed(
                        job.id,
                        f"round {round_}: no node trained; "
                        + "; ".join(
                            f"{d.node}: {d.message}" for d in deliveries if not d.ok
                        ),
                    )
                record = result.arrays
                report = RoundReport(
                    round=round_,
                    rounds=section.rounds,
                    participants=trained,
                    failures={
                        f"{d.node} ({d.category})": d.message
                        for d in deliveries
                        if not d.ok
                    },
                    train_metrics=_metrics(result.train_metrics_clientapp.get(1)),
                    evaluate_metrics=_metrics(result.evaluate_metrics_clientapp.get(1)),
                    privacy=_round_spend(deliveries),
                    seconds=time.perf_counter() - began,
                )
                self.store.finish_round(
                    job.id,
                    round_,
                    report.to_json(),
                    checkpoint=arrays_to_npz({k: v.numpy() for k, v in record.items()}),
                    strategy_state=strategy_state(strategy),
                    now=self._clock(),
                )
                if on_round is not None:
                    on_round(report)
        finally:
            grid.close()
        rounds = [RoundReport.from_json(r) for r in self.store.rounds(job.id)]
        final = {k: v.numpy() for k, v in record.items()}
        provenance = self._provenance(
            self.store.get(job.id), spec, digest, input_names, rounds, final
        )
        self.store.save_model(
            job.id, arrays_to_npz(final), provenance, now=self._clock()
        )
        return JobResult(self.store.get(job.id), rounds, provenance)

    def _provenance(
        self,
        job: JobRecord,
        spec: TrainSpec,
        digest: str,
        input_names: list[str],
        rounds: list[RoundReport],
        arrays: dict[str, NDArray[Any]],
    ) -> dict[str, Any]:
        spent = total_spend(rounds)
        contributed: dict[str, int] = {}
        for report in rounds:
            for node in report.participants:
                contributed[node] = contributed.get(node, 0) + 1
        return {
            "format": MODEL_FORMAT,
            "job_id": job.id,
            "federation": job.federation,
            "created_at": job.created_at.isoformat(),
            "finished_at": self._clock().isoformat(),
            "app": {"name": spec.job.app, "digest": digest},
            "dataset": spec.job.dataset,
            "features": spec.job.features,
            "label": spec.job.label,
            "input_names": input_names,
            "purpose": spec.job.purpose,
            "legal_basis": spec.job.legal_basis,
            "strategy": {"name": spec.strategy.name, "params": spec.strategy.params},
            "rounds": len(rounds),
            "train_config": spec.train,
            "privacy_requested": spec.privacy.model_dump(),
            "secure_aggregation": spec.secure_aggregation.enabled,
            "arrays": [
                {"name": n, "dtype": str(a.dtype), "shape": list(a.shape)}
                for n, a in arrays.items()
            ],
            "nodes": [
                {
                    "node": node,
                    "rounds_contributed": contributed.get(node, 0),
                    "messages": spend.messages,
                    "rho": spend.rho,
                    "epsilon": spend.epsilon,
                    "delta": spend.delta,
                    "noise_multiplier": spend.noise_multiplier,
                    "clipping_norm": spend.clipping_norm,
                    "policy_digest": spend.policy_digest,
                }
                for node, spend in sorted(spent.items())
            ],
            "final_metrics": rounds[-1].evaluate_metrics if rounds else {},
        }


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return bool(text)
