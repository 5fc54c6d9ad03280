"""Federated training from the coordinator: Flower strategies over Accord's transport.

``AccordGrid`` is a Flower ``Grid`` whose messages travel over each node's
``TrainingService`` (mutual TLS); Flower's Message-API strategies and ServerApps
written against Flower's public API run on it unchanged. ``Trainer`` runs a
training spec round by round, keeping every round in the job store (SQLModel:
SQLite by default, PostgreSQL by URL) so that a restarted coordinator resumes.
The commands ``accord train``, ``accord jobs`` and ``accord models`` live in
``cli``. Names load on first access, so importing this package loads neither
Flower nor SQLModel.

Errors::

    CoordinatorError
      JobFailed
      JobStoreError
        JobNotFound
"""

from typing import TYPE_CHECKING, Any

from coordinator.training._spec import STRATEGIES as STRATEGIES
from coordinator.training._spec import TrainSpec as TrainSpec
from coordinator.training._spec import load_spec as load_spec

if TYPE_CHECKING:
    from coordinator.training._cli import cli as cli
    from coordinator.training._grid import FIRST_NODE_ID as FIRST_NODE_ID
    from coordinator.training._grid import AccordGrid as AccordGrid
    from coordinator.training._grid import Delivery as Delivery
    from coordinator.training._grid import GridJob as GridJob
    from coordinator.training._grid import update_encoding as update_encoding
    from coordinator.training._link import GrpcTrainingLink as GrpcTrainingLink
    from coordinator.training._link import TrainingLink as TrainingLink
    from coordinator.training._loopback import LoopbackGrid as LoopbackGrid
    from coordinator.training._store import JobNotFound as JobNotFound
    from coordinator.training._store import JobRecord as JobRecord
    from coordinator.training._store import JobStore as JobStore
    from coordinator.training._store import JobStoreError as JobStoreError
    from coordinator.training._store import ModelRecord as ModelRecord
    from coordinator.training._store import SqlJobStore as SqlJobStore
    from coordinator.training._strategies import build_strategy as build_strategy
    from coordinator.training._trainer import MODEL_FORMAT as MODEL_FORMAT
    from coordinator.training._trainer import JobFailed as JobFailed
    from coordinator.training._trainer import JobResult as JobResult
    from coordinator.training._trainer import NodeSpend as NodeSpend
    from coordinator.training._trainer import RoundReport as RoundReport
    from coordinator.training._trainer import Trainer as Trainer
    from coordinator.training._trainer import arrays_from_npz as arrays_from_npz

# Loaded on first access: Flower, SQLModel and typer stay out of `import coordinator`.
_LAZY = {
    "AccordGrid": "coordinator.training._grid",
    "Delivery": "coordinator.training._grid",
    "FIRST_NODE_ID": "coordinator.training._grid",
    "GridJob": "coordinator.training._grid",
    "GrpcTrainingLink": "coordinator.training._link",
    "JobFailed": "coordinator.training._trainer",
    "JobNotFound": "coordinator.training._store",
    "JobRecord": "coordinator.training._store",
    "JobResult": "coordinator.training._trainer",
    "JobStore": "coordinator.training._store",
    "JobStoreError": "coordinator.training._store",
    "LoopbackGrid": "coordinator.training._loopback",
    "MODEL_FORMAT": "coordinator.training._trainer",
    "ModelRecord": "coordinator.training._store",
    "NodeSpend": "coordinator.training._trainer",
    "RoundReport": "coordinator.training._trainer",
    "SqlJobStore": "coordinator.training._store",
    "Trainer": "coordinator.training._trainer",
    "TrainingLink": "coordinator.training._link",
    "arrays_from_npz": "coordinator.training._trainer",
    "build_strategy": "coordinator.training._strategies",
    "update_encoding": "coordinator.training._grid",
    "cli": "coordinator.training._cli",
}

__all__ = [
    "FIRST_NODE_ID",
    "MODEL_FORMAT",
    "STRATEGIES",
    "AccordGrid",
    "Delivery",
    "GridJob",
    "GrpcTrainingLink",
    "JobFailed",
    "JobNotFound",
    "JobRecord",
    "JobResult",
    "JobStore",
    "JobStoreError",
    "LoopbackGrid",
    "ModelRecord",
    "NodeSpend",
    "RoundReport",
    "SqlJobStore",
    "TrainSpec",
    "Trainer",
    "TrainingLink",
    "arrays_from_npz",
    "build_strategy",
    "cli",
    "load_spec",
    "update_encoding",
]


def __getattr__(name: str) -> Any:
    """Load a name's module on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'coordinator.training' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
