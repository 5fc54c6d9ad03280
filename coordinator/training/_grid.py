"""``AccordGrid``: a Flower ``Grid`` whose messages travel over Accord's TrainingService.

Flower's Message-API strategies and ServerApps run on it unchanged. Each pushed
message becomes one ``DeliverMessage`` call (mutual TLS, its own deadline) carrying
the serialized message and the job context the node's policy decides on; the
node's reply comes back as a Flower reply. A refusal, failure or timeout comes
back as a reply carrying a Flower ``Error`` (403 refused by policy, 412 app not
installed or another digest, 429 budget exhausted, 400 invalid, 503/504
unreachable, 500 failed), which strategies count as failures and go on; a node
that refused by policy or budget is left out of ``get_node_ids`` for the rest of
the job.

Under secure aggregation, a batch of train messages runs as one session
(``secagg`` via ``SecureAggregationService``): each node answers its train message
with only an opening, its clipped, noised and weighted update leaves masked, and
the coordinator learns ``sum(w * delta)`` and ``sum(w)`` over the contributors. The
grid then answers every contributor's message with the same reply: the global
model plus the weighted mean update, with weight ``sum(w) / k``. A weighted mean of
``k`` identical replies is that reply, so FedAvg, FedProx and the FedOpt family
aggregate exactly what secure aggregation releases; per-node updates do not exist
(robust aggregators such as FedMedian or Krum have nothing to work on).

A batch of evaluate messages runs the same way: each node masks its noisy sums
``[loss-sum, num-examples, correct]`` (``correct`` for classifiers), and the grid
answers every contributor with one reply holding the federation's ``loss`` and
``accuracy`` (totals over the total count) and ``num-examples`` of ``count / k``,
so the strategy's example-weighted mean is the federation-wide value and no
per-node metric reaches the coordinator. A node that drops out before its masked
input arrives is left out of the total (its reply is an error); one whose masked
input arrived is in it, as in a train round.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from numpy.typing import NDArray

import secagg
from accord.v1 import training_service_pb2 as pb
from accord.v1 import types_pb2
from coordinator._outcome import describe_rpc_error
from coordinator._secure_sum import (
    SecureSumFailed,
    SecureSumSession,
    secure_sum,
)
from coordinator.training import _flower as fl
from coordinator.training._link import TrainingLink

#: Node ids of the links: ``FIRST_NODE_ID + index`` (0 and 1 are Flower's own).
FIRST_NODE_ID = 1000

#: gRPC codes after which a node is left out for the rest of the job.
_PERMANENT = {
    grpc.StatusCode.PERMISSION_DENIED.name: 403,
    grpc.StatusCode.FAILED_PRECONDITION.name: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED.name: 429,
    grpc.StatusCode.INVALID_ARGUMENT.name: 400,
}
_TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE.name: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED.name: 504,
}


@dataclass(frozen=True)
class GridJob:
    """The job context every message of the grid carries.

    Parameters
    ----------
    job_id : str
        The job.
    app, app_digest : str
        The node-installed app and the code digest the job expects.
    dataset : str
        The dataset id at every node.
    features : tuple[str, ...]
        Feature columns, in order.
    label : str
        Label column.
    purpose, legal_basis, justification, on_behalf_of : str
        Why, and for whom.
    noise_multiplier, clipping_norm : float
        The DP asked of every node (0: the node's default).
    secure_aggregation : bool
        Whether train updates and evaluation sums are summed by secure aggregation.
    max_weight : int
        The largest weight (examples) of one node's update, or count of its
        evaluation sums, under secure aggregation.
    min_participants : int
        The fewest nodes a secure sum may hold.
    """

    job_id: str
    app: str
    app_digest: str
    dataset: str
    features: tuple[str, ...]
    label: str
    purpose: str
    legal_basis: str = ""
    justification: str = ""
    on_behalf_of: str = ""
    noise_multiplier: float = 0.0
    clipping_norm: float = 0.0
    secure_aggregation: bool = False
    max_weight: int = 1 << 20
    min_participants: int = 2


@dataclass(frozen=True)
class Delivery:
    """What happened to one message at one node.

    Parameters
    ----------
    round : int
        The round.
    node : str
        ``agency/name``.
    category : str
        ``train`` or ``evaluate``.
    status : str
        ``ok``, or the gRPC code name of the failure.
    message : str
        Why it failed ("" when ok).
    receipt : pb.TrainingReceipt or None
        The node's receipt (ok only).
    """

    round: int
    node: str
    category: str
    status: str
    message: str = ""
    receipt: pb.TrainingReceipt | None = None

    @property
    def ok(self) -> bool:
        """Whether the node answered."""
        return self.status == "ok"


@dataclass
class _Pending:
    future: futures.Future[Any]
    message_id: str


#: Each example's loss is clipped to this at the nodes (``node.training.LOSS_BOUND``):
#: the bound of evaluation sums per example, and of the released mean loss.
EXAMPLE_LOSS_BOUND = 10.0

#: Words of a node's masked evaluation sums: loss-sum, num-examples (+ correct).
_METRIC_LENGTHS = (2, 3)


def _fixed_point(participants: int, bound: float, max_weight: int) -> pb.UpdateEncoding:
    """Return the largest power-of-two scale for ``participants`` values ``<= bound``.

    One bit of the 64-bit modulus is kept to spare beside the sign.
    """
    budget = 64 - 1 - (participants - 1).bit_length() - 1
    scale = 2.0 ** (budget - math.ceil(math.log2(bound)))
    return pb.UpdateEncoding(scale=scale, bound=bound, max_weight=max_weight)


def update_encoding(
    participants: int, *, max_weight: int, clipping_norm: float, noise_multiplier: float
) -> pb.UpdateEncoding:
    """Choose the fixed-point encoding of weighted updates for a secure sum.

    Values are bounded by ``max_weight * C * (1 + 6 z)`` (a clipped coordinate plus
    six standard deviations of noise; larger values saturate), and the scale is
    the largest power of two that keeps ``participants`` of them within the 64-bit
    modulus with one bit to spare.
    """
    clip = clipping_norm if clipping_norm > 0 else 1.0
    bound = max_weight * clip * (1.0 + 6.0 * noise_multiplier)
    return _fixed_point(participants, bound, max_weight)


def metrics_encoding(
    participants: int, *, max_weight: int, noise_multiplier: float
) -> pb.UpdateEncoding:
    """Choose the fixed-point encoding of evaluation sums for a secure sum.

    A node's count is at most ``max_weight`` (the node scales its sums down to
    it) and its loss sum at most `EXAMPLE_LOSS_BOUND` times that; values are
    bounded by ``max_weight * EXAMPLE_LOSS_BOUND * (1 + 6 z)`` to leave room for
    the noise (larger values saturate), at the scale of `update_encoding`.
    """
    bound = max_weight * EXAMPLE_LOSS_BOUND * (1.0 + 6.0 * noise_multiplier)
    return _fixed_point(participants, bound, max_weight)


def _category(message_type: str) -> str:
    return message_type.split(".", 1)[0]


class AccordGrid(fl.RunGrid):
    """A Flower ``Grid`` over Accord's ``TrainingService``.

    Parameters
    ----------
    links : Sequence[TrainingLink]
        One link per node; node ids are ``FIRST_NODE_ID + index``.
    job : GridJob
        The job context stamped on every message.
    run_id : int
        Flower's run id for the job's messages.
    deadline : float
        Seconds each node has to answer each message (and each secure round).
    min_nodes : int
        The strategy's ``min_available_nodes`` (see `get_node_ids`).
    """

    def __init__(
        self,
        links: Sequence[TrainingLink],
        job: GridJob,
        *,
        run_id: int = 1,
        deadline: float = 60.0,
        min_nodes: int = 1,
    ) -> None:
        self._links = {FIRST_NODE_ID + i: link for i, link in enumerate(links)}
        self.min_nodes = min_nodes
        self.job = job
        self.deadline = deadline
        self.round_offset = 0
        self._run = fl.Run.create_empty(run_id)
        self._excluded: dict[int, str] = {}
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._pool = futures.ThreadPoolExecutor(
            max_workers=min(64, 2 * max(1, len(links)) + 2),
            thread_name_prefix="accord-grid",
        )
        self.deliveries: list[Delivery] = []

    # -- Grid API --------------------------------------------------------------

    def get_node_ids(self) -> Iterable[int]:
        """Return the nodes still taking part (not refused by policy or budget).

        Never fewer than ``min_nodes``: Flower's samplers wait, without end, for
        that many nodes, so when too few remain every node is returned (the
        refusing ones fail again at once) and `live_node_ids` tells the truth.
        """
        live = self.live_node_ids()
        return live if len(live) >= max(1, self.min_nodes) else list(self._links)

    def live_node_ids(self) -> list[int]:
        """Return the nodes not left out by a refusal (policy, budget, app)."""
        with self._lock:
            return [i for i in self._links if i not in self._excluded]

    def push_messages(self, messages: Iterable[fl.Message]) -> Iterable[str]:
        """Send every message concurrently; return their ids for `pull_messages`."""
        batch = list(messages)
        ids: list[str] = []
        secure: dict[str, list[tuple[str, fl.Message]]] = {}
        counts: dict[str, int] = {}
        for message in batch:
            category = _category(message.metadata.message_type)
            counts[category] = counts.get(category, 0) + 1
        for message in batch:
            message_id = fl.stamp_pushed(message, self._run.run_id)
            ids.append(message_id)
            category = _category(message.metadata.message_type)
            if self.job.secure_aggregation and category in ("train", "evaluate"):
                secure.setdefault(category, []).append((message_id, message))
                continue
            future = self._pool.submit(self._deliver_one, message, counts[category])
            with self._lock:
                self._pending[message_id] = _Pending(future, message_id)
        for group in secure.values():
            self._push_secure(group)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[fl.Message]:
        """Return the replies that have arrived for ``message_ids`` (once each)."""
        replies: list[fl.Message] = []
        with self._lock:
            for message_id in message_ids:
                pending = self._pending.get(message_id)
                if pending is not None and pending.future.done():
                    del self._pending[message_id]
                    replies.append(pending.future.result())
        return replies

    def send_and_receive(
        self, messages: Iterable[fl.Message], *, timeout: float | None = None
    ) -> Iterable[fl.Message]:
        """Push the messages and wait for their replies (up to ``timeout`` seconds)."""
        ids = list(self.push_messages(messages))
        with self._lock:
            waiting = [self._pending[i].future for i in ids if i in self._pending]
        futures.wait(waiting, timeout=timeout)
        replies = list(self.pull_messages(ids))
        with self._lock:
            for message_id in ids:  # late replies are dropped, as Flower's grids do
                self._pending.pop(message_id, None)
        return replies

    # -- reports ---------------------------------------------------------------

    def label(self, node_id: int) -> str:
        """Return ``agency/name`` of a node id."""
        return self._links[node_id].node.label

    @property
    def excluded(self) -> dict[str, str]:
        """Nodes left out for the rest of the job, with why."""
        with self._lock:
            return {self.label(i): why for i, why in self._excluded.items()}

    def deliveries_of(self, round_: int) -> list[Delivery]:
        """Return what happened to every message of ``round_``."""
        with self._lock:
            return [d for d in self.deliveries if d.round == round_]

    def close(self) -> None:
        """Stop the worker threads (links are closed by their owner)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- delivery --------------------------------------------------------------

    def _round_of(self, message: fl.Message) -> int:
        for record in message.content.config_records.values():
            value = record.get("server-round")
            if isinstance(value, int) and not isinstance(value, bool):
                return self.round_offset + value
        try:
            return self.round_offset + int(message.metadata.group_id)
        except ValueError:
            return self.round_offset + 1

    def _job_proto(self, round_: int, participants: int) -> pb.TrainingJob:
        job = self.job
        return pb.TrainingJob(
            job_id=job.job_id,
            app=pb.AppReference(name=job.app, digest=job.app_digest),
            dataset_id=job.dataset,
            features=list(job.features),
            label=job.label,
            access=types_pb2.AccessContext(
                purpose=job.purpose,
                legal_basis=job.legal_basis,
                justification=job.justification,
                on_behalf_of=job.on_behalf_of,
            ),
            round=round_,
            participants=participants,
            privacy=pb.TrainingPrivacy(
                noise_multiplier=job.noise_multiplier,
                clipping_norm=job.clipping_norm,
            ),
        )

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self.deliveries.append(delivery)

    def _error_reply(
        self,
        message: fl.Message,
        round_: int,
        status: str,
        reason: str,
        receipt: pb.TrainingReceipt | None = None,
    ) -> fl.Message:
        node_id = message.metadata.dst_node_id
        label = self.label(node_id) if node_id in self._links else str(node_id)
        code = _PERMANENT.get(status) or _TRANSIENT.get(status) or 500
        if status in _PERMANENT and node_id in self._links:
            with self._lock:
                self._excluded.setdefault(node_id, f"{status}: {reason}")
        self._record(
            Delivery(
                round_,
                label,
                _category(message.metadata.message_type),
                status,
                reason,
                receipt,
            )
        )
        reply = fl.Message(
            fl.Error(code=code, reason=f"{label}: {reason}"), reply_to=message
        )
        fl.stamp_reply(reply)
        return reply

    def _call(
        self, message: fl.Message, round_: int, job: pb.TrainingJob
    ) -> tuple[pb.DeliverMessageResponse | None, fl.Message | None]:
        """Deliver one message; return the response, or an error reply."""
        node_id = message.metadata.dst_node_id
        link = self._links.get(node_id)
        if link is None:
            return None, self._error_reply(message, round_, "NOT_FOUND", "no such node")
        request = pb.DeliverMessageRequest(
            job=job, message=fl.message_to_bytes(message)
        )
        try:
            return link.deliver(request, timeout=self.deadline), None
        except grpc.RpcError as error:
            _, code, _, text, _ = describe_rpc_error(error)
            return None, self._error_reply(message, round_, code, text)
        except Exception as exc:  # any other transport failure: the node drops out
            return None, self._error_reply(
                message, round_, "UNKNOWN", f"{type(exc).__name__}: {exc}"
            )

    def _reply_of(
        self, message: fl.Message, round_: int, response: pb.DeliverMessageResponse
    ) -> fl.Message:
        try:
            reply = fl.message_from_bytes(response.message)
        except ValueError as exc:
            return self._error_reply(message, round_, "INTERNAL", str(exc))
        metadata = reply.metadata
        if (
            metadata.reply_to_message_id != message.metadata.message_id
            or metadata.src_node_id != message.metadata.dst_node_id
        ):
            return self._error_reply(
                message, round_, "INTERNAL", "the reply answers another message"
            )
        fl.stamp_reply(reply)
        return reply

    def _deliver_one(self, message: fl.Message, participants: int) -> fl.Message:
        round_ = self._round_of(message)
        response, error = self._call(
            message, round_, self._job_proto(round_, participants)
        )
        if response is None:
            assert error is not None
            return error
        reply = self._reply_of(message, round_, response)
        if not reply.has_error():
            self._record(
                Delivery(
                    round_,
                    self.label(message.metadata.dst_node_id),
                    _category(message.metadata.message_type),
                    "ok",
                    receipt=response.receipt,
                )
            )
        return reply

    # -- secure aggregation ----------------------------------------------------

    def _push_secure(self, batch: list[tuple[str, fl.Message]]) -> None:
        results: dict[str, futures.Future[Any]] = {}
        with self._lock:
            for message_id, _ in batch:
                future: futures.Future[Any] = futures.Future()
                results[message_id] = future
                self._pending[message_id] = _Pending(future, message_id)

        def run() -> None:
            try:
                replies = self._secure_round([m for _, m in batch])
            except Exception as exc:  # never leave a future unresolved
                replies = {
                    message.metadata.message_id: self._error_reply(
                        message,
                        self._round_of(message),
                        "INTERNAL",
                        f"secure aggregation failed: {type(exc).__name__}: {exc}",
                    )
                    for _, message in batch
                }
            for message_id, future in results.items():
                future.set_result(replies[message_id])

        self._pool.submit(run)

    def _secure_round(self, batch: list[fl.Message]) -> dict[str, fl.Message]:
        """Run one train or evaluate round under secure aggregation.

        Returns a reply per message: the same aggregate reply for every
        contributor, an error for every node left out.
        """
        round_ = self._round_of(batch[0])
        category = _category(batch[0].metadata.message_type)
        replies: dict[str, fl.Message] = {}
        n = len(batch)
        if n < max(2, self.job.min_participants):
            for message in batch:
                replies[message.metadata.message_id] = self._error_reply(
                    message,
                    round_,
                    "FAILED_PRECONDITION",
                    f"secure aggregation needs at least "
                    f"{max(2, self.job.min_participants)} nodes, {n} sampled",
                )
            return replies
        session = SecureSumSession.new(
            n, min_participants=max(2, self.job.min_participants)
        )
        if category == "train":
            encoding = update_encoding(
                n,
                max_weight=self.job.max_weight,
                clipping_norm=self.job.clipping_norm,
                noise_multiplier=self.job.noise_multiplier,
            )
        else:
            encoding = metrics_encoding(
                n,
                max_weight=self.job.max_weight,
                noise_multiplier=self.job.noise_multiplier,
            )
        participant = {
            message.metadata.message_id: message.metadata.dst_node_id - FIRST_NODE_ID
            for message in batch
        }

        def open_one(message: fl.Message) -> tuple[fl.Message, Any]:
            job = self._job_proto(round_, n)
            job.secure_aggregation.CopyFrom(
                session.request(participant[message.metadata.message_id])
            )
            job.encoding.CopyFrom(encoding)
            response, error = self._call(message, round_, job)
            if response is None:
                return message, error
            reply = self._reply_of(message, round_, response)
            if reply.has_error():
                return message, reply
            if not response.HasField("opening"):
                return message, self._error_reply(
                    message, round_, "INTERNAL", "no secure-aggregation opening"
                )
            return message, response

        with futures.ThreadPoolExecutor(max_workers=min(32, n)) as pool:
            opened = list(pool.map(open_one, batch))
        openings: dict[int, bytes] = {}
        receipts: dict[int, pb.TrainingReceipt] = {}
        lengths: set[int] = set()
        for message, outcome in opened:
            if isinstance(outcome, pb.DeliverMessageResponse):
                pid = participant[message.metadata.message_id]
                openings[pid] = outcome.opening.advertise_keys
                receipts[pid] = outcome.receipt
                lengths.add(outcome.opening.vector_length)
            else:
                replies[message.metadata.message_id] = outcome
        aggregate: Callable[[NDArray[np.float64], int], fl.RecordDict | None]
        if category == "train":
            global_arrays, key = _arrays_of(batch[0])
            length = sum(a.size for a in global_arrays.values()) + 1

            def aggregate(total: NDArray[np.float64], k: int) -> fl.RecordDict | None:
                return _mean_update(total, global_arrays, key, k)

        else:
            length = next(iter(lengths)) if len(lengths) == 1 else 0
            aggregate = _federation_metrics
        links = [
            self._links[m.metadata.dst_node_id].secure(
                participant[m.metadata.message_id]
            )
            for m in batch
        ]
        try:
            if lengths != {length} or (
                category == "evaluate" and length not in _METRIC_LENGTHS
            ):
                raise SecureSumFailed(
                    "the nodes opened the session with vectors of another length",
                    stage="opening",
                    failures={},
                )
            result = secure_sum(
                links,
                openings,
                session_id=session.session_id,
                vector_length=length,
                threshold=session.threshold,
                min_participants=session.min_participants,
                deadline=self.deadline,
            )
        except SecureSumFailed as exc:
            for message in batch:
                if message.metadata.message_id not in replies:
                    replies[message.metadata.message_id] = self._error_reply(
                        message,
                        round_,
                        "ABORTED",
                        str(exc),
                        receipts.get(participant[message.metadata.message_id]),
                    )
            return replies
        decoder = secagg.FixedPointDecoder(
            encoding.scale,
            encoding.bound,
            n,
            round(encoding.bound * encoding.scale).bit_length(),
        )
        total = decoder(result.total)
        contributors = set(result.contributors)
        content = aggregate(total, len(contributors)) if contributors else None
        if content is None:
            for message in batch:
                replies.setdefault(
                    message.metadata.message_id,
                    self._error_reply(
                        message, round_, "ABORTED", "an empty secure sum"
                    ),
                )
            return replies
        for message in batch:
            message_id = message.metadata.message_id
            pid = participant[message_id]
            if message_id in replies:
                continue
            if pid not in contributors:
                why = result.failures.get(pid, "dropped out of secure aggregation")
                replies[message_id] = self._error_reply(
                    message, round_, "ABORTED", why, receipts.get(pid)
                )
                continue
            reply = fl.Message(_copy(content), reply_to=message)
            fl.stamp_reply(reply)
            replies[message_id] = reply
            self._record(
                Delivery(
                    round_,
                    self.label(message.metadata.dst_node_id),
                    category,
                    "ok",
                    receipt=receipts.get(pid),
                )
            )
        return replies


def _mean_update(
    total: NDArray[np.float64],
    global_arrays: dict[str, NDArray[Any]],
    key: str,
    contributors: int,
) -> fl.RecordDict | None:
    """Return the train reply of a secure sum ``[sum(w * delta), sum(w)]``.

    The global model plus the weighted mean update, with ``num-examples`` of
    ``sum(w) / contributors``; None for an empty sum.
    """
    weight = float(total[-1])
    if weight <= 0:
        return None
    mean = _unflatten(total[:-1] / weight, global_arrays)
    return fl.RecordDict(
        {
            key: fl.ArrayRecord(
                {name: fl.Array(array) for name, array in mean.items()}
            ),
            "metrics": fl.MetricRecord({"num-examples": weight / contributors}),
        }
    )


def _federation_metrics(total: NDArray[np.float64], contributors: int) -> fl.RecordDict:
    """Return the evaluate reply of a secure sum ``[loss-sum, count(, correct)]``.

    The federation's mean ``loss`` (and ``accuracy``) over its total count (at
    least 1, as a node does with its own noisy count), and ``num-examples`` of
    ``count / contributors``: the strategy's weighted mean of the identical
    replies is the federation-wide value.
    """
    count = max(1.0, float(total[1]))
    metrics: dict[str, int | float | list[int] | list[float]] = {
        "num-examples": count / contributors,
        "loss": float(np.clip(total[0] / count, 0.0, EXAMPLE_LOSS_BOUND)),
    }
    if len(total) > 2:
        metrics["accuracy"] = float(np.clip(total[2] / count, 0.0, 1.0))
    return fl.RecordDict({"metrics": fl.MetricRecord(metrics)})


def _copy(content: fl.RecordDict) -> fl.RecordDict:
    """Return a reply's own copy of ``content`` (replies must not share records)."""
    out = fl.RecordDict()
    for name, record in content.items():
        if isinstance(record, fl.ArrayRecord):
            out[name] = fl.ArrayRecord(dict(record.items()))
        elif isinstance(record, fl.MetricRecord):
            out[name] = fl.MetricRecord(dict(record.items()))
        else:
            raise TypeError(f"unexpected record {type(record).__name__}")
    return out


def _arrays_of(message: fl.Message) -> tuple[dict[str, NDArray[Any]], str]:
    records = message.content.array_records
    if len(records) != 1:
        raise ValueError("a train message must hold exactly one ArrayRecord")
    key, record = next(iter(records.items()))
    return {name: fl.ndarray_of(array) for name, array in record.items()}, key


def _unflatten(
    mean_delta: NDArray[np.float64], like: dict[str, NDArray[Any]]
) -> dict[str, NDArray[Any]]:
    out: dict[str, NDArray[Any]] = {}
    offset = 0
    for name, array in like.items():
        step = mean_delta[offset : offset + array.size].reshape(array.shape)
        out[name] = (array.astype(np.float64) + step).astype(array.dtype)
        offset += array.size
    return out
