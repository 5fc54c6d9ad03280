"""Every Flower piece the node relies on, in one place (flwr pinned to 1.42.*).

The node receives Flower messages as the bytes of a ``flwr.proto.Message`` and runs
an installed ``ClientApp`` on them. Public Flower API used here: ``Message``,
``RecordDict``, ``ArrayRecord``, ``Array``, ``MetricRecord``, ``ConfigRecord``,
``Context``, ``Error``, ``ClientApp``. Semi-internal pieces (no stability promise;
``tests/test_training_flower_contract.py`` pins them, so an upgrade fails loudly):

- ``flwr.common.serde.message_to_proto`` / ``message_from_proto`` and
  ``array_record_to_proto`` / ``array_record_from_proto``;
- ``flwr.proto.message_pb2.Message`` and ``flwr.proto.recorddict_pb2.ArrayRecord``;
- ``flwr.app.metadata.validate_message_type``.
"""

from __future__ import annotations

import os

# Flower phones home unless told not to; set before flwr is imported.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")

from collections.abc import Mapping
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
    MetricRecordValues,
    RecordDict,
)
from flwr.app.metadata import validate_message_type
from flwr.clientapp import ClientApp
from flwr.common import serde
from flwr.proto import message_pb2, recorddict_pb2
from numpy.typing import NDArray

__all__ = [
    "Array",
    "ArrayRecord",
    "ClientApp",
    "ConfigRecord",
    "Context",
    "Error",
    "Message",
    "MetricRecord",
    "MetricRecordValues",
    "RecordDict",
    "arrays_from_bytes",
    "arrays_to_bytes",
    "category_of",
    "message_from_bytes",
    "message_to_bytes",
    "ndarray_of",
    "numpy_arrays",
    "record_of_arrays",
]


def message_from_bytes(data: bytes) -> Any:
    """Parse a serialized ``flwr.proto.Message`` into a ``Message``.

    Raises
    ------
    ValueError
        If the bytes are not a Flower message with content.
    """
    proto = message_pb2.Message()
    try:
        proto.ParseFromString(data)
        message = serde.message_from_proto(proto)
    except Exception as exc:  # protobuf DecodeError, Flower's own checks
        raise ValueError(f"not a Flower message ({type(exc).__name__})") from None
    if not message.has_content():
        raise ValueError("the Flower message has no content")
    return message


def message_to_bytes(message: Any) -> bytes:
    """Serialize a ``Message`` (metadata, content or error)."""
    data: bytes = serde.message_to_proto(message).SerializeToString()
    return data


def category_of(message_type: str) -> str:
    """Return the category of a valid Flower message type, or raise ``ValueError``."""
    if not validate_message_type(message_type):
        raise ValueError(f"invalid Flower message type {message_type!r}")
    return message_type.split(".", 1)[0]


def arrays_to_bytes(record: Any) -> bytes:
    """Serialize an ``ArrayRecord``."""
    data: bytes = serde.array_record_to_proto(record).SerializeToString()
    return data


def arrays_from_bytes(data: bytes) -> Any:
    """Parse a serialized ``ArrayRecord``."""
    proto = recorddict_pb2.ArrayRecord()
    proto.ParseFromString(data)
    return serde.array_record_from_proto(proto)


def record_of_arrays(arrays: Mapping[str, NDArray[Any]]) -> Any:
    """Build an ``ArrayRecord`` holding ``arrays`` under their names, in order."""
    return ArrayRecord({name: Array(np.asarray(a)) for name, a in arrays.items()})


_NPY_MAGIC = b"\x93NUMPY"


def ndarray_of(array: Any) -> NDArray[Any]:
    """Return a Flower ``Array`` as a numpy array, without parsing its header.

    ``Array.numpy()`` reads the ``.npy`` header with ``ast.literal_eval``, which
    CPython 3.11 can fail with "AST constructor recursion depth mismatch" when
    threads parse at once (python/cpython#106905). The array's own dtype and shape
    say all the header would; anything unusual still goes through ``numpy()``.
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


def numpy_arrays(record: Any) -> dict[str, NDArray[Any]]:
    """Return the arrays of an ``ArrayRecord`` by name (never unpickles)."""
    return {name: ndarray_of(array) for name, array in record.items()}
