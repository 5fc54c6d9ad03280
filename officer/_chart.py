"""Charts of privacy-budget consumption over time, as inline SVG (pure).

A budget's consumption is a step function: each charge raises it; for a periodic
budget it falls back to zero at each period boundary (periods are counted from
1970-01-01 UTC, as the ledger counts them). The chart draws it, downsampled to one
step per horizontal pixel bucket (its maximum and its final value in the bucket),
against the limit and the alert threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

__all__ = ["ChartSeries", "consumption_series", "render_chart", "sample", "value_at"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ChartSeries:
    """A budget's consumption over a time range, as steps.

    Attributes
    ----------
    label : str
        What the series shows (budget id, scope, purpose).
    start, end : datetime
        The range drawn.
    steps : tuple[tuple[datetime, float], ...]
        ``(time, value from then on)``, the first at ``start``.
    limit : float
        The budget's limit, in rho.
    threshold : float
        The alert level, in rho (limit times the alert fraction).
    """

    label: str
    start: datetime
    end: datetime
    steps: tuple[tuple[datetime, float], ...]
    limit: float
    threshold: float

    @property
    def final(self) -> float:
        """The value at ``end``."""
        return self.steps[-1][1] if self.steps else 0.0


def consumption_series(
    charges: Sequence[tuple[datetime, float]],
    *,
    start: datetime,
    end: datetime,
    limit: float,
    alert_threshold: float,
    period_days: int | None = None,
    label: str = "",
) -> ChartSeries:
    """Build the consumption steps of one budget from its charges.

    Parameters
    ----------
    charges : Sequence[tuple[datetime, float]]
        ``(time, rho)`` of each charge, in time order (charges before ``start``
        count toward the value at ``start``).
    start, end : datetime
        The range to draw.
    limit : float
        The budget's limit in rho.
    alert_threshold : float
        Fraction of the limit at which the officer is alerted.
    period_days : int, optional
        The period of a periodic budget; ``None`` for a lifetime budget.
    label : str, optional
        The series' label.

    Returns
    -------
    ChartSeries
        The steps, the first at ``start``.

    Raises
    ------
    ValueError
        If ``end`` is not after ``start``.
    """
    if end <= start:
        raise ValueError("end must be after start")
    length = None if period_days is None else timedelta(days=period_days)
    before = [(m, r) for m, r in charges if m < start]
    if length is None:
        initial = sum(r for _, r in before)
    else:
        period = (start - _EPOCH) // length
        initial = sum(r for m, r in before if (m - _EPOCH) // length == period)
    # Events in range: (time, order, rho); a period boundary (order 0) resets.
    events: list[tuple[datetime, int, float]] = [
        (m, 1, r) for m, r in charges if start <= m < end
    ]
    if length is not None:
        index = (start - _EPOCH) // length + 1
        boundary = _EPOCH + length * index
        while boundary < end:
            events.append((boundary, 0, 0.0))
            boundary += length
    events.sort(key=lambda e: (e[0], e[1]))
    value = initial
    steps: list[tuple[datetime, float]] = [(start, initial)]
    for moment, kind, rho in events:
        value = 0.0 if kind == 0 else value + rho
        if steps[-1][0] == moment:
            steps[-1] = (moment, value)
        else:
            steps.append((moment, value))
    return ChartSeries(
        label=label,
        start=start,
        end=end,
        steps=tuple(steps),
        limit=limit,
        threshold=limit * alert_threshold,
    )


def value_at(series: ChartSeries, moment: datetime) -> float:
    """Return the series' value at ``moment`` (the last step at or before it)."""
    value = 0.0
    for when, step in series.steps:
        if when > moment:
            break
        value = step
    return value


def sample(series: ChartSeries, buckets: int) -> list[tuple[float, float]]:
    """Downsample to ``buckets`` equal time buckets: ``(maximum, final)`` in each.

    Parameters
    ----------
    series : ChartSeries
        The series.
    buckets : int
        How many buckets (e.g. the chart's width in pixels).

    Returns
    -------
    list[tuple[float, float]]
        Per bucket, the largest value reached and the value at its end.
    """
    total = (series.end - series.start).total_seconds()
    width = total / buckets
    out: list[tuple[float, float]] = []
    steps = list(series.steps)
    i = 0
    value = steps[0][1] if steps else 0.0
    for b in range(buckets):
        bucket_end = series.start + timedelta(seconds=width * (b + 1))
        peak = value
        while i < len(steps) and steps[i][0] < bucket_end:
            value = steps[i][1]
            peak = max(peak, value)
            i += 1
        out.append((peak, value))
    return out


def _ticks(start: datetime, end: datetime, count: int) -> list[datetime]:
    span = (end - start) / count
    return [start + span * i for i in range(count + 1)]


def render_chart(
    series: ChartSeries, *, width: int = 640, height: int = 200, title: str = ""
) -> str:
    """Render a series as a self-contained inline SVG element.

    Parameters
    ----------
    series : ChartSeries
        The consumption steps.
    width, height : int, optional
        The chart's size in pixels.
    title : str, optional
        An accessible title (``<title>``).

    Returns
    -------
    str
        The ``<svg>`` markup (escaped; safe to embed).
    """
    left, right, top, bottom = 56, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    samples = sample(series, plot_w)
    peak = max([series.limit, *(p for p, _ in samples)]) or 1.0
    top_value = peak * 1.08

    def y(value: float) -> float:
        return top + plot_h - (value / top_value) * plot_h

    points: list[str] = []
    for x, (high, final) in enumerate(samples):
        px = left + x
        points.append(f"{px},{y(high):.1f}")
        if final != high:
            points.append(f"{px},{y(final):.1f}")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title or series.label)}</title>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" '
        'class="chart-bg"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = series.limit * fraction
        parts.append(
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" class="chart-axis" '
            f'text-anchor="end">{value:.3g}</text>'
        )
    for tick in _ticks(series.start, series.end, 4):
        tx = left + plot_w * ((tick - series.start) / (series.end - series.start))
        parts.append(
            f'<text x="{tx:.1f}" y="{height - 8}" class="chart-axis" '
            f'text-anchor="middle">{tick.strftime("%Y-%m-%d")}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{y(series.limit):.1f}" '
        f'y2="{y(series.limit):.1f}" class="chart-limit"><title>limit rho '
        f"{series.limit:.6g}</title></line>"
    )
    if 0 < series.threshold < series.limit:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(series.threshold):.1f}" '
            f'y2="{y(series.threshold):.1f}" class="chart-threshold"><title>alert '
            f"threshold rho {series.threshold:.6g}</title></line>"
        )
    parts.append(
        f'<polyline points="{" ".join(points)}" class="chart-line">'
        f"<title>{escape(series.label)}: rho {series.final:.6g} at the end</title>"
        "</polyline>"
    )
    parts.append("</svg>")
    return "".join(parts)
