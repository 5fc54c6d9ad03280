"""The period report for a supervisory authority: one self-contained HTML file."""

from __future__ import annotations

from ._render import render
from ._workbench import ReportData

__all__ = ["render_report", "report_filename"]


def render_report(data: ReportData) -> str:
    """Render a report as one HTML document with no external resources.

    Styles are inline, charts are inline SVG, there is no script; the document
    names the signed checkpoint and the pinned key, so the JSONL export that
    goes with it can be verified (``accord audit verify``).

    Parameters
    ----------
    data : ReportData
        What the report shows.

    Returns
    -------
    str
        The HTML document.
    """
    return render("report.html", r=data)


def report_filename(data: ReportData) -> str:
    """Return a file name for the report: origin and period.

    Parameters
    ----------
    data : ReportData
        The report.

    Returns
    -------
    str
        E.g. ``accord-report-audit.agency-a.demo-20250301-20250401.html``.
    """
    return f"accord-report-{data.origin}-{data.since:%Y%m%d}-{data.until:%Y%m%d}.html"
