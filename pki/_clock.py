"""The time a PKI operation happens at: given by the caller, or the current UTC time."""

from __future__ import annotations

from datetime import UTC, datetime


def resolve_now(now: datetime | None) -> datetime:
    """Return ``now`` if given, else the current time; always timezone-aware UTC.

    Parameters
    ----------
    now
        The time of the operation, timezone-aware; ``None`` for the current time.

    Returns
    -------
    datetime
        The time in UTC.

    Raises
    ------
    ValueError
        If ``now`` is naive (a programming error, not a user mistake).
    """
    if now is None:
        return datetime.now(UTC)
    return require_aware(now)


def require_aware(now: datetime) -> datetime:
    """Return ``now`` in UTC, refusing a naive datetime.

    Parameters
    ----------
    now
        A timezone-aware datetime.

    Returns
    -------
    datetime
        The same instant in UTC.

    Raises
    ------
    ValueError
        If ``now`` is naive.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    return now.astimezone(UTC)


def format_time(when: datetime) -> str:
    """Format a time for messages, e.g. ``2025-01-31 12:00:00 UTC``."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def check_lifetime(days: int) -> None:
    """Refuse a certificate lifetime below one day.

    Raises
    ------
    ValueError
        If ``days`` is below 1 (the CLI enforces this on ``--days``).
    """
    if days < 1:
        raise ValueError(f"lifetime_days must be at least 1, got {days}")
