"""Federated training at the node: installed apps, the policy gate, node-side privacy.

The node serves ``TrainingService`` (``proto/accord/v1/training_service.proto``):
Flower messages arrive as bytes with their job context; each passes the gate
(policy, ledger, decision log), runs an installed app on the policy's allowed
columns only, and leaves clipped, noised -- and masked under secure aggregation --
whatever the coordinator asked. Built-in apps: ``logistic-regression``,
``linear-regression`` and ``mlp``, each with the SHA-256 digest of its code.

Errors (see ``node.training._errors``; mapped by ``node._errors.rpc_errors``)::

    NodeError
      AppNotInstalled   -> FAILED_PRECONDITION
      TrainingFailed    -> INTERNAL
"""

from node.training._apps import AppRegistry as AppRegistry
from node.training._apps import TrainingApp as TrainingApp
from node.training._apps import builtin_apps as builtin_apps
from node.training._apps import code_digest as code_digest
from node.training._clientapp import LOSS_BOUND as LOSS_BOUND
from node.training._clientapp import LocalData as LocalData
from node.training._errors import AppNotInstalled as AppNotInstalled
from node.training._errors import TrainingFailed as TrainingFailed
from node.training._features import FeatureLayout as FeatureLayout
from node.training._features import LayoutError as LayoutError
from node.training._features import feature_layout as feature_layout
from node.training._privacy import noise_of_rho as noise_of_rho
from node.training._privacy import privatize_update as privatize_update
from node.training._privacy import rho_of_noise as rho_of_noise
from node.training._servicer import TRAINING_SERVICE_NAME as TRAINING_SERVICE_NAME
from node.training._servicer import TrainingServicer as TrainingServicer
from node.training._servicer import TrainingSettings as TrainingSettings
from node.training._servicer import add_training_service as add_training_service

__all__ = [
    "LOSS_BOUND",
    "TRAINING_SERVICE_NAME",
    "AppNotInstalled",
    "AppRegistry",
    "FeatureLayout",
    "LayoutError",
    "LocalData",
    "TrainingApp",
    "TrainingFailed",
    "TrainingServicer",
    "TrainingSettings",
    "add_training_service",
    "builtin_apps",
    "code_digest",
    "feature_layout",
    "noise_of_rho",
    "privatize_update",
    "rho_of_noise",
]
