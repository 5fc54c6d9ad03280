"""``NodeService``: validate, decide, then compute -- in that order, every time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime

import grpc

import pki
import policies
from accord.v1 import node_service_pb2 as pb
from accord.v1 import node_service_pb2_grpc as pb_grpc
from node._config import DatasetSpec
from node._errors import (
    InvalidQuery,
    NodeError,
    ShuttingDown,
    SourceUnavailable,
    Unauthenticated,
    rpc_errors,
)
from node._gate import Admission, Gate, PolicyHolder, Ticket, request_hash
from node._query import Query, check_query
from node._result import GroupRow
from node._serde import (
    dataset_to_proto,
    groups_to_proto,
    privacy_from_proto,
    query_from_proto,
    timestamp,
)
from node._sources import DataSource
from node._sql import assemble, build_select

Clock = Callable[[], datetime]

_log = logging.getLogger("accord.node")

INSECURE_REQUESTER = policies.Requester(uri="insecure:anonymous", agency="", role="")

__all__ = ["INSECURE_REQUESTER", "NodeServicer", "PolicyHolder"]


class NodeServicer(pb_grpc.NodeServiceServicer):
    """Answers ``NodeService`` calls for one agency node."""

    def __init__(
        self,
        *,
        identity: pki.Identity,
        version: str,
        datasets: Mapping[str, DatasetSpec],
        sources: Mapping[str, DataSource],
        gate: Gate,
        clock: Clock,
    ) -> None:
        self._identity = identity
        self._version = version
        self._datasets = dict(datasets)
        self._sources = dict(sources)
        self._gate = gate
        self._clock = clock
        self._started_at = clock()
        self._draining = threading.Event()

    @property
    def identity_uri(self) -> str:
        """The node's own identity."""
        return self._identity.uri

    def policy_digest(self) -> str:
        """Return the SHA-256 digest of the policy in force."""
        return self._gate.policy.current.digest

    def drain(self) -> None:
        """Refuse new queries from now on (shutdown has begun)."""
        self._draining.set()

    def _requester(self, context: grpc.ServicerContext) -> policies.Requester:
        identity = pki.peer_identity(context.auth_context())
        if identity is None:
            # Only reachable on an --insecure server: TLS requires a certificate.
            return INSECURE_REQUESTER
        if identity.federation != self._identity.federation:
            raise Unauthenticated(
                f"certificate of federation {identity.federation!r}; this node belongs "
                f"to {self._identity.federation!r}"
            )
        return policies.Requester(
            uri=identity.uri, agency=identity.agency, role=identity.role
        )

    def GetNodeInfo(
        self, request: pb.GetNodeInfoRequest, context: grpc.ServicerContext
    ) -> pb.GetNodeInfoResponse:
        """Return the node's identity and published metadata."""
        with rpc_errors(context):
            requester = self._requester(context)
            self._gate.note(
                Ticket(
                    method="GetNodeInfo",
                    operation="consultation",
                    requester=requester,
                    query_id="",
                    request_hash=request_hash(
                        request.SerializeToString(deterministic=True)
                    ),
                )
            )
            ident = self._identity
            return pb.GetNodeInfoResponse(
                agency=ident.agency,
                federation=ident.federation,
                node_name=ident.name,
                identity=ident.uri,
                version=self._version,
                policy_digest=self.policy_digest(),
                datasets=[
                    dataset_to_proto(ident.agency, d) for d in self._datasets.values()
                ],
                caller_identity=requester.uri,
                started_at=timestamp(self._started_at),
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def GetBudget(
        self, request: pb.GetBudgetRequest, context: grpc.ServicerContext
    ) -> pb.GetBudgetResponse:
        """Return the budgets of the caller (or, for own officers, of any requester)."""
        with rpc_errors(context):
            caller = self._requester(context)
            subject = caller
            if request.requester and request.requester != caller.uri:
                if caller.role != "officer" or caller.agency != self._identity.agency:
                    raise NodeError.permission(
                        "only this agency's compliance officers may see another "
                        "requester's budgets"
                    )
                try:
                    other = pki.Identity.parse(request.requester)
                except pki.PkiError:
                    raise InvalidQuery(
                        "requester", "expected a spiffe:// identity URI"
                    ) from None
                subject = policies.Requester(other.uri, other.agency, other.role)
            self._gate.note(
                Ticket(
                    method="GetBudget",
                    operation="consultation",
                    requester=caller,
                    query_id="",
                    request_hash=request_hash(
                        request.SerializeToString(deterministic=True)
                    ),
                    purpose=request.purpose,
                )
            )
            loaded = self._gate.policy.current
            purposes = (
                [request.purpose]
                if request.purpose
                else policies.permitted_purposes(loaded.policy, subject)
            )
            charges = policies.standing_charges(
                loaded.policy, subject, purposes, self._clock()
            )
            delta = loaded.policy.policy.delta
            response = pb.GetBudgetResponse(
                requester=subject.uri, policy_digest=loaded.digest
            )
            for balance in self._gate.budgets.balances(charges):
                c = balance.charge
                budget = response.budgets.add(
                    budget_id=c.budget_id,
                    requester=subject.uri,
                    purpose=c.account.partition("|")[2],
                    scope=_scope(c),
                    rho_limit=c.limit_rho,
                    rho_spent=balance.spent_rho,
                    rho_remaining=balance.remaining_rho,
                    epsilon_remaining=policies.epsilon_at(balance.remaining_rho, delta),
                    delta=delta,
                    alert_threshold=c.alert_threshold,
                )
                if c.period_start is not None:
                    budget.period_start.CopyFrom(timestamp(c.period_start))
                if c.period_end is not None:
                    budget.period_end.CopyFrom(timestamp(c.period_end))
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def RunQuery(
        self, request: pb.RunQueryRequest, context: grpc.ServicerContext
    ) -> pb.RunQueryResponse:
        """Validate, decide under the policy, then compute the aggregates."""
        with rpc_errors(context):
            if self._draining.is_set():
                raise ShuttingDown("the node is shutting down; retry at another time")
            requester = self._requester(context)
            ticket = Ticket(
                method="RunQuery",
                operation="disclosure",
                requester=requester,
                query_id=request.query_id[:128],
                request_hash=request_hash(
                    request.SerializeToString(deterministic=True)
                ),
                dataset=request.dataset_id[:128],
                purpose=request.access.purpose[:256],
                legal_basis=request.access.legal_basis[:256],
                justification=request.access.justification[:1024],
                on_behalf_of=request.access.on_behalf_of[:256],
            )
            try:
                query = query_from_proto(request)
                dataset = check_query(query, self._datasets)
                privacy = privacy_from_proto(request.privacy)
            except InvalidQuery as exc:
                self._gate.refuse(ticket, f"invalid request: {exc.field}")
                raise
            ticket = Ticket(
                **{**ticket.__dict__, "columns": tuple(sorted(query.columns()))}
            )
            admission = self._gate.admit(
                ticket, self._access(requester, query, privacy)
            )
            groups = self._compute(admission, query, dataset)
            response = pb.RunQueryResponse(
                query_id=query.query_id,
                agency=self._identity.agency,
                policy_digest=admission.decision.policy_digest,
                computed_at=timestamp(self._clock()),
                group_by=list(query.group_by),
                groups=groups_to_proto(groups),
                matched_rules=list(admission.decision.matched_rules),
                decision_seq=admission.record.seq,
            )
            response.privacy.rho_charged = admission.decision.rho
            remaining = admission.remaining_rho
            if remaining is not None:
                delta = self._gate.policy.current.policy.policy.delta
                response.privacy.rho_remaining = remaining
                response.privacy.epsilon_remaining = policies.epsilon_at(
                    remaining, delta
                )
                response.privacy.delta = delta
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _access(
        requester: policies.Requester,
        query: Query,
        privacy: policies.PrivacyLoss | None,
    ) -> policies.AccessRequest:
        return policies.AccessRequest(
            requester=requester,
            dataset=query.dataset,
            actions=query.actions(),
            columns=query.columns(),
            group_by=query.group_by,
            purpose=query.access.purpose,
            legal_basis=query.access.legal_basis,
            justification=query.access.justification,
            on_behalf_of=query.access.on_behalf_of,
            value_columns=frozenset(
                a.column
                for a in query.aggregations
                if a.column and a.function in ("sum", "mean")
            ),
            privacy=privacy,
        )

    def _compute(
        self, admission: Admission, query: Query, dataset: DatasetSpec
    ) -> list[GroupRow]:
        source = self._sources[dataset.id]
        try:
            rows = source.run(build_select(query, dataset, source.table()))
        except Exception as exc:
            _log.error(
                "data source failed",
                extra={
                    "fields": {
                        "query_id": query.query_id,
                        "dataset": dataset.id,
                        "error": type(exc).__name__,
                    }
                },
            )
            self._gate.failed(admission, f"data source failed: {type(exc).__name__}")
            raise SourceUnavailable(
                f"dataset {dataset.id!r} is temporarily unavailable at this node"
            ) from None
        return assemble(query, dataset, rows)


def _scope(charge: policies.BudgetCharge) -> str:
    """``lifetime`` or the period as an ISO 8601 duration (``P30D``)."""
    if charge.period_start is None or charge.period_end is None:
        return "lifetime"
    return f"P{(charge.period_end - charge.period_start).days}D"
