"""The threads that call nodes: one pool for the process, its idle threads reused.

Starting a thread costs about half a millisecond on a busy machine. A query that
opened a pool of its own paid that once per node for its fan-out, and again for each
secure-aggregation session; the shared pool starts its threads once. Every call
carries its own gRPC deadline, so no thread is held for longer than that.
"""

from __future__ import annotations

import os
import threading
from concurrent import futures

#: Most node calls in flight at once, across every query of the process.
CALL_THREADS = 64

_pool: futures.ThreadPoolExecutor | None = None
_lock = threading.Lock()


def node_calls() -> futures.ThreadPoolExecutor:
    """Return the process's pool for calls to nodes (created on first use)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = futures.ThreadPoolExecutor(
                max_workers=CALL_THREADS, thread_name_prefix="accord-node-call"
            )
        return _pool


def _forget_in_child() -> None:
    # A forked child has none of its parent's threads: it starts a pool of its own.
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
