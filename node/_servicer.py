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
from node._errors import PolicyDenied, ShuttingDown, SourceUnavailable, rpc_errors
from node._query import Query, check_query
from node._result import GroupRow
from node._serde import dataset_to_proto, groups_to_proto, query_from_proto, timestamp
from node._sources import DataSource
from node._sql import assemble, build_select

Clock = Callable[[], datetime]

_log = logging.getLogger("accord.node")

INSECURE_REQUESTER = policies.Requester(uri="insecure:anonymous", agency="", role="")


class PolicyHolder:
    """The policy in force; swapped atomically when the node reloads it."""

    def __init__(self, loaded: policies.LoadedPolicy) -> None:
        self._loaded = loaded
        self._lock = threading.Lock()

    @property
    def current(self) -> policies.LoadedPolicy:
        """The policy in force now."""
        with self._lock:
            return self._loaded

    def replace(self, loaded: policies.LoadedPolicy) -> None:
        """Put ``loaded`` in force for every later request."""
        with self._lock:
            self._loaded = loaded


class NodeServicer(pb_grpc.NodeServiceServicer):
    """Answers ``NodeService`` calls for one agency node."""

    def __init__(
        self,
        *,
        identity: pki.Identity,
        version: str,
        datasets: Mapping[str, DatasetSpec],
        sources: Mapping[str, DataSource],
        policy: PolicyHolder,
        clock: Clock,
    ) -> None:
        self._identity = identity
        self._version = version
        self._datasets = dict(datasets)
        self._sources = dict(sources)
        self._policy = policy
        self._clock = clock
        self._started_at = clock()
        self._draining = threading.Event()

    @property
    def identity_uri(self) -> str:
        """The node's own identity."""
        return self._identity.uri

    def policy_digest(self) -> str:
        """Return the SHA-256 digest of the policy in force."""
        return self._policy.current.digest

    def drain(self) -> None:
        """Refuse new queries from now on (shutdown has begun)."""
        self._draining.set()

    def _requester(self, context: grpc.ServicerContext) -> policies.Requester:
        identity = pki.peer_identity(context.auth_context())
        if identity is None:
            # Only reachable on an --insecure server: TLS requires a certificate.
            return INSECURE_REQUESTER
        return policies.Requester(
            uri=identity.uri, agency=identity.agency, role=identity.role
        )

    def GetNodeInfo(
        self, request: pb.GetNodeInfoRequest, context: grpc.ServicerContext
    ) -> pb.GetNodeInfoResponse:
        """Return the node's identity and published metadata."""
        with rpc_errors(context):
            requester = self._requester(context)
            ident = self._identity
            return pb.GetNodeInfoResponse(
                agency=ident.agency,
                federation=ident.federation,
                node_name=ident.name,
                identity=ident.uri,
                version=self._version,
                policy_digest=self._policy.current.digest,
                datasets=[
                    dataset_to_proto(ident.agency, d) for d in self._datasets.values()
                ],
                caller_identity=requester.uri,
                started_at=timestamp(self._started_at),
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def RunQuery(
        self, request: pb.RunQueryRequest, context: grpc.ServicerContext
    ) -> pb.RunQueryResponse:
        """Validate, decide under the policy, then compute the aggregates."""
        with rpc_errors(context):
            if self._draining.is_set():
                raise ShuttingDown("the node is shutting down; retry at another time")
            requester = self._requester(context)
            query = query_from_proto(request)
            dataset = check_query(query, self._datasets)
            loaded = self._policy.current
            decision = self.decide(requester, query, loaded)
            groups = self._compute(query, dataset)
            return pb.RunQueryResponse(
                query_id=query.query_id,
                agency=self._identity.agency,
                policy_digest=loaded.digest,
                computed_at=timestamp(self._clock()),
                group_by=list(query.group_by),
                groups=groups_to_proto(groups),
                matched_rules=list(decision.matched_rules),
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def GetBudget(
        self, request: pb.GetBudgetRequest, context: grpc.ServicerContext
    ) -> pb.GetBudgetResponse:
        """Return the caller's budgets (the policy declares them)."""
        with rpc_errors(context):
            requester = self._requester(context)
            return pb.GetBudgetResponse(
                requester=requester.uri, policy_digest=self._policy.current.digest
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def decide(
        self, requester: policies.Requester, query: Query, loaded: policies.LoadedPolicy
    ) -> policies.Decision:
        """Decide the request: the one decision point before any data is touched."""
        access = policies.AccessRequest(
            requester=requester,
            dataset=query.dataset,
            actions=query.actions(),
            columns=query.columns(),
            group_by=query.group_by,
            purpose=query.access.purpose,
            legal_basis=query.access.legal_basis,
            justification=query.access.justification,
            on_behalf_of=query.access.on_behalf_of,
        )
        decision = policies.evaluate(
            loaded.policy, access, digest=loaded.digest, now=self._clock()
        )
        _log.info(
            "query %s",
            "allowed" if decision.allowed else "denied",
            extra={
                "fields": {
                    "query_id": query.query_id,
                    "requester": requester.uri,
                    "dataset": query.dataset,
                    "purpose": query.access.purpose,
                    "decision": "allow" if decision.allowed else "deny",
                    "rules": ",".join(decision.matched_rules),
                    "policy_digest": decision.policy_digest[:16],
                }
            },
        )
        if not decision.allowed:
            raise PolicyDenied(
                f"denied by the policy of {self._identity.agency}: {decision.reason}",
                metadata={
                    "policy": decision.policy_uid,
                    "rule": ",".join(decision.matched_rules) or "default-deny",
                    "revision": decision.policy_digest,
                },
            )
        return decision

    def _compute(self, query: Query, dataset: DatasetSpec) -> list[GroupRow]:
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
            raise SourceUnavailable(
                f"dataset {dataset.id!r} is temporarily unavailable at this node"
            ) from None
        return assemble(query, dataset, rows)
