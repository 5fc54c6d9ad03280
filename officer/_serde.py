"""``accord.v1`` messages to the workbench's dataclasses; proto goes no further."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from accord.v1 import node_service_pb2 as pb

from ._views import BudgetLine, BudgetReport, NodeFacts

__all__ = ["budget_report_from_proto", "node_facts_from_proto"]


def _moment(message: pb.Budget, name: str) -> datetime | None:
    if not message.HasField(name):  # type: ignore[arg-type]
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, name)
    return stamp.ToDatetime(tzinfo=UTC)


def budget_report_from_proto(message: pb.GetBudgetResponse) -> BudgetReport:
    """Convert a ``GetBudgetResponse``.

    Parameters
    ----------
    message : pb.GetBudgetResponse
        The node's answer.

    Returns
    -------
    BudgetReport
        The budgets.
    """
    return BudgetReport(
        requester=message.requester,
        policy_digest=message.policy_digest,
        budgets=tuple(
            BudgetLine(
                budget_id=b.budget_id,
                requester=b.requester,
                purpose=b.purpose,
                scope=b.scope,
                period_start=_moment(b, "period_start"),
                period_end=_moment(b, "period_end"),
                rho_limit=b.rho_limit,
                rho_spent=b.rho_spent,
                rho_remaining=b.rho_remaining,
                epsilon_remaining=b.epsilon_remaining,
                delta=b.delta,
                alert_threshold=b.alert_threshold,
            )
            for b in message.budgets
        ),
    )


def node_facts_from_proto(message: pb.GetNodeInfoResponse) -> NodeFacts:
    """Convert a ``GetNodeInfoResponse`` (datasets are not kept).

    Parameters
    ----------
    message : pb.GetNodeInfoResponse
        The node's answer.

    Returns
    -------
    NodeFacts
        The node's identity and policy digest.
    """
    return NodeFacts(
        agency=message.agency,
        federation=message.federation,
        node_name=message.node_name,
        identity=message.identity,
        version=message.version,
        policy_digest=message.policy_digest,
        caller_identity=message.caller_identity,
    )
