"""``TrainingService``: validate, decide, train, then privatize -- every message.

For each Flower message the node, in this order: checks the job context and the
message (refusals are logged); evaluates its policy, reserves the round's privacy
loss and makes the decision durable (``Gate.admit``); reads only the allowed
columns through the dataset's source; runs its *installed* ``ClientApp``; then,
whatever the coordinator asked, clips and noises the update (or noises the
evaluation sums) and, under secure aggregation, opens a masking session so the
update -- or the evaluation sums ``[loss-sum, num-examples, correct]`` -- leaves
only masked. What the app returned never leaves as is: the node rebuilds the reply
from the privatized values.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
import numpy as np
from numpy.typing import NDArray

import pki
import policies
import secagg
from accord.v1 import node_service_pb2, types_pb2
from accord.v1 import training_service_pb2 as pb
from accord.v1 import training_service_pb2_grpc as pb_grpc
from node._config import DatasetSpec
from node._errors import (
    InvalidQuery,
    NodeError,
    ShuttingDown,
    SourceUnavailable,
    rpc_errors,
)
from node._gate import Admission, Gate, Ticket, requester_of
from node._secure_sessions import SecureSessions, SessionOpening, opening_to_proto
from node._sources import DataSource
from node.training._apps import AppRegistry, TrainingApp, builtin_apps
from node.training._clientapp import LOSS_BOUND, LocalData
from node.training._data import LocalDataCache
from node.training._errors import AppNotInstalled, TrainingFailed
from node.training._features import FeatureLayout, LayoutError, feature_layout
from node.training._job import Encoding, JobContext, job_from_proto
from node.training._privacy import (
    noise_of_rho,
    privatize_sums,
    privatize_update,
    rho_of_noise,
)

Clock = Callable[[], datetime]

_log = logging.getLogger("accord.node")

#: The requester of calls without a client certificate (``--insecure`` only).

#: The full name of the service, for health and reflection.
TRAINING_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TrainingService"].full_name

_TASKS = {
    "binary-classification": pb.TRAINING_TASK_BINARY_CLASSIFICATION,
    "regression": pb.TRAINING_TASK_REGRESSION,
}


@dataclass(frozen=True)
class TrainingSettings:
    """The node's own training settings.

    Parameters
    ----------
    default_clipping_norm : float
        The L2 clipping norm applied when a job asks for none.
    data_ttl_seconds : float
        How long an encoded dataset is reused across the rounds of a job.
    """

    default_clipping_norm: float = 1.0
    data_ttl_seconds: float = 300.0


@dataclass(frozen=True)
class _Applied:
    noise_multiplier: float
    clipping_norm: float


class TrainingServicer(pb_grpc.TrainingServiceServicer):
    """Serves ``TrainingService`` for one agency node.

    Parameters
    ----------
    identity : pki.Identity
        The node's own identity.
    datasets : Mapping[str, DatasetSpec]
        The declared datasets, by id.
    sources : Mapping[str, DataSource]
        Their open sources, by dataset id.
    gate : Gate
        The node's gate: policy, ledger and decision log.
    clock : Clock
        The clock (aware datetimes).
    sessions : SecureSessions
        The secure-aggregation sessions, shared with ``SecureAggregationService``.
    apps : AppRegistry, optional
        The installed apps (default: the built-in apps).
    settings : TrainingSettings, optional
        The node's training settings.
    """

    def __init__(
        self,
        *,
        identity: pki.Identity,
        datasets: Mapping[str, DatasetSpec],
        sources: Mapping[str, DataSource],
        gate: Gate,
        clock: Clock,
        sessions: SecureSessions,
        apps: AppRegistry | None = None,
        settings: TrainingSettings | None = None,
    ) -> None:
        from node.training import _flower  # noqa: F401 - import Flower at start-up

        self._identity = identity
        self._datasets = dict(datasets)
        self._sources = dict(sources)
        self._gate = gate
        self._clock = clock
        self._sessions = sessions
        self._apps = apps if apps is not None else builtin_apps()
        self._settings = settings or TrainingSettings()
        self._data = LocalDataCache(ttl=self._settings.data_ttl_seconds)
        self._draining = threading.Event()

    @property
    def apps(self) -> AppRegistry:
        """The installed apps."""
        return self._apps

    def drain(self) -> None:
        """Refuse new messages from now on (shutdown has begun)."""
        self._draining.set()

    # -- helpers ---------------------------------------------------------------

    def _requester(self, context: grpc.ServicerContext) -> policies.Requester:
        return requester_of(context, self._identity)

    def _note(self, method: str, requester: policies.Requester, payload: bytes) -> None:
        self._gate.note(
            Ticket(
                method=method,
                operation="consultation",
                requester=requester,
                query_id="",
                request_hash=hashlib.sha256(payload).hexdigest(),
            )
        )

    def _installed(self, name: str, digest: str | None) -> TrainingApp:
        app = self._apps.get(name)
        if app is None:
            raise AppNotInstalled(
                f"no training app named {name!r} is installed at this node", app=name
            )
        if digest is not None and digest != app.digest:
            raise AppNotInstalled(
                f"app {name!r} is installed at digest {app.digest}, not the "
                f"{digest} the request names",
                app=name,
                installed_digest=app.digest,
            )
        return app

    def _dataset(self, dataset_id: str) -> DatasetSpec:
        dataset = self._datasets.get(dataset_id)
        if dataset is None:
            raise InvalidQuery(
                "job.dataset_id",
                f"no dataset {dataset_id!r} at this node",
                types_pb2.ERROR_REASON_UNKNOWN_DATASET,
            )
        return dataset

    def _layout(
        self, dataset: DatasetSpec, app: TrainingApp, features: Any, label: str
    ) -> FeatureLayout:
        try:
            return feature_layout(dataset.columns, list(features), label, app.task)
        except LayoutError as exc:
            raise InvalidQuery(exc.field, str(exc)) from None

    # -- RPCs ------------------------------------------------------------------

    def ListTrainingApps(
        self, request: pb.ListTrainingAppsRequest, context: grpc.ServicerContext
    ) -> pb.ListTrainingAppsResponse:
        """Return the installed apps and their digests (metadata, logged)."""
        with rpc_errors(context):
            requester = self._requester(context)
            if request.page_token:
                raise InvalidQuery("page_token", "unknown page token")
            if request.page_size < 0:
                raise InvalidQuery("page_size", "must not be negative")
            self._note(
                "ListTrainingApps",
                requester,
                request.SerializeToString(deterministic=True),
            )
            return pb.ListTrainingAppsResponse(
                apps=[
                    pb.TrainingApp(
                        name=app.name,
                        digest=app.digest,
                        description=app.description,
                        task=_TASKS[app.task],
                    )
                    for app in self._apps.values()
                ]
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def InitializeModel(
        self, request: pb.InitializeModelRequest, context: grpc.ServicerContext
    ) -> pb.InitializeModelResponse:
        """Return an app's initial parameters for a layout of declared columns."""
        from node.training import _flower as fl

        with rpc_errors(context):
            requester = self._requester(context)
            app = self._installed(request.app.name, request.app.digest or None)
            dataset = self._dataset(request.dataset_id)
            layout = self._layout(dataset, app, request.features, request.label)
            options = dict(request.options)
            try:
                arrays = app.initial_arrays(layout.width, options, request.seed)
            except ValueError as exc:
                raise InvalidQuery("options", str(exc)) from None
            self._note(
                "InitializeModel",
                requester,
                request.SerializeToString(deterministic=True),
            )
            return pb.InitializeModelResponse(
                arrays=fl.arrays_to_bytes(fl.record_of_arrays(arrays)),
                parameter_count=sum(a.size for a in arrays.values()),
                app_digest=app.digest,
                input_names=layout.input_names,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def DeliverMessage(
        self, request: pb.DeliverMessageRequest, context: grpc.ServicerContext
    ) -> pb.DeliverMessageResponse:
        """Decide, train or evaluate, privatize, and answer one Flower message."""
        with rpc_errors(context):
            if self._draining.is_set():
                raise ShuttingDown("the node is shutting down; retry at another time")
            requester = self._requester(context)
            job = request.job
            digest = hashlib.sha256(job.SerializeToString(deterministic=True))
            digest.update(request.message)
            ticket = Ticket(
                method="DeliverMessage",
                operation="disclosure",
                requester=requester,
                query_id=f"{job.job_id[:96]}/round-{job.round}",
                request_hash=digest.hexdigest(),
                dataset=job.dataset_id[:128],
                columns=tuple(c[:128] for c in (*job.features[:64], job.label)),
                purpose=job.access.purpose[:256],
                legal_basis=job.access.legal_basis[:256],
                justification=job.access.justification[:1024],
                on_behalf_of=job.access.on_behalf_of[:256],
            )
            try:
                parsed = job_from_proto(job)
                message, category = self._message(request.message)
                app = self._installed(parsed.app, parsed.app_digest)
                dataset = self._dataset(parsed.dataset)
                layout = self._layout(dataset, app, parsed.features, parsed.label)
                self._check_arrays(message, app, layout)
            except (InvalidQuery, AppNotInstalled) as exc:
                self._gate.refuse(ticket, f"invalid request: {exc.metadata['field']}")
                raise
            admission = self._gate.admit(ticket, self._access(requester, parsed, app))
            try:
                return self._answer(
                    admission,
                    requester,
                    parsed,
                    app,
                    dataset,
                    layout,
                    message,
                    category,
                )
            except NodeError as exc:
                self._gate.failed(admission, f"not answered: {type(exc).__name__}")
                raise
            except Exception as exc:
                _log.exception(
                    "training app failed",
                    extra={"fields": {"job": parsed.job_id, "app": app.name}},
                )
                self._gate.failed(
                    admission, f"training app failed: {type(exc).__name__}"
                )
                raise TrainingFailed(
                    "the training app failed at this node; see the node's log"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- DeliverMessage steps --------------------------------------------------

    @staticmethod
    def _message(data: bytes) -> tuple[Any, str]:
        from node.training import _flower as fl

        try:
            message = fl.message_from_bytes(data)
            category = fl.category_of(message.metadata.message_type)
        except ValueError as exc:
            raise InvalidQuery("message", str(exc)) from None
        if category not in ("train", "evaluate"):
            raise InvalidQuery(
                "message.metadata.message_type",
                f"{category} messages are not served: only train and evaluate",
            )
        return message, category

    @staticmethod
    def _check_arrays(message: Any, app: TrainingApp, layout: FeatureLayout) -> None:
        from node.training import _flower as fl

        records = message.content.array_records
        if len(records) != 1:
            raise InvalidQuery(
                "message.content", "expected exactly one ArrayRecord (the model)"
            )
        try:
            arrays = fl.numpy_arrays(next(iter(records.values())))
            app.check_arrays(arrays, layout.width)
        except (ValueError, TypeError) as exc:
            raise InvalidQuery("message.content", str(exc)) from None

    @staticmethod
    def _access(
        requester: policies.Requester, job: JobContext, app: TrainingApp
    ) -> policies.AccessRequest:
        return policies.AccessRequest(
            requester=requester,
            dataset=job.dataset,
            actions=frozenset({"train"}),
            columns=frozenset(job.columns),
            purpose=job.purpose,
            legal_basis=job.legal_basis,
            justification=job.justification,
            on_behalf_of=job.on_behalf_of,
            privacy=(
                policies.PrivacyLoss(rho=rho_of_noise(job.noise_multiplier))
                if job.noise_multiplier > 0
                else None
            ),
            secure_aggregation=job.secure_aggregation is not None,
            participants=job.participants or None,
            app=app.name,
            app_digest=app.digest,
            round=job.round,
        )

    def _applied(self, job: JobContext, decision: policies.Decision) -> _Applied:
        """Return the privacy the node applies: at least what its decision charged."""
        clip = job.clipping_norm or self._settings.default_clipping_norm
        if job.noise_multiplier > 0:
            return _Applied(job.noise_multiplier, clip)
        obligations = decision.obligations
        if obligations is not None and obligations.exact_allowed:
            return _Applied(0.0, clip)
        return _Applied(noise_of_rho(decision.rho), clip)

    def _load(
        self, admission: Admission, dataset: DatasetSpec, layout: FeatureLayout
    ) -> LocalData:
        try:
            return self._data.load(dataset, self._sources[dataset.id], layout)
        except Exception as exc:
            _log.error(
                "data source failed",
                extra={"fields": {"dataset": dataset.id, "error": type(exc).__name__}},
            )
            raise SourceUnavailable(
                f"dataset {dataset.id!r} is temporarily unavailable at this node"
            ) from None

    def _answer(
        self,
        admission: Admission,
        requester: policies.Requester,
        job: JobContext,
        app: TrainingApp,
        dataset: DatasetSpec,
        layout: FeatureLayout,
        message: Any,
        category: str,
    ) -> pb.DeliverMessageResponse:
        from node.training import _flower as fl

        decision = admission.decision
        applied = self._applied(job, decision)
        data = self._load(admission, dataset, layout)
        context = fl.Context(
            run_id=message.metadata.run_id,
            node_id=message.metadata.dst_node_id,
            node_config={},
            state=fl.RecordDict(),
            run_config={},
        )
        out = app.client_app(data)(message, context)
        if out.has_error():
            raise RuntimeError(f"the app replied with error {out.error.code}")
        if category == "train":
            content, opening = self._train_reply(
                requester, job, decision, applied, data, message, out
            )
        else:
            content, opening = self._evaluate_reply(
                requester, job, decision, applied, app, out
            )
        reply = fl.Message(content, reply_to=message)
        response = pb.DeliverMessageResponse(
            message=fl.message_to_bytes(reply),
            receipt=self._receipt(admission, app, applied, category),
        )
        if opening is not None:
            response.opening.CopyFrom(opening_to_proto(opening))
        return response

    def _train_reply(
        self,
        requester: policies.Requester,
        job: JobContext,
        decision: policies.Decision,
        applied: _Applied,
        data: LocalData,
        message: Any,
        out: Any,
    ) -> tuple[Any, SessionOpening | None]:
        from node.training import _flower as fl

        key, sent = next(iter(message.content.array_records.items()))
        before = fl.numpy_arrays(sent)
        records = out.content.array_records
        if len(records) != 1:
            raise RuntimeError("the app's reply holds no single ArrayRecord")
        after = fl.numpy_arrays(next(iter(records.values())))
        if list(after) != list(before) or any(
            after[k].shape != before[k].shape for k in before
        ):
            raise RuntimeError("the app changed the model's layout")
        delta = np.concatenate(
            [(after[k].astype(np.float64) - before[k]).ravel() for k in before]
        )
        if not np.isfinite(delta).all():
            raise RuntimeError("the app's update is not finite")
        update = privatize_update(
            delta,
            clipping_norm=applied.clipping_norm,
            noise_multiplier=applied.noise_multiplier,
        )
        # Under DP every node weighs 1: an exact row count would be a release.
        weight = data.rows if applied.noise_multiplier == 0 else 1
        if job.secure_aggregation is None:
            arrays = _unflatten(update.delta, before)
            content = fl.RecordDict(
                {
                    key: fl.record_of_arrays(arrays),
                    "metrics": fl.MetricRecord({"num-examples": weight}),
                }
            )
            return content, None
        weight = min(weight, _encoding(job).max_weight)
        vector = np.concatenate([weight * update.delta, [float(weight)]])
        return fl.RecordDict(), self._mask(requester, job, decision, vector)

    def _mask(
        self,
        requester: policies.Requester,
        job: JobContext,
        decision: policies.Decision,
        vector: NDArray[np.float64],
    ) -> SessionOpening:
        """Encode ``vector`` in fixed point and open its secure-aggregation session."""
        secure = job.secure_aggregation
        if secure is None:  # pragma: no cover - callers check
            raise InvalidQuery("job.secure_aggregation", "required to mask")
        encoding = _encoding(job)
        encoded, _ = secagg.encode_floats(
            vector,
            scale=encoding.scale,
            clip=encoding.bound,
            participants=secure.participants,
        )
        obligations = decision.obligations
        least = (obligations.min_participants if obligations else None) or 2
        return self._sessions.open(
            requester.uri, secure, encoded, policy_min_participants=max(2, least)
        )

    def _evaluate_reply(
        self,
        requester: policies.Requester,
        job: JobContext,
        decision: policies.Decision,
        applied: _Applied,
        app: TrainingApp,
        out: Any,
    ) -> tuple[Any, SessionOpening | None]:
        """Noise the evaluation sums; release them as metrics, or masked.

        Without secure aggregation the reply holds this node's noisy ``loss`` and
        ``accuracy`` (sums over its noisy count) and ``num-examples``. Under
        secure aggregation the noisy sums ``[loss-sum, num-examples, correct]``
        (``correct`` for classifiers only) leave masked, like a train update, and
        the reply holds nothing: the coordinator learns only the federation's
        totals. A noisy count above the encoding's ``max_weight`` scales the
        vector down to it (post-processing), as train weights are capped.
        """
        from node.training import _flower as fl

        metrics = next(iter(out.content.metric_records.values()))
        classifier = app.model.classifier
        sums = [float(metrics["loss-sum"]), float(metrics["num-examples"])]
        if classifier:
            sums.append(float(metrics["correct"]))
        obligations = decision.obligations
        rows_per_person = obligations.max_rows_per_person if obligations else 1
        sensitivity = rows_per_person * math.sqrt(LOSS_BOUND**2 + len(sums) - 1)
        noisy = privatize_sums(
            np.array(sums),
            sensitivity=sensitivity,
            noise_multiplier=applied.noise_multiplier,
        )
        if job.secure_aggregation is not None:
            cap = float(_encoding(job).max_weight)
            if noisy[1] > cap:
                noisy = noisy * (cap / float(noisy[1]))
            return fl.RecordDict(), self._mask(requester, job, decision, noisy)
        count = max(1.0, float(noisy[1]))
        released: dict[str, fl.MetricRecordValues] = {
            "num-examples": max(1, round(count)),
            "loss": float(np.clip(noisy[0] / count, 0.0, LOSS_BOUND)),
        }
        if classifier:
            released["accuracy"] = float(np.clip(noisy[2] / count, 0.0, 1.0))
        return fl.RecordDict({"metrics": fl.MetricRecord(released)}), None

    def _receipt(
        self, admission: Admission, app: TrainingApp, applied: _Applied, category: str
    ) -> pb.TrainingReceipt:
        decision = admission.decision
        charge = node_service_pb2.PrivacyCharge(
            rho_charged=decision.rho,
            delta=self._gate.policy.current.policy.policy.delta,
        )
        remaining = admission.remaining_rho
        if remaining is not None:
            charge.rho_remaining = remaining
            charge.epsilon_remaining = policies.epsilon_at(remaining, charge.delta)
        return pb.TrainingReceipt(
            agency=self._identity.agency,
            policy_digest=decision.policy_digest,
            matched_rules=list(decision.matched_rules),
            decision_seq=admission.record.seq,
            privacy=charge,
            noise_multiplier=applied.noise_multiplier,
            clipping_norm=applied.clipping_norm if category == "train" else 0.0,
            app_digest=app.digest,
        )


def _encoding(job: JobContext) -> Encoding:
    """Return the job's fixed-point encoding (set with secure aggregation)."""
    if job.encoding is None:  # pragma: no cover - job_from_proto sets both
        raise InvalidQuery("job.encoding", "required with secure aggregation")
    return job.encoding


def _unflatten(
    delta: NDArray[np.float64], like: Mapping[str, NDArray[Any]]
) -> dict[str, NDArray[Any]]:
    """Add ``delta`` (flat) back onto the arrays ``like``, keeping names and dtypes."""
    out: dict[str, NDArray[Any]] = {}
    offset = 0
    for name, array in like.items():
        size = array.size
        step = delta[offset : offset + size].reshape(array.shape)
        out[name] = (array.astype(np.float64) + step).astype(array.dtype)
        offset += size
    return out


def add_training_service(server: grpc.Server, servicer: TrainingServicer) -> None:
    """Mount the ``TrainingService`` on a (not yet started) gRPC server."""
    pb_grpc.add_TrainingServiceServicer_to_server(servicer, server)
