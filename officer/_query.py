"""The log page's query: filters, order and page, read from the URL and checked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlencode

from policies.auditlog import DECISIONS, OPERATIONS, RecordFilter

from ._errors import BadRequest

__all__ = ["PAGE_SIZES", "LogFilter", "LogQuery", "parse_log_query", "parse_time"]

PAGE_SIZES = (25, 50, 100, 200)
"""Page sizes the log page offers."""

Order = Literal["newest", "oldest"]


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which records: every field set must match (``None``: any).

    ``operation`` is applied by the workbench (``ListRecords`` has no such filter);
    the others are sent to the node.
    """

    requester: str | None = None
    purpose: str | None = None
    decision: str | None = None
    dataset: str | None = None
    operation: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def record_filter(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> RecordFilter:
        """Return the part the node filters on, with a narrower time range if given.

        Parameters
        ----------
        since, until : datetime, optional
            Replace the filter's own time range.

        Returns
        -------
        RecordFilter
            For ``ListRecords``.
        """
        return RecordFilter(
            requester=self.requester,
            purpose=self.purpose,
            decision=self.decision,
            dataset=self.dataset,
            since=since if since is not None else self.since,
            until=until if until is not None else self.until,
        )

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return any(getattr(self, f.name) is not None for f in fields(self))


@dataclass(frozen=True, slots=True)
class LogQuery:
    """A log page request: filters, order, page number and size."""

    where: LogFilter = LogFilter()
    order: Order = "newest"
    page: int = 1
    page_size: int = 50

    def params(self, **changes: object) -> str:
        """Return this query as URL parameters, with some values changed.

        Parameters
        ----------
        **changes : object
            ``page``, ``order``, ``page_size`` or a filter field, and its new value.

        Returns
        -------
        str
            The URL-encoded query string (unset values left out).
        """
        query = self
        filter_changes = {k: v for k, v in changes.items() if hasattr(self.where, k)}
        other = {k: v for k, v in changes.items() if k not in filter_changes}
        if filter_changes:
            query = replace(query, where=replace(query.where, **filter_changes))  # type: ignore[arg-type]
        if other:
            query = replace(query, **other)  # type: ignore[arg-type]
        items: list[tuple[str, str]] = []
        for f in fields(query.where):
            value = getattr(query.where, f.name)
            if isinstance(value, datetime):
                items.append((f.name, value.strftime("%Y-%m-%dT%H:%M:%S")))
            elif value is not None:
                items.append((f.name, str(value)))
        items += [
            ("order", query.order),
            ("page", str(query.page)),
            ("page_size", str(query.page_size)),
        ]
        return urlencode(items)


def parse_time(value: str, field: str) -> datetime:
    """Parse an ISO 8601 time; one without an offset is UTC.

    Parameters
    ----------
    value : str
        E.g. ``2025-03-01``, ``2025-03-01T08:30`` or ``2025-03-01T08:30:00+01:00``.
    field : str
        The parameter, for the error.

    Returns
    -------
    datetime
        An aware datetime in UTC.

    Raises
    ------
    BadRequest
        If ``value`` is not a time.
    """
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            field, f"{value!r} is not a time (e.g. 2025-03-01T08:30, UTC)"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _text(params: Mapping[str, str], name: str, limit: int = 512) -> str | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    if len(value) > limit:
        raise BadRequest(name, f"longer than {limit} characters")
    return value


def _int(params: Mapping[str, str], name: str, default: int) -> int:
    value = params.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or len(value) > 9:
        raise BadRequest(name, f"{value!r} is not a positive whole number")
    return int(value)


def parse_log_query(params: Mapping[str, str], *, default_size: int = 50) -> LogQuery:
    """Read and check the log page's URL parameters.

    Parameters
    ----------
    params : Mapping[str, str]
        The query parameters.
    default_size : int, optional
        The page size when none is given.

    Returns
    -------
    LogQuery
        The query.

    Raises
    ------
    BadRequest
        Naming the first malformed parameter.
    """
    decision = _text(params, "decision")
    if decision is not None and decision not in DECISIONS:
        raise BadRequest("decision", f"expected one of {', '.join(sorted(DECISIONS))}")
    operation = _text(params, "operation")
    if operation is not None and operation not in OPERATIONS:
        raise BadRequest(
            "operation", f"expected one of {', '.join(sorted(OPERATIONS))}"
        )
    since_text, until_text = _text(params, "since"), _text(params, "until")
    since = None if since_text is None else parse_time(since_text, "since")
    until = None if until_text is None else parse_time(until_text, "until")
    if since is not None and until is not None and since >= until:
        raise BadRequest("until", "must be after since")
    order = params.get("order", "newest") or "newest"
    if order not in ("newest", "oldest"):
        raise BadRequest("order", "expected newest or oldest")
    page = _int(params, "page", 1)
    if page < 1:
        raise BadRequest("page", "pages start at 1")
    size = _int(params, "page_size", default_size)
    if not 1 <= size <= 1000:
        raise BadRequest("page_size", "expected 1 to 1000")
    return LogQuery(
        where=LogFilter(
            requester=_text(params, "requester"),
            purpose=_text(params, "purpose"),
            decision=decision,
            dataset=_text(params, "dataset"),
            operation=operation,
            since=since,
            until=until,
        ),
        order="newest" if order == "newest" else "oldest",
        page=page,
        page_size=size,
    )
