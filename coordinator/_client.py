"""The coordinator SDK: fan a query out to the federation and combine the answers."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType

import pki
import secagg
from accord.v1 import node_service_pb2 as pb
from coordinator._combine import FederatedResult, combine
from coordinator._errors import NoNodeAnswered, SchemaMismatch, TlsSetupError
from coordinator._fanout import fan_out
from coordinator._federation import FederationConfig
from coordinator._link import GrpcNodeLink, NodeAddress, NodeLink
from coordinator._outcome import NodeOutcome
from coordinator._schema import find_dataset, typed_spec
from coordinator._secure_link import GrpcSecureAggregationLink
from coordinator._secure_sum import (
    SecureSumFailed,
    SecureSumSession,
    TooFewSecureParticipants,
    secure_sum,
)
from coordinator._serde import spec_to_proto
from coordinator._spec import QuerySpec


def load_tls(
    config: FederationConfig, *, now: datetime | None = None
) -> pki.TlsMaterial:
    """Read and check the coordinator's own TLS material before dialing anyone.

    Raises
    ------
    TlsSetupError
        Saying which file is wrong: missing, expired, or not from the federation CA.
    """
    section = config.coordinator
    if section.ca is None or section.cert is None or section.key is None:
        raise TlsSetupError(
            "federation file has no [coordinator] ca, cert and key; add them, or pass "
            "--insecure to talk to plaintext nodes"
        )
    moment = now or datetime.now(UTC)
    try:
        material = pki.TlsFiles(
            ca=section.ca, cert=section.cert, key=section.key
        ).read()
        cert = pki.load_certificate(section.cert)
        ca = pki.load_certificate(section.ca)
        pki.check_certificate(cert, ca, now=moment, purpose="client")
        identity = pki.identity_of(cert)
    except pki.PkiError as exc:
        raise TlsSetupError(f"our certificate cannot be used: {exc}") from None
    if identity.federation != config.federation.name:
        raise TlsSetupError(
            f"{section.cert} belongs to federation {identity.federation!r}, but the "
            f"federation file is for {config.federation.name!r}"
        )
    return material


class Coordinator:
    """Runs federated queries over a set of node links.

    Parameters
    ----------
    links : Sequence[NodeLink]
        One link per node.
    deadline : float
        Seconds each node has to answer each call.
    """

    #: How long a node's published schema is reused before it is asked again.
    SCHEMA_TTL = 60.0

    def __init__(
        self,
        links: Sequence[NodeLink],
        *,
        deadline: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.links = list(links)
        self.deadline = deadline
        self._clock = clock
        self._infos: dict[int, tuple[float, NodeOutcome[pb.GetNodeInfoResponse]]] = {}

    @classmethod
    def from_config(
        cls,
        config: FederationConfig,
        *,
        insecure: bool = False,
        deadline: float | None = None,
    ) -> Coordinator:
        """Connect to the nodes of a federation file (mutual TLS unless ``insecure``)."""
        material = None if insecure else load_tls(config)
        links: list[NodeLink] = [
            GrpcNodeLink(
                NodeAddress(
                    n.agency, n.name, n.address, n.server_name, config.federation.name
                ),
                material,
            )
            for n in config.nodes
        ]
        return cls(links, deadline=deadline or config.coordinator.deadline_seconds)

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every link."""
        for link in self.links:
            link.close()

    def node_info(self) -> list[NodeOutcome[pb.GetNodeInfoResponse]]:
        """``GetNodeInfo`` from every node, concurrently."""
        return fan_out(
            self.links, lambda link, t: link.get_info(t), deadline=self.deadline
        )

    def _schemas(self) -> list[NodeOutcome[pb.GetNodeInfoResponse]]:
        """Node infos for planning a query: answers are reused for ``SCHEMA_TTL``.

        Nodes that did not answer are asked again every time.
        """
        now = self._clock()
        stale = [
            link
            for link in self.links
            if id(link) not in self._infos
            or now - self._infos[id(link)][0] > self.SCHEMA_TTL
        ]
        fresh = fan_out(stale, lambda link, t: link.get_info(t), deadline=self.deadline)
        answered = {
            id(link): outcome for link, outcome in zip(stale, fresh, strict=True)
        }
        for key, outcome in answered.items():
            if outcome.ok:
                self._infos[key] = (now, outcome)
            else:
                self._infos.pop(key, None)
        return [
            answered[id(link)] if id(link) in answered else self._infos[id(link)][1]
            for link in self.links
        ]

    def budgets(
        self, *, requester: str = "", purpose: str = ""
    ) -> list[NodeOutcome[pb.GetBudgetResponse]]:
        """Our remaining privacy budgets at every node (officers: ``requester``'s)."""
        request = pb.GetBudgetRequest(requester=requester, purpose=purpose)
        return fan_out(
            self.links,
            lambda link, t: link.get_budget(request, t),
            deadline=self.deadline,
        )

    def query(self, spec: QuerySpec) -> FederatedResult:
        """Check ``spec`` against the published schema, run it everywhere, combine.

        Nodes that do not answer, refuse or fail are reported in the result's
        ``outcomes`` and left out of the totals; ``contributors`` names the others.

        Raises
        ------
        SchemaMismatch
            If no reachable node publishes the dataset, or the spec does not fit it.
        NoNodeAnswered
            If no node could be reached at all.
        """
        infos = self._schemas()
        reachable = [o for o in infos if o.ok and o.response is not None]
        if not reachable:
            raise NoNodeAnswered(
                "no node answered: "
                + "; ".join(f"{o.agency}/{o.node}: {o.message}" for o in infos)
            )
        schema = find_dataset(
            [o.response for o in reachable if o.response], spec.dataset
        )
        if schema is None:
            raise SchemaMismatch(
                "dataset", f"no reachable node publishes a dataset {spec.dataset!r}"
            )
        typed = typed_spec(spec, schema)
        request = spec_to_proto(typed)
        live = [link for link, o in zip(self.links, infos, strict=True) if o.ok]
        session: SecureSumSession | None = None
        requests = {id(link): request for link in live}
        if typed.secure_aggregation and live and not typed.dry_run:
            session = SecureSumSession.new(
                len(live), min_participants=max(2, typed.min_participants)
            )
            for pid, link in enumerate(live, start=1):
                personal = pb.RunQueryRequest()
                personal.CopyFrom(request)
                personal.secure_aggregation.CopyFrom(session.request(pid))
                requests[id(link)] = personal
        answers = iter(
            fan_out(
                live,
                lambda link, t: link.run_query(requests[id(link)], t),
                deadline=self.deadline,
            )
        )
        outcomes: list[NodeOutcome[pb.RunQueryResponse]] = []
        for info in infos:
            if info.ok:
                outcomes.append(next(answers))
            else:
                outcomes.append(
                    NodeOutcome(
                        info.agency,
                        info.node,
                        info.address,
                        info.status,
                        code=info.code,
                        reason=info.reason,
                        message=info.message,
                        metadata=info.metadata,
                        seconds=info.seconds,
                    )
                )
        if session is None:
            return combine(typed, outcomes)
        return self._secure_combine(typed, outcomes, live, session)

    def _secure_combine(
        self,
        spec: QuerySpec,
        outcomes: list[NodeOutcome[pb.RunQueryResponse]],
        live: list[NodeLink],
        session: SecureSumSession,
    ) -> FederatedResult:
        """Unmask the sum of the nodes' masked statistics; nothing else is learned."""
        by_label = {(o.agency, o.node): o for o in outcomes}
        links = []
        openings: dict[int, bytes] = {}
        lengths = set()
        layout: pb.RunQueryResponse | None = None
        for pid, link in enumerate(live, start=1):
            outcome = by_label[(link.node.agency, link.node.name)]
            if not outcome.ok or outcome.response is None:
                continue
            if not isinstance(
                link, GrpcNodeLink
            ):  # pragma: no cover - other transports
                continue
            response = outcome.response
            openings[pid] = response.secure_aggregation.advertise_keys
            lengths.add(response.secure_aggregation.vector_length)
            links.append(GrpcSecureAggregationLink.over(link, pid))
            layout = layout or response
        if layout is None or len(lengths) != 1:
            raise SecureSumFailed(
                "no node opened the session, or they released different statistics; "
                "no secure total can be formed",
                stage="opening",
                failures={},
            )
        if len(openings) < max(session.threshold, session.min_participants):
            raise TooFewSecureParticipants(
                "opening",
                len(openings),
                max(session.threshold, session.min_participants),
                {},
            )
        result = secure_sum(
            links,
            openings,
            session_id=session.session_id,
            vector_length=lengths.pop(),
            threshold=session.threshold,
            min_participants=session.min_participants,
            deadline=self.deadline,
        )
        total = secagg.decode_ints(
            result.total,
            value_bits=secagg.max_value_bits(session.participants),
            participants=session.participants,
        )
        groups = len(layout.groups)
        totals: dict[str, list[int]] = {}
        offset = 0
        for stat in layout.statistics:
            size = (stat.cells_per_group or 1) * groups
            totals[stat.name] = [int(x) for x in total[offset : offset + size]]
            offset += size
        contributors = set(result.contributors)
        final: list[NodeOutcome[pb.RunQueryResponse]] = []
        pids = {
            (link.node.agency, link.node.name): pid for pid, link in enumerate(live, 1)
        }
        for outcome in outcomes:
            pid = pids.get((outcome.agency, outcome.node), 0)
            if outcome.ok and pid not in contributors:
                why = result.failures.get(pid, "dropped out")
                final.append(
                    dataclasses.replace(
                        outcome,
                        status="failed",
                        response=None,
                        message=f"secure aggregation: {why}",
                    )
                )
            else:
                final.append(outcome)
        minimum = max(
            (o.response.min_group_size for o in final if o.ok and o.response), default=0
        )
        return combine(spec, final, secure_totals=totals, min_group_size=minimum)
