"""Evaluation rounds under secure aggregation: only the federation's totals leave.

Three nodes over mutual TLS whose policies require secure aggregation for every
training message. The coordinator's view is recorded by a link that wraps the
real gRPC link (every response and secure-aggregation reply it receives); the
federation-wide metrics are checked against the nodes' data read directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import node
import node.training
from accord.v1 import training_service_pb2 as pb
from coordinator._secure_link import SecureAggregationLink, SecureRound
from coordinator.training import (
    JobFailed,
    JobResult,
    SqlJobStore,
    Trainer,
    TrainingLink,
    TrainSpec,
    arrays_from_npz,
)
from coordinator.training import _flower as fl
from coordinator.training._grid import EXAMPLE_LOSS_BOUND
from node._sources import open_source
from node.training._data import LocalDataCache
from tests._training import (
    FEATURES,
    LABEL,
    ROWS,
    TrainingFederation,
    decisions,
    spec,
    start_training_federation,
    training_policy,
)

AGENCIES = ("agency-a", "agency-b", "agency-c")
SECURE = {"enabled": True}


# The coordinator's view ---------------------------------------------------------


@dataclass
class View:
    """Everything the coordinator received from one node, and hooks to act first."""

    deliveries: list[
        tuple[str, pb.DeliverMessageRequest, pb.DeliverMessageResponse]
    ] = field(default_factory=list)
    steps: list[tuple[str, SecureRound, bytes]] = field(default_factory=list)
    sessions: dict[str, str] = field(default_factory=dict)
    before: dict[tuple[str, SecureRound], Callable[[], None]] = field(
        default_factory=dict
    )

    def received(self) -> list[bytes]:
        return [r.SerializeToString() for _, _, r in self.deliveries] + [
            reply for _, _, reply in self.steps
        ]


class WatchedSecureLink(SecureAggregationLink):
    def __init__(self, inner: SecureAggregationLink, view: View) -> None:
        super().__init__(inner.participant_id, inner.label)
        self.inner = inner
        self.view = view

    def step(
        self, session_id: str, round: SecureRound, payload: bytes, timeout: float
    ) -> bytes:
        category = self.view.sessions.get(session_id, "")
        hook = self.view.before.get((category, round))
        if hook is not None:
            hook()
        reply = self.inner.step(session_id, round, payload, timeout)
        self.view.steps.append((category, round, reply))
        return reply

    def close(self) -> None:
        self.inner.close()


class WatchedLink(TrainingLink):
    """The real gRPC link, recording what comes back."""

    def __init__(self, inner: TrainingLink) -> None:
        super().__init__(inner.node)
        self.inner = inner
        self.view = View()

    def list_apps(self, timeout: float) -> pb.ListTrainingAppsResponse:
        return self.inner.list_apps(timeout)

    def initialize(
        self, request: pb.InitializeModelRequest, timeout: float
    ) -> pb.InitializeModelResponse:
        return self.inner.initialize(request, timeout)

    def deliver(
        self, request: pb.DeliverMessageRequest, timeout: float
    ) -> pb.DeliverMessageResponse:
        message = fl.message_from_bytes(request.message)
        category = message.metadata.message_type.split(".", 1)[0]
        if request.job.HasField("secure_aggregation"):
            self.view.sessions[request.job.secure_aggregation.session_id] = category
        response = self.inner.deliver(request, timeout)
        self.view.deliveries.append((category, request, response))
        return response

    def secure(self, participant_id: int) -> SecureAggregationLink:
        return WatchedSecureLink(self.inner.secure(participant_id), self.view)

    def close(self) -> None:
        self.inner.close()


def run(
    fed: TrainingFederation,
    job: TrainSpec,
    job_id: str,
    prepare: Callable[[dict[str, WatchedLink]], None] | None = None,
) -> tuple[JobResult, dict[str, NDArray[np.float64]], dict[str, WatchedLink]]:
    links = {link.node.agency: WatchedLink(link) for link in fed.links()}
    if prepare is not None:
        prepare(links)
    store = SqlJobStore("sqlite://")
    try:
        trainer = Trainer(list(links.values()), store, federation=fed.fed.name)
        result = trainer.start(job, job_id=job_id)
        model = arrays_from_npz(store.model(job_id).arrays)
    finally:
        for link in links.values():
            link.close()
        store.close()
    return result, model, links


# The metrics, computed directly -------------------------------------------------


@dataclass(frozen=True)
class Sums:
    loss: float
    correct: int
    count: int


def local_sums(fed: TrainingFederation, agency: str, model: dict[str, Any]) -> Sums:
    """One node's evaluation sums of ``model``, from its own data source."""
    site = next(s for s in fed.fed.sites if s.agency == agency)
    (dataset,) = node.load_node_config(site.node_config).datasets
    source = open_source(dataset)
    try:
        layout = node.training.feature_layout(
            dataset.columns, FEATURES, LABEL, "binary-classification"
        )
        data = LocalDataCache().load(dataset, source, layout)
    finally:
        source.close()
    z = data.x @ model["weights"] + model["bias"][0]
    p = np.clip(1.0 / (1.0 + np.exp(-z)), 1e-7, 1.0 - 1e-7)
    losses = -(data.y * np.log(p) + (1.0 - data.y) * np.log1p(-p))
    correct = int(((p >= 0.5) == (data.y >= 0.5)).sum())
    return Sums(float(np.minimum(losses, 10.0).sum()), correct, data.rows)


def federation_wide(
    fed: TrainingFederation,
    agencies: tuple[str, ...],
    model: dict[str, Any],
    *,
    max_weight: int | None = None,
) -> tuple[float, float]:
    """Example-weighted loss and accuracy of ``model`` over ``agencies``."""
    loss = correct = count = 0.0
    for agency in agencies:
        sums = local_sums(fed, agency, model)
        scale = 1.0 if max_weight is None else min(1.0, max_weight / sums.count)
        loss += scale * sums.loss
        correct += scale * sums.correct
        count += scale * sums.count
    return loss / count, correct / count


# Fixtures -------------------------------------------------------------------------


def _start(root: Path) -> TrainingFederation:
    policy = training_policy(secure_aggregation_required=True)
    return start_training_federation(root, dict.fromkeys(AGENCIES, policy))


@pytest.fixture(scope="module")
def required(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainingFederation]:
    fed = _start(tmp_path_factory.mktemp("secure-evaluate"))
    try:
        yield fed
    finally:
        fed.stop()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[TrainingFederation]:
    fed = _start(tmp_path / "fed")
    try:
        yield fed
    finally:
        fed.stop()


# Tests ----------------------------------------------------------------------------


def test_the_coordinator_and_the_nodes_agree_on_the_loss_bound() -> None:
    assert node.training.LOSS_BOUND == EXAMPLE_LOSS_BOUND


def test_a_job_without_secure_aggregation_is_refused(
    required: TrainingFederation,
) -> None:
    with required.trainer() as trainer, pytest.raises(JobFailed, match="no node"):
        trainer.start(spec(job={"rounds": 1}), job_id="unmasked")
    for agency in AGENCIES:
        records = [
            d["decision"]
            for d in decisions(required, agency)
            if d["query_id"].startswith("unmasked/")
        ]
        assert records and set(records) == {"deny"}


def test_evaluation_rounds_pass_a_policy_requiring_secure_aggregation(
    required: TrainingFederation,
) -> None:
    result, model, links = run(
        required, spec(job={"rounds": 2}, secure_aggregation=SECURE), "masked"
    )
    assert result.job.status == "completed"
    for report in result.rounds:
        assert report.participants == [f"{a}/node" for a in AGENCIES]
        assert report.failures == {}
    for link in links.values():
        categories = [c for c, _, _ in link.view.deliveries]
        assert categories == ["train", "evaluate"] * 2
    # Every message, evaluate included, was allowed and charged as before.
    for agency in AGENCIES:
        records = [
            d
            for d in decisions(required, agency)
            if d["query_id"].startswith("masked/")
        ]
        assert [d["decision"] for d in records] == ["allow"] * 4
    for entry in result.provenance["nodes"]:
        assert entry["messages"] == 4
        assert entry["rho"] == pytest.approx(4 * 0.05)
    # No DP, exact allowed: the federation-wide values, up to fixed-point error.
    loss, accuracy = federation_wide(required, AGENCIES, model)
    final = result.rounds[-1]
    assert final.loss == pytest.approx(loss, rel=1e-9, abs=1e-9)
    assert final.accuracy == pytest.approx(accuracy, rel=1e-9, abs=1e-9)
    # ... which no single node's value equals.
    for agency in AGENCIES:
        sums = local_sums(required, agency, model)
        assert abs(sums.loss / sums.count - loss) > 1e-6


def test_the_coordinator_receives_no_per_node_metric(
    required: TrainingFederation,
) -> None:
    result, model, links = run(
        required, spec(job={"rounds": 1}, secure_aggregation=SECURE), "view"
    )
    assert result.rounds[0].failures == {}
    for agency, link in links.items():
        evaluated = [(q, r) for c, q, r in link.view.deliveries if c == "evaluate"]
        assert len(evaluated) == 1
        ((request, response),) = evaluated
        assert response.HasField("opening")
        assert response.opening.vector_length == 3  # loss-sum, count, correct
        reply = fl.message_from_bytes(response.message)
        assert not reply.has_error()
        assert len(reply.content.metric_records) == 0
        assert len(reply.content.array_records) == 0
        assert [r for c, r, _ in link.view.steps if c == "evaluate"] == list(
            SecureRound
        )
        # The node's exact count and number correct, as the encoded words it
        # masked, appear nowhere in what the coordinator received from anyone.
        sums = local_sums(required, agency, model)
        scale = request.job.encoding.scale
        words = [
            np.int64(round(value * scale)).astype("<i8").tobytes()
            for value in (sums.count, sums.correct)
        ]
        for other in links.values():
            for data in other.view.received():
                assert not any(word in data for word in words)
    # The coordinator still learns the federation-wide values.
    loss, accuracy = federation_wide(required, AGENCIES, model)
    assert result.rounds[0].loss == pytest.approx(loss, rel=1e-9, abs=1e-9)
    assert result.rounds[0].accuracy == pytest.approx(accuracy, rel=1e-9, abs=1e-9)


def test_counts_above_max_weight_are_capped_like_train_weights(
    required: TrainingFederation,
) -> None:
    cap = 600
    assert min(ROWS.values()) < cap < max(ROWS.values())
    result, model, _ = run(
        required,
        spec(job={"rounds": 1}, secure_aggregation={**SECURE, "max_weight": cap}),
        "capped",
    )
    loss, accuracy = federation_wide(required, AGENCIES, model, max_weight=cap)
    assert result.rounds[0].loss == pytest.approx(loss, rel=1e-9, abs=1e-9)
    assert result.rounds[0].accuracy == pytest.approx(accuracy, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    ("stage", "counted"),
    [
        # Masked and opened, silent before its masked input: the others' total.
        (SecureRound.MASKED_INPUT, ("agency-a", "agency-b")),
        # Its masked input arrived, then it vanished: it is in the total.
        (SecureRound.UNMASKING, AGENCIES),
    ],
)
def test_a_node_dropping_after_masking_in_an_evaluate_round(
    fresh: TrainingFederation, stage: SecureRound, counted: tuple[str, ...]
) -> None:
    def prepare(links: dict[str, WatchedLink]) -> None:
        links["agency-c"].view.before[("evaluate", stage)] = lambda: fresh.servers[
            "agency-c"
        ].stop(0)

    job = spec(job={"rounds": 1, "deadline_seconds": 5.0}, secure_aggregation=SECURE)
    result, model, links = run(fresh, job, "dropout", prepare)
    assert result.job.status == "completed"
    (report,) = result.rounds
    assert report.participants == [f"{a}/node" for a in AGENCIES]  # all trained
    # agency-c opened the session with its masked sums, answered until ``stage``.
    steps = [r for c, r, _ in links["agency-c"].view.steps if c == "evaluate"]
    assert steps == [r for r in SecureRound if r < stage]
    if counted == AGENCIES:
        assert report.failures == {}
    else:
        assert list(report.failures) == ["agency-c/node (evaluate)"]
        assert stage.name in report.failures["agency-c/node (evaluate)"]
    loss, accuracy = federation_wide(fresh, counted, model)
    assert report.loss == pytest.approx(loss, rel=1e-9, abs=1e-9)
    assert report.accuracy == pytest.approx(accuracy, rel=1e-9, abs=1e-9)
    # The dropped node's evaluate message was allowed and charged all the same.
    spend = result.spent["agency-c/node"]
    assert spend.messages == 2
    assert spend.rho == pytest.approx(2 * 0.05)
