"""Read a dataset's allowed columns through its source, encode them, keep them briefly."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import sqlalchemy as sa

from node._config import DatasetSpec
from node._sources import DataSource
from node.training._clientapp import LocalData
from node.training._features import FeatureLayout

#: Encoded datasets kept at once.
_MAX_ENTRIES = 8


class LocalDataCache:
    """Loads ``(x, y)`` for a layout from the dataset's source; caches it for a while.

    Only the layout's columns -- the features and the label the policy allowed for
    the request -- are selected from the source; nothing else is read.

    Parameters
    ----------
    ttl : float
        Seconds an encoded dataset is reused before it is read again.
    monotonic : Callable[[], float]
        The clock.
    """

    def __init__(
        self, *, ttl: float = 300.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._now = monotonic
        self._lock = threading.Lock()
        self._entries: OrderedDict[
            tuple[str, tuple[str, ...], str], tuple[float, LocalData]
        ] = OrderedDict()

    def load(
        self, dataset: DatasetSpec, source: DataSource, layout: FeatureLayout
    ) -> LocalData:
        """Return the encoded data of ``layout`` from ``source`` (cached).

        Raises
        ------
        Exception
            Whatever the source raises: the caller maps it to an opaque error.
        """
        key = (dataset.id, layout.columns, layout.task)
        now = self._now()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                self._entries.move_to_end(key)
                return hit[1]
        table = source.table()
        statement = sa.select(*(table.c[name] for name in layout.columns))
        rows = source.run(statement)
        x, y = layout.encode(rows)
        data = LocalData(x, y, tuple(layout.input_names))
        with self._lock:
            self._entries[key] = (now + self._ttl, data)
            self._entries.move_to_end(key)
            while len(self._entries) > _MAX_ENTRIES:
                self._entries.popitem(last=False)
        return data
