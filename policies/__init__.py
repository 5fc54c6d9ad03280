"""Declared sharing policies, the privacy-budget ledger and the decision log.

The evaluator is pure: ``evaluate(policy, request, digest=..., now=...)``; loading and
storage sit apart from it.
"""

from policies._evaluate import evaluate as evaluate
from policies._load import LoadedPolicy as LoadedPolicy
from policies._load import load_policy as load_policy
from policies._model import ACTIONS as ACTIONS
from policies._model import Policy as Policy
from policies._model import PolicyHeader as PolicyHeader
from policies._model import Rule as Rule
from policies._request import AccessRequest as AccessRequest
from policies._request import BudgetCharge as BudgetCharge
from policies._request import Decision as Decision
from policies._request import Requester as Requester
from policies._summary import describe_rule as describe_rule
from policies._summary import summarise as summarise

__all__ = [
    "ACTIONS",
    "AccessRequest",
    "BudgetCharge",
    "Decision",
    "LoadedPolicy",
    "Policy",
    "PolicyHeader",
    "Requester",
    "Rule",
    "describe_rule",
    "evaluate",
    "load_policy",
    "summarise",
]
