"""The semi-internal Flower pieces Accord relies on (flwr 1.42): fail loudly on change."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from coordinator.training import _flower as cfl
from node.training import _flower as nfl


def test_flower_is_pinned_to_1_42() -> None:
    from importlib import metadata

    assert metadata.version("flwr").startswith("1.42.")


def test_task_identity_feeds_new_messages() -> None:
    from flwr.supercore.task_identity import TaskIdentity

    assert cfl.SUPERLINK_NODE_ID == 1
    with cfl.task_identity(run_id=42, task_id=3):
        assert (TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id) == (
            42,
            3,
            1,
        )
        message = Message(RecordDict(), 1000, "train")
    assert message.metadata.run_id == 42
    assert message.metadata.src_node_id == 1


def test_run_create_empty_and_metadata_slots() -> None:
    run = cfl.Run.create_empty(9)
    assert run.run_id == 9
    assert cfl.Run(**vars(run)).run_id == 9
    with cfl.task_identity(run_id=9):
        message = Message(RecordDict(), 1000, "evaluate")
    message_id = cfl.stamp_pushed(message, 9)
    assert message.metadata.message_id == message_id
    for slot in ("_message_id", "_run_id", "_src_node_id"):
        assert slot in message.metadata.__dict__


def test_messages_round_trip_through_serde_on_both_sides() -> None:
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(np.arange(3.0))}),
            "config": ConfigRecord({"lr": 0.1, "server-round": 2}),
            "metrics": MetricRecord({"num-examples": 5}),
        }
    )
    with cfl.task_identity(run_id=5):
        message = Message(content, 1001, "train.custom")
    cfl.stamp_pushed(message, 5)
    received = nfl.message_from_bytes(cfl.message_to_bytes(message))
    assert received.metadata.message_id == message.metadata.message_id
    assert nfl.category_of(received.metadata.message_type) == "train"
    np.testing.assert_array_equal(
        nfl.numpy_arrays(received.content["arrays"])["w"], np.arange(3.0)
    )
    reply = Message(RecordDict(), reply_to=received)
    back = cfl.message_from_bytes(nfl.message_to_bytes(reply))
    assert back.metadata.reply_to_message_id == message.metadata.message_id
    assert back.metadata.message_id == ""
    cfl.stamp_reply(back)
    assert back.metadata.message_id
    record = cfl.arrays_from_bytes(nfl.arrays_to_bytes(content["arrays"]))
    np.testing.assert_array_equal(record["w"].numpy(), np.arange(3.0))


def test_message_types_and_grid_abc() -> None:
    import pytest

    with pytest.raises(ValueError):
        nfl.category_of("analytics.count")
    assert nfl.category_of("query.column_stats") == "query"
    abstract = cfl.Grid.__abstractmethods__
    assert abstract == {
        "set_run",
        "run",
        "create_message",
        "get_node_ids",
        "push_messages",
        "pull_messages",
        "send_and_receive",
    }


def test_strategies_sample_through_get_node_ids_and_send_and_receive() -> None:
    from flwr.serverapp.strategy import Strategy, strategy_utils

    source = inspect.getsource(Strategy.start)
    assert "grid.send_and_receive(" in source
    assert "grid.get_node_ids()" in inspect.getsource(strategy_utils.sample_nodes)


def test_arrays_decode_without_numpys_header_parser_alike_on_both_sides() -> None:
    """Node and coordinator decode Flower arrays the same, from many threads at once.

    ``Array.numpy()`` parses each header with ``ast``; CPython 3.11 can fail that
    from concurrent threads, so both sides read dtype and shape from the Array.
    """
    import ast
    import threading
    from unittest import mock

    coordinator_decode, node_decode = cfl.ndarray_of, nfl.ndarray_of

    samples = [
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.zeros(0, dtype=np.float32),
        np.array(7, dtype=np.int64),
        np.arange(6, dtype=np.float32).reshape(2, 3).T,  # Fortran order: numpy()
        np.linspace(-1, 1, 1000).reshape(10, 10, 10),
    ]
    arrays = [Array(a) for a in samples]
    for decode in (node_decode, coordinator_decode):
        for array, expected in zip(arrays, samples, strict=True):
            got = decode(array)
            assert got.dtype == expected.dtype and got.shape == expected.shape
            assert np.array_equal(got, expected) and got.flags.writeable
    # The C-ordered arrays never reach the header parser.
    with mock.patch.object(ast, "literal_eval", side_effect=AssertionError):
        for decode in (node_decode, coordinator_decode):
            for i in (0, 1, 2, 4):
                decode(arrays[i])
    errors: list[BaseException] = []

    def hammer(decode: Any) -> None:
        try:
            for _ in range(300):
                for array in arrays:
                    decode(array)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=hammer, args=(d,))
        for d in (node_decode, coordinator_decode) * 4
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
