"""Secure aggregation over Accord's gRPC: node sessions, the Step service, secure_sum.

Real servers with mutual TLS on 127.0.0.1:0, each mounting only the
SecureAggregationService; sessions are opened in-process, as RunQuery will.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest
from numpy.typing import NDArray

import pki
import secagg
from accord.v1 import secure_aggregation_pb2 as pb
from accord.v1 import secure_aggregation_pb2_grpc as pb_grpc
from coordinator._link import GrpcNodeLink, NodeAddress
from coordinator._secure_link import (
    GrpcSecureAggregationLink,
    SecureAggregationLink,
    SecureRound,
)
from coordinator._secure_sum import (
    SecureSumFailed,
    SecureSumResult,
    SecureSumSession,
    TooFewSecureParticipants,
    secure_sum,
)
from demo import provision
from node._errors import InvalidQuery
from node._secure_sessions import (
    SecureAggregationServicer,
    SecureSessions,
    SessionAlreadyOpen,
    SessionOpening,
    SessionRequest,
    TooManySessions,
    add_secure_aggregation_service,
    opening_to_proto,
    request_from_proto,
)
from node._secure_sessions import SecureRound as NodeRound

VALUE_BITS = 40
LENGTH = 48
DEADLINE = 5.0


# Fixtures ---------------------------------------------------------------------


@dataclass(frozen=True)
class Kits:
    federation: str
    nodes: dict[str, pki.TlsMaterial]
    coordinator: pki.TlsMaterial
    intruder: pki.TlsMaterial

    @property
    def owner(self) -> str:
        return pki.identity_from_pem(self.coordinator.cert).uri


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> Kits:
    root = tmp_path_factory.mktemp("secure-transport")
    fed = provision(root, rows={"agency-a": 5, "agency-b": 5, "agency-c": 5})
    nodes = {
        site.agency: pki.TlsFiles.from_kit(site.folder / "pki", "node").read()
        for site in fed.sites
    }
    for agency in ("agency-d", "agency-e"):
        kit = root / agency / "pki"
        pki.issue(fed.ca_dir, pki.Identity(fed.name, agency, "node", "node"), kit)
        nodes[agency] = pki.TlsFiles.from_kit(kit, "node").read()
    intruder = root / "intruder"
    pki.issue(fed.ca_dir, pki.Identity(fed.name, "hub", "coordinator", "eve"), intruder)
    return Kits(
        federation=fed.name,
        nodes=nodes,
        coordinator=fed.coordinator_tls.read(),
        intruder=pki.TlsFiles.from_kit(intruder, "eve").read(),
    )


class SlowServicer(SecureAggregationServicer):
    """Answers ``slow_round`` only after ``delay`` seconds."""

    def __init__(
        self, sessions: SecureSessions, slow_round: SecureRound, delay: float
    ) -> None:
        super().__init__(sessions)
        self._slow = slow_round
        self._delay = delay

    def Step(
        self, request: pb.StepRequest, context: grpc.ServicerContext
    ) -> pb.StepResponse:
        if request.round == self._slow.value:
            time.sleep(self._delay)
        return super().Step(request, context)


@dataclass
class Node:
    agency: str
    sessions: SecureSessions
    server: grpc.Server
    address: str
    stopped: bool = False

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.server.stop(0).wait()


@dataclass
class Federation:
    kits: Kits
    nodes: list[Node] = field(default_factory=list)

    def start(
        self,
        agency: str,
        *,
        sessions: SecureSessions | None = None,
        servicer: Callable[[SecureSessions], SecureAggregationServicer] | None = None,
        insecure_owner: str | None = None,
        secure: bool = True,
    ) -> Node:
        registry = SecureSessions() if sessions is None else sessions
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        if servicer is not None:
            mounted = servicer(registry)
        else:
            mounted = SecureAggregationServicer(
                registry, anonymous_owner=insecure_owner
            )
        add_secure_aggregation_service(server, mounted)
        if secure:
            credentials = pki.server_credentials(self.kits.nodes[agency])
            port = server.add_secure_port("127.0.0.1:0", credentials)
        else:
            port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        node = Node(agency, registry, server, f"127.0.0.1:{port}")
        self.nodes.append(node)
        return node

    def address_of(self, node: Node) -> NodeAddress:
        return NodeAddress(
            node.agency, "node", node.address, federation=self.kits.federation
        )

    def link(
        self, node: Node, participant_id: int, material: pki.TlsMaterial | None = None
    ) -> GrpcSecureAggregationLink:
        return GrpcSecureAggregationLink.connect(
            self.address_of(node), material or self.kits.coordinator, participant_id
        )


@pytest.fixture
def federation(kits: Kits) -> Iterator[Federation]:
    running = Federation(kits)
    try:
        yield running
    finally:
        for node in running.nodes:
            node.stop()


class Capture(SecureAggregationLink):
    """Records every payload the coordinator sends and receives; may act first."""

    def __init__(
        self,
        inner: SecureAggregationLink,
        before: Mapping[SecureRound, Callable[[], None]] | None = None,
    ) -> None:
        super().__init__(inner.participant_id, inner.label)
        self.inner = inner
        self.before = dict(before or {})
        self.sent: list[tuple[SecureRound, bytes]] = []
        self.received: list[tuple[SecureRound, bytes]] = []

    def step(
        self, session_id: str, round: SecureRound, payload: bytes, timeout: float
    ) -> bytes:
        if round in self.before:
            self.before[round]()
        self.sent.append((round, payload))
        reply = self.inner.step(session_id, round, payload, timeout)
        self.received.append((round, reply))
        return reply

    def close(self) -> None:
        self.inner.close()


def vectors_for(
    participants: int, seed: int, length: int = LENGTH
) -> dict[int, tuple[NDArray[np.int64], NDArray[np.uint64]]]:
    rng = np.random.default_rng(seed)
    out = {}
    for pid in range(1, participants + 1):
        raw = rng.integers(-(2**VALUE_BITS) + 1, 2**VALUE_BITS, size=length)
        encoded = secagg.encode_ints(raw, value_bits=VALUE_BITS, participants=8)
        out[pid] = (raw.astype(np.int64), encoded)
    return out


def open_sessions(
    nodes: Mapping[int, Node],
    session: SecureSumSession,
    vectors: Mapping[int, tuple[NDArray[np.int64], NDArray[np.uint64]]],
    owner: str,
) -> dict[int, bytes]:
    """What RunQuery will do: read the request proto, open, answer the opening proto."""
    openings = {}
    for pid, node in nodes.items():
        request = request_from_proto(session.request(pid))
        opening = node.sessions.open(owner, request, vectors[pid][1])
        answer = opening_to_proto(opening)
        assert answer.vector_length == LENGTH
        openings[pid] = answer.advertise_keys
    return openings


def decoded(result: SecureSumResult) -> NDArray[np.int64]:
    return secagg.decode_ints(result.total, value_bits=VALUE_BITS, participants=8)


def expected_sum(
    vectors: Mapping[int, tuple[NDArray[np.int64], NDArray[np.uint64]]],
    who: tuple[int, ...],
) -> NDArray[np.int64]:
    total: NDArray[np.int64] = np.sum([vectors[p][0] for p in who], axis=0)
    return total


def run(
    links: list[SecureAggregationLink],
    openings: Mapping[int, bytes],
    session: SecureSumSession,
    deadline: float = DEADLINE,
) -> SecureSumResult:
    try:
        return secure_sum(
            links,
            openings,
            session_id=session.session_id,
            vector_length=LENGTH,
            threshold=session.threshold,
            min_participants=session.min_participants,
            deadline=deadline,
        )
    finally:
        for link in links:
            link.close()


def code_of(error: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    code: grpc.StatusCode = error.value.code()
    return code


AGENCIES = ("agency-a", "agency-b", "agency-c", "agency-d", "agency-e")


def start_all(federation: Federation, count: int) -> dict[int, Node]:
    return {i + 1: federation.start(a) for i, a in enumerate(AGENCIES[:count])}


# The total --------------------------------------------------------------------


def test_five_nodes_sum_exactly_over_mtls(federation: Federation, kits: Kits) -> None:
    nodes = start_all(federation, 5)
    vectors = vectors_for(5, seed=1)
    session = SecureSumSession.new(5, min_participants=3)
    assert session.threshold == 3
    openings = open_sessions(nodes, session, vectors, kits.owner)
    # Two links share the channel of a GrpcNodeLink, three have their own.
    node_links = [
        GrpcNodeLink(federation.address_of(nodes[p]), kits.coordinator) for p in (1, 2)
    ]
    links: list[SecureAggregationLink] = [
        GrpcSecureAggregationLink.over(node_links[0], 1),
        GrpcSecureAggregationLink.over(node_links[1], 2),
        *(federation.link(nodes[p], p) for p in (3, 4, 5)),
    ]
    try:
        result = run(links, openings, session)
    finally:
        for node_link in node_links:
            node_link.close()
    assert result.contributors == (1, 2, 3, 4, 5)
    assert result.dropped == ()
    assert result.failures == {}
    np.testing.assert_array_equal(
        decoded(result), expected_sum(vectors, (1, 2, 3, 4, 5))
    )
    assert all(len(node.sessions) == 0 for node in nodes.values())


def test_the_coordinator_never_receives_a_raw_vector(
    federation: Federation, kits: Kits
) -> None:
    nodes = start_all(federation, 3)
    vectors = vectors_for(3, seed=2)
    session = SecureSumSession.new(3, min_participants=3)
    openings = open_sessions(nodes, session, vectors, kits.owner)
    captures = [Capture(federation.link(nodes[p], p)) for p in nodes]
    result = run(list(captures), openings, session)
    np.testing.assert_array_equal(decoded(result), expected_sum(vectors, (1, 2, 3)))

    received = list(openings.values()) + [
        reply for capture in captures for _, reply in capture.received
    ]
    assert [r for r, _ in captures[0].received] == list(SecureRound)
    for raw, encoded in vectors.values():
        for data in (encoded.astype("<u8").tobytes(), raw.astype("<i8").tobytes()):
            for start in range(0, len(data) - 16, 8):  # every two-word window
                window = data[start : start + 16]
                assert not any(window in message for message in received)
    # The masked input is there, and it is not the vector.
    for capture in captures:
        masked = secagg.MaskedInput.from_bytes(capture.received[1][1])
        assert not np.array_equal(masked.vector, vectors[capture.participant_id][1])


def test_a_node_silent_before_masking_is_excluded_exactly(
    federation: Federation, kits: Kits
) -> None:
    nodes = start_all(federation, 4)
    vectors = vectors_for(4, seed=3)
    session = SecureSumSession.new(4, min_participants=3)
    openings = open_sessions(nodes, session, vectors, kits.owner)
    links: list[SecureAggregationLink] = [
        Capture(
            federation.link(node, p),
            {SecureRound.MASKED_INPUT: node.stop} if p == 2 else None,
        )
        for p, node in nodes.items()
    ]
    result = run(links, openings, session)
    assert result.contributors == (1, 3, 4)
    assert result.dropped == (2,)
    assert result.failures[2].startswith("MASKED_INPUT: UNAVAILABLE")
    np.testing.assert_array_equal(decoded(result), expected_sum(vectors, (1, 3, 4)))


def test_a_node_vanishing_before_unmasking_is_still_in_the_total(
    federation: Federation, kits: Kits
) -> None:
    nodes = start_all(federation, 4)
    vectors = vectors_for(4, seed=4)
    session = SecureSumSession.new(4, min_participants=3)
    openings = open_sessions(nodes, session, vectors, kits.owner)
    links: list[SecureAggregationLink] = [
        Capture(
            federation.link(node, p),
            {SecureRound.UNMASKING: node.stop} if p == 3 else None,
        )
        for p, node in nodes.items()
    ]
    result = run(links, openings, session)
    # Its masked input arrived: the protocol includes it, the others unmask it.
    assert result.contributors == (1, 2, 3, 4)
    assert result.dropped == ()
    assert result.failures[3].startswith("UNMASKING: UNAVAILABLE")
    np.testing.assert_array_equal(decoded(result), expected_sum(vectors, (1, 2, 3, 4)))


def test_a_slow_node_is_dropped_at_its_deadline(
    federation: Federation, kits: Kits
) -> None:
    nodes = {
        1: federation.start("agency-a"),
        2: federation.start(
            "agency-b",
            servicer=lambda s: SlowServicer(s, SecureRound.MASKED_INPUT, 1.5),
        ),
        3: federation.start("agency-c"),
        4: federation.start("agency-d"),
    }
    vectors = vectors_for(4, seed=5)
    session = SecureSumSession.new(4, min_participants=3)
    openings = open_sessions(nodes, session, vectors, kits.owner)
    links: list[SecureAggregationLink] = [
        federation.link(node, p) for p, node in nodes.items()
    ]
    start = time.monotonic()
    result = run(links, openings, session, deadline=0.5)
    assert time.monotonic() - start < 1.4
    assert result.contributors == (1, 3, 4)
    assert result.failures[2].startswith("MASKED_INPUT: DEADLINE_EXCEEDED")
    np.testing.assert_array_equal(decoded(result), expected_sum(vectors, (1, 3, 4)))


def test_a_node_opened_with_another_length_drops_out(
    federation: Federation, kits: Kits
) -> None:
    nodes = start_all(federation, 4)
    vectors = vectors_for(4, seed=6)
    vectors[4] = vectors_for(4, seed=6, length=LENGTH + 1)[4]
    session = SecureSumSession.new(4, min_participants=3)
    openings = {}
    for pid, node in nodes.items():
        request = request_from_proto(session.request(pid))
        openings[pid] = node.sessions.open(kits.owner, request, vectors[pid][1])
    links: list[SecureAggregationLink] = [
        federation.link(node, p) for p, node in nodes.items()
    ]
    result = run(links, {p: o.advertise_keys for p, o in openings.items()}, session)
    assert result.dropped == (4,)
    assert "SHARE_KEYS: ABORTED" in result.failures[4]
    assert "vector length" in result.failures[4]
    assert len(nodes[4].sessions) == 0
    np.testing.assert_array_equal(decoded(result), expected_sum(vectors, (1, 2, 3)))


# Too few: no total ------------------------------------------------------------


def test_too_few_after_a_dropout_raise_and_nothing_is_unmasked(
    federation: Federation, kits: Kits
) -> None:
    nodes = start_all(federation, 3)
    vectors = vectors_for(3, seed=7)
    session = SecureSumSession.new(3, min_participants=3)
    openings = open_sessions(nodes, session, vectors, kits.owner)
    captures = [
        Capture(
            federation.link(node, p),
            {SecureRound.MASKED_INPUT: node.stop} if p == 1 else None,
        )
        for p, node in nodes.items()
    ]
    with pytest.raises(TooFewSecureParticipants) as info:
        run(list(captures), openings, session)
    assert (info.value.stage, info.value.have, info.value.need) == (
        "MASKED_INPUT",
        2,
        3,
    )
    assert "no total is released" in str(info.value)
    assert 1 in info.value.failures
    # Nobody was asked to reveal unmasking shares.
    assert all(r is not SecureRound.UNMASKING for c in captures for r, _ in c.sent)


def test_below_the_minimum_the_session_does_not_run(
    federation: Federation, kits: Kits
) -> None:
    with pytest.raises(TooFewSecureParticipants, match="at least 3 required"):
        SecureSumSession.new(2, min_participants=3)

    nodes = start_all(federation, 3)
    vectors = vectors_for(3, seed=8)
    session = SecureSumSession.new(3, min_participants=3)
    openings = open_sessions(
        {p: nodes[p] for p in (1, 2)}, session, vectors, kits.owner
    )
    captures = [Capture(federation.link(node, p)) for p, node in nodes.items()]
    with pytest.raises(TooFewSecureParticipants) as info:
        run(list(captures), openings, session)
    assert info.value.stage == "opening"
    assert info.value.failures == {3: "did not open the session"}
    assert all(not c.sent for c in captures)


def test_a_node_refusing_the_minimum_does_not_open() -> None:
    request = SessionRequest(
        "s" * 32, 1, participants=3, threshold=2, min_participants=2
    )
    vector = np.zeros(4, dtype=np.uint64)
    with pytest.raises(InvalidQuery) as info:
        SecureSessions().open("x", request, vector, policy_min_participants=5)
    assert info.value.field == "secure_aggregation.participants"
    assert "requires at least 5" in info.value.message


# Access, expiry and order -----------------------------------------------------


def step(
    address: str,
    material: pki.TlsMaterial | None,
    session_id: str,
    round: int,
    payload: bytes = b"",
    server_name: str | None = None,
) -> bytes:
    if material is None:
        channel = grpc.insecure_channel(address)
    else:
        options = (
            [("grpc.ssl_target_name_override", server_name)] if server_name else []
        )
        channel = grpc.secure_channel(
            address, pki.channel_credentials(material), options=options
        )
    try:
        response = pb_grpc.SecureAggregationServiceStub(channel).Step(
            pb.StepRequest(session_id=session_id, round=round, payload=payload),  # type: ignore[arg-type]
            timeout=5,
        )
        return response.payload
    finally:
        channel.close()


def test_another_requester_cannot_step_a_session(
    federation: Federation, kits: Kits
) -> None:
    nodes = start_all(federation, 3)
    vectors = vectors_for(3, seed=9)
    session = SecureSumSession.new(3, min_participants=2)
    openings = open_sessions(nodes, session, vectors, kits.owner)
    aggregator = secagg.Aggregator(
        session.session_id.encode(),
        nodes,
        threshold=2,
        min_participants=2,
        vector_length=LENGTH,
    )
    for pid, data in openings.items():
        aggregator.receive_advertise_keys(pid, data)
    roster = aggregator.key_roster()
    with pytest.raises(grpc.RpcError) as info:
        step(
            nodes[1].address,
            kits.intruder,
            session.session_id,
            pb.SECURE_AGGREGATION_ROUND_SHARE_KEYS,
            roster,
            server_name="localhost",
        )
    assert code_of(info) == grpc.StatusCode.PERMISSION_DENIED
    assert "belongs to another requester" in (info.value.details() or "")
    # The session is untouched: its owner completes it.
    links: list[SecureAggregationLink] = [
        federation.link(node, p) for p, node in nodes.items()
    ]
    result = run(links, openings, session)
    np.testing.assert_array_equal(decoded(result), expected_sum(vectors, (1, 2, 3)))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_expired_or_unknown_session_is_not_found(
    federation: Federation, kits: Kits
) -> None:
    clock = FakeClock()
    node = federation.start(
        "agency-a", sessions=SecureSessions(ttl=10, monotonic=clock)
    )
    request = SessionRequest(
        "e" * 20, 1, participants=3, threshold=2, min_participants=2
    )
    node.sessions.open(kits.owner, request, np.arange(LENGTH, dtype=np.uint64))
    assert len(node.sessions) == 1
    clock.now += 10.5
    for session_id in ("e" * 20, "never-opened-session"):
        with pytest.raises(grpc.RpcError) as info:
            step(
                node.address,
                kits.coordinator,
                session_id,
                pb.SECURE_AGGREGATION_ROUND_SHARE_KEYS,
                b"roster",
                server_name="localhost",
            )
        assert code_of(info) == grpc.StatusCode.NOT_FOUND
    assert len(node.sessions) == 0


def test_steps_out_of_order_and_bad_messages(
    federation: Federation, kits: Kits
) -> None:
    node = federation.start("agency-a")
    request = SessionRequest(
        "o" * 20, 1, participants=3, threshold=2, min_participants=2
    )
    node.sessions.open(kits.owner, request, np.arange(LENGTH, dtype=np.uint64))

    def call(round: int, payload: bytes = b"x") -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as info:
            step(node.address, kits.coordinator, "o" * 20, round, payload, "localhost")
        return code_of(info)

    assert call(pb.SECURE_AGGREGATION_ROUND_UNMASKING) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    assert call(pb.SECURE_AGGREGATION_ROUND_UNSPECIFIED) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert len(node.sessions) == 1  # neither changed the session
    # A malformed roster aborts the session: it is gone.
    assert call(pb.SECURE_AGGREGATION_ROUND_SHARE_KEYS) == grpc.StatusCode.ABORTED
    assert len(node.sessions) == 0
    assert call(pb.SECURE_AGGREGATION_ROUND_SHARE_KEYS) == grpc.StatusCode.NOT_FOUND


def test_an_insecure_node_steps_only_for_its_anonymous_owner(
    federation: Federation, kits: Kits
) -> None:
    anonymous = "insecure:anonymous"
    nodes = {
        p: federation.start(a, secure=False, insecure_owner=anonymous)
        for p, a in ((1, "agency-a"), (2, "agency-b"), (3, "agency-c"))
    }
    vectors = vectors_for(3, seed=10)
    session = SecureSumSession.new(3, min_participants=2)
    openings = open_sessions(nodes, session, vectors, anonymous)
    links: list[SecureAggregationLink] = [
        GrpcSecureAggregationLink.connect(federation.address_of(node), None, p)
        for p, node in nodes.items()
    ]
    result = run(links, openings, session)
    np.testing.assert_array_equal(decoded(result), expected_sum(vectors, (1, 2, 3)))

    strict = federation.start("agency-d", secure=False)
    with pytest.raises(grpc.RpcError) as info:
        step(strict.address, None, "u" * 20, pb.SECURE_AGGREGATION_ROUND_SHARE_KEYS)
    assert code_of(info) == grpc.StatusCode.UNAUTHENTICATED


# The registry -----------------------------------------------------------------


def test_the_registry_refuses_duplicates_and_caps_sessions() -> None:
    sessions = SecureSessions(max_sessions=2)
    vector = np.zeros(3, dtype=np.uint64)

    def request(session_id: str) -> SessionRequest:
        return SessionRequest(
            session_id, 1, participants=3, threshold=2, min_participants=2
        )

    opening = sessions.open("a", request("a" * 16), vector)
    assert isinstance(opening, SessionOpening)
    assert secagg.AdvertiseKeys.from_bytes(opening.advertise_keys).sender == 1
    with pytest.raises(SessionAlreadyOpen):
        sessions.open("a", request("a" * 16), vector)
    sessions.open("b", request("b" * 16), vector)
    with pytest.raises(TooManySessions, match="holds 2"):
        sessions.open("c", request("c" * 16), vector)
    per_owner = SecureSessions(max_sessions_per_owner=1)
    per_owner.open("a", request("a" * 16), vector)
    with pytest.raises(TooManySessions, match="this requester"):
        per_owner.open("a", request("b" * 16), vector)
    per_owner.open("b", request("b" * 16), vector)
    with pytest.raises(TypeError):
        sessions.open("c", request("d" * 16), np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"session_id": "short"}, "session_id"),
        ({"session_id": "x" * 20 + "/"}, "session_id"),
        ({"participant_id": -1}, "participant_id"),
        ({"participants": 1}, "participants"),
        ({"threshold": 1}, "threshold"),
        ({"threshold": 4}, "threshold"),
        ({"min_participants": 4}, "min_participants"),
    ],
)
def test_a_malformed_opening_names_its_field(
    changes: dict[str, object], field: str
) -> None:
    values: dict[str, object] = {
        "session_id": "v" * 32,
        "participant_id": 1,
        "participants": 3,
        "threshold": 2,
        "min_participants": 2,
    } | changes
    request = SessionRequest(**values)  # type: ignore[arg-type]
    with pytest.raises(InvalidQuery) as info:
        SecureSessions().open("x", request, np.zeros(2, dtype=np.uint64))
    assert info.value.field == f"secure_aggregation.{field}"


def test_concurrent_steps_of_one_session_run_once(kits: Kits) -> None:
    sessions = SecureSessions()
    session_id = "c" * 24
    aggregator = secagg.Aggregator(
        session_id.encode(), (1, 2, 3), threshold=2, min_participants=2, vector_length=4
    )
    # Participant 1 lives in the registry; 2 and 3 are plain state machines.
    owner = kits.owner
    opening = sessions.open(
        owner, SessionRequest(session_id, 1, 3, 2, 2), np.ones(4, dtype=np.uint64)
    )
    aggregator.receive_advertise_keys(1, opening.advertise_keys)
    for pid in (2, 3):
        other = secagg.Participant(pid, session_id.encode(), min_participants=2)
        aggregator.receive_advertise_keys(pid, other.advertise_keys())
    roster = aggregator.key_roster()
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            sessions.step(owner, session_id, NodeRound.SHARE_KEYS, roster)
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["StepOutOfOrder"] * 3 + ["ok"]


def test_secure_sum_refuses_misuse() -> None:
    class Dead(SecureAggregationLink):
        def step(
            self, session_id: str, round: SecureRound, payload: bytes, timeout: float
        ) -> bytes:
            raise AssertionError("never called")

    with pytest.raises(ValueError, match="two links"):
        secure_sum(
            [Dead(1), Dead(1)],
            {},
            session_id="s" * 32,
            vector_length=1,
            threshold=2,
            min_participants=2,
            deadline=1,
        )
    with pytest.raises(ValueError, match="without a link"):
        secure_sum(
            [Dead(1), Dead(2)],
            {3: b""},
            session_id="s" * 32,
            vector_length=1,
            threshold=2,
            min_participants=2,
            deadline=1,
        )
    assert issubclass(TooFewSecureParticipants, SecureSumFailed)


class MemoryLink(SecureAggregationLink):
    """A participant in this process; ``hang`` blocks a round, ignoring the timeout."""

    def __init__(
        self,
        participant: secagg.Participant,
        vector: NDArray[np.uint64],
        hang: tuple[SecureRound, threading.Event] | None = None,
    ) -> None:
        super().__init__(participant.id)
        self.participant = participant
        self.vector = vector
        self.hang = hang

    def step(
        self, session_id: str, round: SecureRound, payload: bytes, timeout: float
    ) -> bytes:
        if self.hang is not None and self.hang[0] is round:
            self.hang[1].wait(10)
            raise ConnectionError("gone")
        if round is SecureRound.SHARE_KEYS:
            return self.participant.share_keys(payload)
        if round is SecureRound.MASKED_INPUT:
            return self.participant.mask_input(payload, self.vector)
        return self.participant.unmask(payload)


def test_a_link_that_ignores_its_deadline_is_abandoned() -> None:
    session = SecureSumSession.new(3, min_participants=2)
    vectors = vectors_for(3, seed=11)
    release = threading.Event()
    links = []
    for pid in (1, 2, 3):
        participant = secagg.Participant(
            pid, session.session_id.encode(), min_participants=2
        )
        hang = (SecureRound.MASKED_INPUT, release) if pid == 3 else None
        links.append(MemoryLink(participant, vectors[pid][1], hang))
    openings = {
        link.participant_id: link.participant.advertise_keys() for link in links
    }
    start = time.monotonic()
    try:
        result = run(list(links), openings, session, deadline=0.2)
    finally:
        release.set()
    assert time.monotonic() - start < 3
    assert result.dropped == (3,)
    assert result.failures == {3: "MASKED_INPUT: no answer in 0.2 s"}
    np.testing.assert_array_equal(decoded(result), expected_sum(vectors, (1, 2)))
