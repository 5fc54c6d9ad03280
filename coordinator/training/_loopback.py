"""``LoopbackGrid``: a zero-transport Flower ``Grid`` for tests and benchmarks.

Each pushed message is serialized to a ``flwr.proto.Message`` and parsed again (the
protobuf round trip every real transport pays), handed straight to the handler of
its destination node, and the reply makes the same round trip back. No network,
no policy, no privacy: the floor against which ``AccordGrid`` is measured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from coordinator.training import _flower as fl

Handler = Callable[[fl.Message], fl.Message]


class LoopbackGrid(fl.RunGrid):
    """A ``Grid`` that calls an in-process handler per node.

    Parameters
    ----------
    handlers : Mapping[int, Handler]
        Node id to a function from a message to its reply (e.g. a ``ClientApp``
        bound to a ``Context``).
    run_id : int
        Flower's run id.
    """

    def __init__(self, handlers: Mapping[int, Handler], *, run_id: int = 1) -> None:
        self._handlers = dict(handlers)
        self._run = fl.Run.create_empty(run_id)
        self._replies: dict[str, fl.Message] = {}

    def get_node_ids(self) -> Iterable[int]:
        """Return every node id."""
        return list(self._handlers)

    def push_messages(self, messages: Iterable[fl.Message]) -> Iterable[str]:
        """Deliver each message now; keep its reply for `pull_messages`."""
        ids = []
        for message in messages:
            message_id = fl.stamp_pushed(message, self._run.run_id)
            received = fl.message_from_bytes(fl.message_to_bytes(message))
            reply = self._handlers[message.metadata.dst_node_id](received)
            back = fl.message_from_bytes(fl.message_to_bytes(reply))
            fl.stamp_reply(back)
            self._replies[message_id] = back
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[fl.Message]:
        """Return the replies of ``message_ids`` (once each)."""
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[fl.Message], *, timeout: float | None = None
    ) -> Iterable[fl.Message]:
        """Deliver the messages and return every reply."""
        return self.pull_messages(list(self.push_messages(messages)))
