"""The agency node: gRPC server, data sources, local execution, the policy gate."""

from node._cli import cli as cli
from node._config import ColumnSpec as ColumnSpec
from node._config import DatasetSpec as DatasetSpec
from node._config import NodeConfig as NodeConfig
from node._config import load_node_config as load_node_config
from node._errors import NodeError as NodeError
from node._errors import NodeStartupError as NodeStartupError
from node._exit import EXIT_CODE_HELP as EXIT_CODE_HELP
from node._exit import ExitCode as ExitCode
from node._server import NodeServer as NodeServer
from node._server import create_server as create_server
from node._server import node_version as node_version
from node._server import serve as serve

__all__ = [
    "EXIT_CODE_HELP",
    "ColumnSpec",
    "DatasetSpec",
    "ExitCode",
    "NodeConfig",
    "NodeError",
    "NodeServer",
    "NodeStartupError",
    "cli",
    "create_server",
    "load_node_config",
    "node_version",
    "serve",
]
