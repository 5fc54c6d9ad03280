"""``NodeService``: validate, decide, then compute -- in that order, every time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime

import grpc
import numpy as np

import pki
import policies
import secagg
from accord.v1 import node_service_pb2 as pb
from accord.v1 import node_service_pb2_grpc as pb_grpc
from accord.v1 import secure_aggregation_pb2 as pb_secagg
from node import privacy as privacy_mod
from node._config import DatasetSpec
from node._errors import (
    InvalidQuery,
    NodeError,
    PolicyDenied,
    ShuttingDown,
    SourceUnavailable,
    rpc_errors,
)
from node._gate import (
    INSECURE_REQUESTER,
    Admission,
    Gate,
    PolicyHolder,
    Ticket,
    request_hash,
    requester_of,
)
from node._query import Query, check_query
from node._secure_sessions import (
    SecureSessions,
    SessionRequest,
    opening_to_proto,
    request_from_proto,
)
from node._serde import (
    dataset_to_proto,
    privacy_from_proto,
    query_from_proto,
    timestamp,
    value_to_proto,
)
from node._sources import DataSource
from node._statistics import (
    Layout,
    Released,
    StatementCache,
    encodings,
    exact_vectors,
    layout,
    plan_statistics,
    release_statistics,
    requested,
)
from policies.ledger import Balance

Clock = Callable[[], datetime]

_log = logging.getLogger("accord.node")


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
        sessions: SecureSessions | None = None,
    ) -> None:
        self._sessions = sessions if sessions is not None else SecureSessions()
        self._identity = identity
        self._version = version
        self._datasets = dict(datasets)
        self._sources = dict(sources)
        self._gate = gate
        self._clock = clock
        self._started_at = clock()
        self._draining = threading.Event()
        self._statements = StatementCache()

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
        return requester_of(context, self._identity)

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
            for balance in self._gate.balances(charges):
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
                secure = (
                    request_from_proto(request.secure_aggregation)
                    if request.HasField("secure_aggregation")
                    else None
                )
            except InvalidQuery as exc:
                self._gate.refuse(ticket, f"invalid request: {exc.field}")
                raise
            ticket = Ticket(
                **{**ticket.__dict__, "columns": tuple(sorted(query.columns()))}
            )
            access = self._access(requester, query, privacy, secure)
            groups = layout(query, dataset)
            planned: list[privacy_mod.ReleasePlan] = []

            def check(decision: policies.Decision) -> None:
                obligations = decision.obligations
                assert obligations is not None
                if secure is None and obligations.secure_aggregation_required:
                    raise PolicyDenied(
                        f"rule {','.join(decision.matched_rules)} requires secure "
                        "aggregation",
                        metadata=_rule_metadata(decision),
                    )
                if secure is not None:
                    secure.check(max(2, obligations.min_participants or 2))
                planned.append(
                    self._plan(
                        query,
                        dataset,
                        groups,
                        decision,
                        privacy,
                        secure=secure is not None,
                    )
                )

            if query.dry_run:
                decision, balances = self._gate.assess(ticket, access, check)
                return self._dry_run_response(
                    query, groups, decision, balances, planned
                )
            admission = self._gate.admit(ticket, access, check)
            plan = planned[0]
            obligations = admission.decision.obligations
            assert obligations is not None
            released = self._compute(
                admission, query, dataset, groups, plan, suppress=secure is None
            )
            opening = None
            if secure is not None:
                try:
                    opening = self._open_session(
                        requester, secure, released, obligations
                    )
                except (secagg.SecAggError, ValueError, NodeError) as exc:
                    self._gate.failed(
                        admission,
                        f"secure aggregation could not start: {type(exc).__name__}",
                    )
                    if isinstance(exc, NodeError):
                        raise
                    raise SourceUnavailable(
                        "this node's statistics do not fit the secure-aggregation "
                        "encoding; nothing was released and no budget was spent"
                    ) from None
            response = pb.RunQueryResponse(
                query_id=query.query_id,
                agency=self._identity.agency,
                policy_digest=admission.decision.policy_digest,
                computed_at=timestamp(self._clock()),
                group_by=list(groups.columns),
                groups=[
                    pb.GroupResult(key=[value_to_proto(k) for k in key])
                    for key in groups.keys
                ],
                matched_rules=list(admission.decision.matched_rules),
                decision_seq=admission.record.seq,
                statistics=released.statistics,
                suppressed=released.suppressed,
                min_group_size=obligations.min_group_size or 0,
            )
            if opening is not None:
                response.secure_aggregation.CopyFrom(opening)
            response.privacy.rho_charged = admission.decision.rho
            remaining = admission.remaining_rho
            if remaining is not None:
                response.privacy.rho_remaining = remaining
                response.privacy.epsilon_remaining = policies.epsilon_at(
                    remaining, obligations.delta
                )
                response.privacy.delta = obligations.delta
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _open_session(
        self,
        requester: policies.Requester,
        secure: SessionRequest,
        released: Released,
        obligations: policies.Obligations,
    ) -> pb_secagg.SecureAggregationOpening:
        """Mask the released vectors for secure aggregation; keep no values in clear.

        The statistics' values are moved into one integer vector (statistics in
        order, group-major), encoded mod 2^64 and masked by the session; the
        response keeps only their names, units and noise.
        """
        flat: list[int] = []
        for stat in released.statistics:
            flat.extend(stat.values)
            del stat.values[:]
        vector = secagg.encode_ints(
            np.asarray(flat, dtype=np.int64),
            value_bits=secagg.max_value_bits(secure.participants),
            participants=secure.participants,
        )
        opening = self._sessions.open(
            requester.uri,
            secure,
            vector,
            policy_min_participants=max(2, obligations.min_participants or 2),
        )
        return opening_to_proto(opening)

    def _plan(
        self,
        query: Query,
        dataset: DatasetSpec,
        groups: Layout,
        decision: policies.Decision,
        loss: policies.PrivacyLoss | None,
        *,
        secure: bool = False,
    ) -> privacy_mod.ReleasePlan:
        """Plan the release under the decision's obligations (no data touched)."""
        obligations = decision.obligations
        assert obligations is not None
        if query.exact and not obligations.exact_allowed:
            raise PolicyDenied(
                f"rule {','.join(decision.matched_rules)} does not permit exact answers",
                metadata=_rule_metadata(decision),
            )
        bounds = {col: (lo, hi) for col, lo, hi in obligations.clamp_bounds}
        try:
            columns = encodings(query, dataset, bounds, secure=secure)
            return privacy_mod.cached_plan_release(
                tuple(requested(query)),
                groups=len(groups.keys),
                max_rows_per_person=obligations.max_rows_per_person,
                columns=tuple(sorted(columns.items())),
                rho=None
                if loss is not None and loss.epsilon is not None
                else decision.rho,
                epsilon=loss.epsilon if loss is not None else None,
                min_group_size=obligations.min_group_size,
            )
        except (ValueError, TypeError) as exc:
            raise InvalidQuery("aggregations", f"cannot be released: {exc}") from None

    def _dry_run_response(
        self,
        query: Query,
        groups: Layout,
        decision: policies.Decision,
        balances: tuple[Balance, ...],
        planned: list[privacy_mod.ReleasePlan],
    ) -> pb.RunQueryResponse:
        response = pb.RunQueryResponse(
            query_id=query.query_id,
            agency=self._identity.agency,
            policy_digest=decision.policy_digest,
            computed_at=timestamp(self._clock()),
            group_by=list(groups.columns),
            groups=[
                pb.GroupResult(key=[value_to_proto(k) for k in key])
                for key in groups.keys
            ],
            matched_rules=list(decision.matched_rules),
        )
        plan = response.plan
        plan.allowed = decision.allowed
        plan.reason = decision.reason
        if decision.allowed and planned:
            release = planned[0]
            plan.rho = decision.rho
            plan.statistics.extend(
                plan_statistics(release, len(groups.keys), exact=query.exact)
            )
            plan.at_risk_below = release.at_risk_below or 0
            plan.min_group_size = release.min_group_size or 0
            remaining = min((b.remaining_rho for b in balances), default=None)
            if remaining is not None:
                plan.rho_remaining = remaining
        return response

    @staticmethod
    def _access(
        requester: policies.Requester,
        query: Query,
        privacy: policies.PrivacyLoss | None,
        secure: SessionRequest | None = None,
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
            value_columns=query.value_columns(),
            privacy=privacy,
            secure_aggregation=secure is not None,
            participants=secure.participants if secure is not None else None,
        )

    def _compute(
        self,
        admission: Admission,
        query: Query,
        dataset: DatasetSpec,
        groups: Layout,
        plan: privacy_mod.ReleasePlan,
        *,
        suppress: bool = True,
    ) -> Released:
        source = self._sources[dataset.id]
        obligations = admission.decision.obligations
        assert obligations is not None
        try:
            rows = source.run(
                self._statements.select(query, dataset, source.table(), plan)
            )
            exact = exact_vectors(query, dataset, groups, plan, rows)
            return release_statistics(
                plan,
                exact,
                len(groups.keys),
                noise=not (query.exact and obligations.exact_allowed),
                min_group_size=obligations.min_group_size if suppress else None,
            )
        except Exception as exc:
            _log.error(
                "query failed at the source",
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


def _scope(charge: policies.BudgetCharge) -> str:
    """Return ``lifetime`` or the period as an ISO 8601 duration (``P30D``)."""
    if charge.period_start is None or charge.period_end is None:
        return "lifetime"
    return f"P{(charge.period_end - charge.period_start).days}D"


def _rule_metadata(decision: policies.Decision) -> dict[str, str]:
    """Return the declared rule behind a refusal, for the caller's ErrorInfo."""
    return {
        "policy": decision.policy_uid,
        "rule": ",".join(decision.matched_rules) or "default-deny",
        "revision": decision.policy_digest,
    }
