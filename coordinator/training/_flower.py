"""Every Flower piece the coordinator relies on, in one place (flwr pinned to 1.42.*).

Public Flower API: ``Grid``, ``Message``, ``RecordDict``, ``ArrayRecord``,
``Array``, ``MetricRecord``, ``ConfigRecord``, ``Error``, ``Context``, the
Message-API strategies of ``flwr.serverapp.strategy`` and ``ServerApp``.

Semi-internal pieces, with no stability promise -- each is pinned by
``tests/test_training_flower_contract.py`` so that an upgrade fails loudly:

- ``flwr.supercore.task_identity.TaskIdentity`` is process-global: ``Message(...)``
  reads ``task_id``, ``run_id`` and ``node_id`` from it, so it must be set (the
  coordinator's node id is ``flwr.common.constant.SUPERLINK_NODE_ID``) before a
  strategy or ServerApp creates messages -- one ServerApp per process at a time;
- ``flwr.supercore.run.Run.create_empty`` for ``Grid.set_run`` / ``Grid.run``;
- ``flwr.common.serde.message_to_proto`` / ``message_from_proto`` and
  ``array_record_from_proto`` with ``flwr.proto.message_pb2`` and
  ``flwr.proto.recorddict_pb2``: messages cross Accord's wire as bytes;
- writing ``_message_id``, ``_run_id`` and ``_src_node_id`` into
  ``Message.metadata.__dict__`` when a message is pushed (what Flower's own grids
  do), and ``_message_id`` of a reply when it arrives;
- ``flwr.supercore.logger`` logs through the ``flwr`` logger (quietened here).
"""

from __future__ import annotations

import os

# Flower phones home unless told not to; set before flwr is imported.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.common import serde
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.proto import message_pb2, recorddict_pb2
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from numpy.typing import NDArray

__all__ = [
    "SUPERLINK_NODE_ID",
    "Array",
    "ArrayRecord",
    "ConfigRecord",
    "Context",
    "Error",
    "Grid",
    "Message",
    "MetricRecord",
    "RecordDict",
    "Run",
    "RunGrid",
    "ServerApp",
    "arrays_from_bytes",
    "message_from_bytes",
    "message_to_bytes",
    "ndarray_of",
    "quiet_flower",
    "stamp_pushed",
    "stamp_reply",
    "task_identity",
]

_identity_lock = threading.Lock()


@contextlib.contextmanager
def task_identity(run_id: int, task_id: int = 1) -> Iterator[None]:
    """Act as the coordinator of ``run_id`` while the block runs (one at a time).

    Flower reads the process-global ``TaskIdentity`` whenever a ``Message`` is
    created; the previous identity is restored afterwards.
    """
    with _identity_lock:
        saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
        TaskIdentity.task_id = task_id
        TaskIdentity.run_id = run_id
        TaskIdentity.node_id = SUPERLINK_NODE_ID
        try:
            yield
        finally:
            (
                TaskIdentity._task_id,
                TaskIdentity._run_id,
                TaskIdentity._node_id,
            ) = saved


@contextlib.contextmanager
def quiet_flower(level: int = logging.WARNING) -> Iterator[None]:
    """Raise the ``flwr`` logger's level while the block runs (strategies log a lot)."""
    logger = logging.getLogger("flwr")
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def stamp_pushed(message: Message, run_id: int) -> str:
    """Give a pushed message its id, run and source, as Flower's grids do; return the id."""
    message_id = uuid.uuid4().hex
    metadata: Any = message.metadata
    metadata.__dict__["_message_id"] = message_id
    metadata.__dict__["_run_id"] = run_id
    metadata.__dict__["_src_node_id"] = SUPERLINK_NODE_ID
    return message_id


def stamp_reply(reply: Message) -> None:
    """Give a reply that arrived without one its message id."""
    metadata: Any = reply.metadata
    if not metadata.message_id:
        metadata.__dict__["_message_id"] = uuid.uuid4().hex


def message_to_bytes(message: Message) -> bytes:
    """Serialize a ``Message`` as a ``flwr.proto.Message``."""
    data: bytes = serde.message_to_proto(message).SerializeToString()
    return data


def message_from_bytes(data: bytes) -> Message:
    """Parse a serialized ``flwr.proto.Message``.

    Raises
    ------
    ValueError
        If the bytes are not a Flower message.
    """
    proto = message_pb2.Message()
    try:
        proto.ParseFromString(data)
        return serde.message_from_proto(proto)
    except Exception as exc:  # protobuf DecodeError, Flower's own checks
        raise ValueError(f"not a Flower message ({type(exc).__name__})") from None


def arrays_from_bytes(data: bytes) -> ArrayRecord:
    """Parse a serialized ``flwr.proto.ArrayRecord``."""
    proto = recorddict_pb2.ArrayRecord()
    proto.ParseFromString(data)
    return serde.array_record_from_proto(proto)


class RunGrid(Grid):
    """The run bookkeeping every Accord ``Grid`` shares (set_run, run, create_message)."""

    _run: Run

    def set_run(self, run: Run) -> None:
        """Set the Flower run this grid operates in."""
        if not isinstance(run, Run):
            raise TypeError(f"`run` must be a Run, got {type(run).__name__}")
        self._run = run

    @property
    def run(self) -> Run:
        """Return a copy of the Flower run."""
        return Run(**vars(self._run))

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """Create a message (deprecated in Flower; kept for the ABC)."""
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)


_NPY_MAGIC = b"\x93NUMPY"


def ndarray_of(array: Array) -> NDArray[Any]:
    """Return a Flower ``Array`` as a numpy array, without parsing its header.

    ``Array.numpy()`` reads the ``.npy`` header with ``ast.literal_eval``, which
    CPython 3.11 can fail with "AST constructor recursion depth mismatch" when
    threads parse at once (python/cpython#106905); the grid decodes replies on
    several threads. The array's own dtype and shape say all the header would;
    anything unusual still goes through ``numpy()``. The node's Flower facade has
    the same function (the two packages do not import each other; a test keeps
    them equal).
    """
    data: bytes = array.data
    if (
        array.stype != "numpy.ndarray"
        or data[:6] != _NPY_MAGIC
        or data[6] not in (1, 2, 3)
    ):
        return np.asarray(array.numpy())
    width = 2 if data[6] == 1 else 4
    start = 8 + width + int.from_bytes(data[8 : 8 + width], "little")
    if b"'fortran_order': False" not in data[8 + width : start]:
        return np.asarray(array.numpy())
    dtype = np.dtype(array.dtype)
    return np.frombuffer(data, dtype=dtype, offset=start).reshape(array.shape).copy()
