"""Declared sharing policies: the policy file, its pure evaluator and ``accord policy``.

The evaluator is pure: ``evaluate(policy, request, digest=..., now=...)`` returns a
``Decision`` (allowed or not, the rule, the cost in zCDP rho, the budget charges and the
obligations); loading and storage sit apart from it. The privacy-budget ledger
(``policies.ledger``) and the decision log (``policies.auditlog``) are subpackages.

The command group (``cli``, ``EXIT_CODES``) is loaded on first access, so that a node
importing ``policies`` does not import typer and rich for it.

Errors (see ``policies._errors``)::

    PolicyError
      PolicyInvalid   (also tomlconf.ConfigError)
      RequestInvalid  (also tomlconf.ConfigError)
"""

from typing import TYPE_CHECKING, Any

from policies._budgets import Budget as Budget
from policies._charges import PERIOD_EPOCH as PERIOD_EPOCH
from policies._charges import current_period as current_period
from policies._charges import permitted_purposes as permitted_purposes
from policies._charges import standing_charges as standing_charges
from policies._datasets import Column as Column
from policies._datasets import Dataset as Dataset
from policies._errors import PolicyError as PolicyError
from policies._errors import PolicyInvalid as PolicyInvalid
from policies._errors import RequestInvalid as RequestInvalid
from policies._evaluate import evaluate as evaluate
from policies._header import DEFAULT_DELTA as DEFAULT_DELTA
from policies._header import Duties as Duties
from policies._header import PolicyHeader as PolicyHeader
from policies._header import PrivacyUnit as PrivacyUnit
from policies._load import LoadedPolicy as LoadedPolicy
from policies._load import load_policy as load_policy
from policies._load import parse_policy as parse_policy
from policies._load import validate_policy as validate_policy
from policies._model import Policy as Policy
from policies._privacy import epsilon_at as epsilon_at
from policies._privacy import rho_for_epsilon as rho_for_epsilon
from policies._privacy import rho_of_pure_epsilon as rho_of_pure_epsilon
from policies._report import decision_report as decision_report
from policies._request import AccessRequest as AccessRequest
from policies._request import BudgetCharge as BudgetCharge
from policies._request import Decision as Decision
from policies._request import Obligations as Obligations
from policies._request import PrivacyLoss as PrivacyLoss
from policies._request import Requester as Requester
from policies._requestfile import load_request as load_request
from policies._requestfile import request_from_data as request_from_data
from policies._rules import App as App
from policies._rules import Permission as Permission
from policies._rules import Prohibition as Prohibition
from policies._rules import Rule as Rule
from policies._schema import SCHEMA_PATH as SCHEMA_PATH
from policies._schema import SCHEMA_VERSION as SCHEMA_VERSION
from policies._schema import policy_json_schema as policy_json_schema
from policies._schema import policy_schema_text as policy_schema_text
from policies._summary import describe_rule as describe_rule
from policies._summary import summarise as summarise
from policies._types import ACTIONS as ACTIONS
from policies._types import Action as Action

if TYPE_CHECKING:
    from policies._cli import EXIT_CODES as EXIT_CODES
    from policies._cli import cli as cli

_CLI_NAMES = frozenset({"EXIT_CODES", "cli"})


def __getattr__(name: str) -> Any:
    """Load the command group on first access."""
    if name in _CLI_NAMES:
        from policies import _cli

        return getattr(_cli, name)
    raise AttributeError(f"module 'policies' has no attribute {name!r}")


__all__ = [
    "ACTIONS",
    "DEFAULT_DELTA",
    "EXIT_CODES",
    "PERIOD_EPOCH",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "AccessRequest",
    "Action",
    "App",
    "Budget",
    "BudgetCharge",
    "Column",
    "Dataset",
    "Decision",
    "Duties",
    "LoadedPolicy",
    "Obligations",
    "Permission",
    "Policy",
    "PolicyError",
    "PolicyHeader",
    "PolicyInvalid",
    "PrivacyLoss",
    "PrivacyUnit",
    "Prohibition",
    "RequestInvalid",
    "Requester",
    "Rule",
    "cli",
    "current_period",
    "decision_report",
    "describe_rule",
    "epsilon_at",
    "evaluate",
    "load_policy",
    "load_request",
    "parse_policy",
    "permitted_purposes",
    "policy_json_schema",
    "policy_schema_text",
    "request_from_data",
    "rho_for_epsilon",
    "rho_of_pure_epsilon",
    "standing_charges",
    "summarise",
    "validate_policy",
]
