"""The compliance officer's workbench: a read-only web application over a node's log.

``accord officer serve`` reads the node's decision log, checkpoints, budgets and
policy through the node itself (``AuditService`` and ``NodeService`` over mutual
TLS with an officer's certificate), so that the node logs every page an officer
opens. Records and proofs are checked against the pinned log key.

The web application and its dependencies (Starlette, Jinja2, uvicorn) are loaded
on first access to the names that need them, so that ``accord`` starts quickly.

Errors (see ``officer._errors``)::

    OfficerError
      BadRequest, NotFound, NodeUnavailable, IndexBroken
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from officer._cli import cli as cli
from officer._config import OfficerConfig as OfficerConfig
from officer._config import Overrides as Overrides
from officer._config import Settings as Settings
from officer._config import SettingsError as SettingsError
from officer._config import load_settings as load_settings
from officer._errors import BadRequest as BadRequest
from officer._errors import IndexBroken as IndexBroken
from officer._errors import NodeUnavailable as NodeUnavailable
from officer._errors import NotFound as NotFound
from officer._errors import OfficerError as OfficerError
from officer._exit import EXIT_CODE_HELP as EXIT_CODE_HELP
from officer._exit import ExitCode as ExitCode

if TYPE_CHECKING:
    from officer._alerts import BudgetAlert as BudgetAlert
    from officer._alerts import DenialBurst as DenialBurst
    from officer._alerts import budget_alerts as budget_alerts
    from officer._alerts import denial_bursts as denial_bursts
    from officer._app import create_app as create_app
    from officer._chart import ChartSeries as ChartSeries
    from officer._chart import consumption_series as consumption_series
    from officer._chart import render_chart as render_chart
    from officer._index import LogIndex as LogIndex
    from officer._integrity import PinnedKey as PinnedKey
    from officer._link import GrpcNodeLink as GrpcNodeLink
    from officer._link import NodeLink as NodeLink
    from officer._link import ReaderNodeLink as ReaderNodeLink
    from officer._query import LogFilter as LogFilter
    from officer._query import LogQuery as LogQuery
    from officer._report import render_report as render_report
    from officer._serve import open_workbench as open_workbench
    from officer._views import BudgetLine as BudgetLine
    from officer._views import BudgetReport as BudgetReport
    from officer._views import NodeFacts as NodeFacts
    from officer._workbench import ReportData as ReportData
    from officer._workbench import Workbench as Workbench

_LAZY = {
    "BudgetAlert": "_alerts",
    "DenialBurst": "_alerts",
    "budget_alerts": "_alerts",
    "denial_bursts": "_alerts",
    "create_app": "_app",
    "ChartSeries": "_chart",
    "consumption_series": "_chart",
    "render_chart": "_chart",
    "LogIndex": "_index",
    "PinnedKey": "_integrity",
    "GrpcNodeLink": "_link",
    "NodeLink": "_link",
    "ReaderNodeLink": "_link",
    "LogFilter": "_query",
    "LogQuery": "_query",
    "render_report": "_report",
    "open_workbench": "_serve",
    "BudgetLine": "_views",
    "BudgetReport": "_views",
    "NodeFacts": "_views",
    "ReportData": "_workbench",
    "Workbench": "_workbench",
}


def __getattr__(name: str) -> Any:
    """Load the web application's parts on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'officer' has no attribute {name!r}")
    return getattr(import_module(f"officer.{module}"), name)


__all__ = [
    "EXIT_CODE_HELP",
    "BadRequest",
    "BudgetAlert",
    "BudgetLine",
    "BudgetReport",
    "ChartSeries",
    "DenialBurst",
    "ExitCode",
    "GrpcNodeLink",
    "IndexBroken",
    "LogFilter",
    "LogIndex",
    "LogQuery",
    "NodeFacts",
    "NodeLink",
    "NodeUnavailable",
    "NotFound",
    "OfficerConfig",
    "OfficerError",
    "Overrides",
    "PinnedKey",
    "ReaderNodeLink",
    "ReportData",
    "Settings",
    "SettingsError",
    "Workbench",
    "budget_alerts",
    "cli",
    "consumption_series",
    "create_app",
    "denial_bursts",
    "load_settings",
    "open_workbench",
    "render_chart",
    "render_report",
]
