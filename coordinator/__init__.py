"""The coordinator: SDK and CLI, fan-out to nodes, combining their answers."""

from coordinator._cli import cli as cli
from coordinator._client import Coordinator as Coordinator
from coordinator._client import load_tls as load_tls
from coordinator._combine import CombinedGroup as CombinedGroup
from coordinator._combine import CombinedValue as CombinedValue
from coordinator._combine import FederatedResult as FederatedResult
from coordinator._errors import CoordinatorError as CoordinatorError
from coordinator._errors import NoNodeAnswered as NoNodeAnswered
from coordinator._errors import SchemaMismatch as SchemaMismatch
from coordinator._errors import SpecError as SpecError
from coordinator._errors import TlsSetupError as TlsSetupError
from coordinator._exit import EXIT_CODE_HELP as EXIT_CODE_HELP
from coordinator._exit import ExitCode as ExitCode
from coordinator._federation import FederationConfig as FederationConfig
from coordinator._federation import NodeEntry as NodeEntry
from coordinator._federation import load_federation as load_federation
from coordinator._link import GrpcNodeLink as GrpcNodeLink
from coordinator._link import NodeAddress as NodeAddress
from coordinator._link import NodeLink as NodeLink
from coordinator._outcome import NodeOutcome as NodeOutcome
from coordinator._render import budget_rows as budget_rows
from coordinator._render import budget_table as budget_table
from coordinator._render import render_result as render_result
from coordinator._render import result_json as result_json
from coordinator._spec import Aggregation as Aggregation
from coordinator._spec import Filter as Filter
from coordinator._spec import QuerySpec as QuerySpec

__all__ = [
    "EXIT_CODE_HELP",
    "Aggregation",
    "CombinedGroup",
    "CombinedValue",
    "Coordinator",
    "CoordinatorError",
    "ExitCode",
    "FederatedResult",
    "FederationConfig",
    "Filter",
    "GrpcNodeLink",
    "NoNodeAnswered",
    "NodeAddress",
    "NodeEntry",
    "NodeLink",
    "NodeOutcome",
    "QuerySpec",
    "SchemaMismatch",
    "SpecError",
    "TlsSetupError",
    "budget_rows",
    "budget_table",
    "cli",
    "load_federation",
    "load_tls",
    "render_result",
    "result_json",
]
