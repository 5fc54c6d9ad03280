"""The node's open secure-aggregation sessions, and the ``SecureAggregationService``.

A session is opened by the request that carries a ``SecureAggregationRequest``
(a query, a training round): `SecureSessions.open` keeps the node's encoded
vector and a `secagg.Participant`, and returns the ``AdvertiseKeys`` message.
The coordinator then steps it through rounds 1 to 3 with ``Step``; each step
hands the participant the aggregator's message and returns the participant's,
so what leaves the node is sealed shares, the masked vector and unmasking
shares -- never the vector itself. Only the requester that opened a session
may step it, once per round and in order; an unfinished session expires
``ttl`` seconds after its last step, a finished one (after unmasking) or an
aborted one is deleted at once.

Errors (mapped by :func:`node._errors.rpc_errors`)::

    * NodeError
      * SecureSessionError
        x SessionNotFound      -> NOT_FOUND: unknown, expired, finished or aborted
        x NotSessionOwner      -> PERMISSION_DENIED: opened by another requester
        x StepOutOfOrder       -> FAILED_PRECONDITION: not the round the session is in
                                  (the session is unchanged)
        x SessionAlreadyOpen   -> ALREADY_EXISTS: the session id is in use
        x TooManySessions      -> RESOURCE_EXHAUSTED: the node's cap is reached
        x SessionAborted       -> ABORTED: the participant refused the aggregator's
                                  message (malformed, inconsistent with the
                                  opening, too few participants); the session is
                                  deleted and reveals nothing more
      x InvalidQuery           -> INVALID_ARGUMENT naming the field of the opening
                                  or the step
      x Unauthenticated        -> UNAUTHENTICATED (no client certificate: --insecure)
"""

from __future__ import annotations

import enum
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import numpy as np
from google.rpc import code_pb2
from numpy.typing import NDArray

import pki
import secagg
from accord.v1 import secure_aggregation_pb2 as pb
from accord.v1 import secure_aggregation_pb2_grpc as pb_grpc
from node._errors import InvalidQuery, NodeError, Unauthenticated, rpc_errors

__all__ = [
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_MAX_SESSIONS_PER_OWNER",
    "DEFAULT_TTL_SECONDS",
    "SECURE_AGGREGATION_SERVICE_NAME",
    "NotSessionOwner",
    "SecureAggregationServicer",
    "SecureRound",
    "SecureSessionError",
    "SecureSessions",
    "SessionAborted",
    "SessionAlreadyOpen",
    "SessionNotFound",
    "SessionOpening",
    "SessionRequest",
    "StepOutOfOrder",
    "TooManySessions",
    "add_secure_aggregation_service",
    "opening_to_proto",
    "request_from_proto",
    "round_from_proto",
]

#: The full name of the service, for health and reflection.
SECURE_AGGREGATION_SERVICE_NAME = pb.DESCRIPTOR.services_by_name[
    "SecureAggregationService"
].full_name
#: Seconds an unfinished session lives after it was opened or last stepped.
DEFAULT_TTL_SECONDS = 120.0
#: Sessions a node holds at once.
DEFAULT_MAX_SESSIONS = 64
#: Sessions one requester holds at once at a node.
DEFAULT_MAX_SESSIONS_PER_OWNER = 16
#: Where the opening's fields sit in the requests that carry it.
FIELD_PREFIX = "secure_aggregation"

_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_MAX_PARTICIPANT_ID = (1 << 31) - 1  # an int32 on the wire

_log = logging.getLogger("accord.node")


class SecureRound(enum.IntEnum):
    """The rounds a coordinator steps a session through, in order."""

    SHARE_KEYS = pb.SECURE_AGGREGATION_ROUND_SHARE_KEYS
    MASKED_INPUT = pb.SECURE_AGGREGATION_ROUND_MASKED_INPUT
    UNMASKING = pb.SECURE_AGGREGATION_ROUND_UNMASKING


# Errors -----------------------------------------------------------------------


class SecureSessionError(NodeError):
    """A secure-aggregation step or opening the node cannot serve."""


class SessionNotFound(SecureSessionError):
    """No such session: never opened, expired, finished or aborted."""

    code = code_pb2.NOT_FOUND


class NotSessionOwner(SecureSessionError):
    """The session was opened by another requester."""

    code = code_pb2.PERMISSION_DENIED


class StepOutOfOrder(SecureSessionError):
    """The step is not for the round the session is in; the session is unchanged."""

    code = code_pb2.FAILED_PRECONDITION


class SessionAlreadyOpen(SecureSessionError):
    """A session with this id is open at this node."""

    code = code_pb2.ALREADY_EXISTS


class TooManySessions(SecureSessionError):
    """The node holds as many sessions as it allows."""

    code = code_pb2.RESOURCE_EXHAUSTED


class SessionAborted(SecureSessionError):
    """The participant refused the coordinator's message; the session is deleted."""

    code = code_pb2.ABORTED


# Values -----------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRequest:
    """A request to take part in a session (``SecureAggregationRequest``).

    Parameters
    ----------
    session_id : str
        A fresh random id shared by all participants: 16 to 64 characters
        from ``A-Z``, ``a-z``, ``0-9``, ``-`` and ``_``.
    participant_id : int
        This node's id in the session, 0 to 2^31 - 1.
    participants : int
        How many participants are invited.
    threshold : int
        Shares needed to unmask: a strict majority of ``participants``.
    min_participants : int
        The fewest participants whose inputs may be summed, as the requester
        asks (at least 2).
    """

    session_id: str
    participant_id: int
    participants: int
    threshold: int
    min_participants: int

    def check(self, policy_min_participants: int = 2) -> int:
        """Validate the request; return the minimum the node enforces.

        Parameters
        ----------
        policy_min_participants : int
            The node's own minimum (its policy's); the session enforces the
            larger of this and ``min_participants``.

        Returns
        -------
        int
            ``max(min_participants, policy_min_participants)``.

        Raises
        ------
        InvalidQuery
            Naming the first field that is malformed or inconsistent, or
            ``participants`` when fewer are invited than the minimum.
        """
        if _SESSION_ID.fullmatch(self.session_id) is None:
            raise _invalid(
                "session_id",
                "expected 16 to 64 characters from A-Z, a-z, 0-9, '-' and '_'",
            )
        if not 0 <= self.participant_id <= _MAX_PARTICIPANT_ID:
            raise _invalid("participant_id", "expected 0 to 2^31 - 1")
        if not 2 <= self.participants <= secagg.MAX_PARTICIPANTS:
            raise _invalid("participants", f"expected 2 to {secagg.MAX_PARTICIPANTS}")
        least = secagg.majority_threshold(self.participants)
        if not least <= self.threshold <= self.participants:
            raise _invalid(
                "threshold",
                f"expected a strict majority of the {self.participants} "
                f"participants: {least} to {self.participants}",
            )
        if not 2 <= self.min_participants <= self.participants:
            raise _invalid(
                "min_participants", f"expected 2 to {self.participants} (participants)"
            )
        need = max(self.min_participants, policy_min_participants)
        if need > self.participants:
            raise _invalid(
                "participants",
                f"{self.participants} invited; this node requires at least {need}",
            )
        return need


@dataclass(frozen=True)
class SessionOpening:
    """A node's answer to a `SessionRequest` (``SecureAggregationOpening``).

    Parameters
    ----------
    advertise_keys : bytes
        The participant's ``AdvertiseKeys`` message (round 0).
    vector_length : int
        How many uint64 words the node will mask.
    """

    advertise_keys: bytes
    vector_length: int


def request_from_proto(message: pb.SecureAggregationRequest) -> SessionRequest:
    """Return the `SessionRequest` of a ``SecureAggregationRequest``."""
    return SessionRequest(
        session_id=message.session_id,
        participant_id=message.participant_id,
        participants=message.participants,
        threshold=message.threshold,
        min_participants=message.min_participants,
    )


def opening_to_proto(opening: SessionOpening) -> pb.SecureAggregationOpening:
    """Return the ``SecureAggregationOpening`` of a `SessionOpening`."""
    return pb.SecureAggregationOpening(
        advertise_keys=opening.advertise_keys, vector_length=opening.vector_length
    )


def round_from_proto(value: int) -> SecureRound:
    """Return the `SecureRound` of a ``SecureAggregationRound``.

    Raises
    ------
    InvalidQuery
        If the round is unset or unknown.
    """
    try:
        return SecureRound(value)
    except ValueError:
        raise InvalidQuery(
            "round", "expected SHARE_KEYS, MASKED_INPUT or UNMASKING"
        ) from None


# The registry -----------------------------------------------------------------


@dataclass(eq=False)
class _Session:
    owner: str
    request: SessionRequest
    participant: secagg.Participant
    vector: NDArray[np.uint64] | None
    vector_length: int
    expires_at: float
    expected: SecureRound = SecureRound.SHARE_KEYS
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class SecureSessions:
    """The secure-aggregation sessions open at this node; thread-safe.

    Each session belongs to the requester (SAN URI) that opened it. Steps of
    one session run one at a time; steps of different sessions in parallel.
    Unfinished sessions expire lazily: every call first drops the sessions
    idle for longer than ``ttl`` (and `expire` does it on demand).

    Parameters
    ----------
    ttl : float
        Seconds an unfinished session lives after it was opened or last
        stepped.
    max_sessions : int
        Sessions held at once; opening one more raises `TooManySessions`.
    max_sessions_per_owner : int
        Sessions one requester holds at once (so that one requester cannot
        take every slot); opening one more raises `TooManySessions`.
    monotonic : Callable[[], float]
        The clock, in seconds (``time.monotonic`` unless a test moves time).
    """

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        max_sessions_per_owner: int = DEFAULT_MAX_SESSIONS_PER_OWNER,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_sessions < 1 or max_sessions_per_owner < 1:
            raise ValueError("ttl must be positive and the caps at least 1")
        self._ttl = ttl
        self._max = max_sessions
        self._max_per_owner = max_sessions_per_owner
        self._now = monotonic
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}

    def __len__(self) -> int:
        """Return how many sessions are open (expired ones are dropped first)."""
        with self._lock:
            self._expire_locked()
            return len(self._sessions)

    def open(
        self,
        owner: str,
        request: SessionRequest,
        vector: NDArray[np.uint64],
        *,
        policy_min_participants: int = 2,
    ) -> SessionOpening:
        """Open a session for ``owner`` that will mask ``vector``.

        Parameters
        ----------
        owner : str
            The requester's identity (SAN URI); only it may step the session.
        request : SessionRequest
            The session's parameters, as the requester sent them.
        vector : numpy.ndarray of uint64
            The node's encoded input (`secagg.encode_ints` or
            `secagg.encode_floats`); copied.
        policy_min_participants : int
            The node's own minimum number of participants; the session
            enforces the larger of this and the request's.

        Returns
        -------
        SessionOpening
            The ``AdvertiseKeys`` message and the vector's length.

        Raises
        ------
        InvalidQuery
            If the request is malformed (naming the field).
        SessionAlreadyOpen
            If a session with this id is open.
        TooManySessions
            If the node holds ``max_sessions`` sessions, or ``owner``
            ``max_sessions_per_owner``.
        TypeError
            If ``vector`` is not a one-dimensional numpy uint64 array.
        ValueError
            If ``vector`` is empty or longer than `secagg.MAX_VECTOR_LENGTH`.
        """
        given: object = vector  # checked at run time: callers may pass anything
        if not (
            isinstance(given, np.ndarray)
            and given.dtype == np.uint64
            and given.ndim == 1
        ):
            raise TypeError("the input must be a numpy uint64 vector (see encode_ints)")
        if not 1 <= len(vector) <= secagg.MAX_VECTOR_LENGTH:
            raise ValueError(
                f"the input must have 1 to {secagg.MAX_VECTOR_LENGTH} words"
            )
        need = request.check(policy_min_participants)
        participant = secagg.Participant(
            request.participant_id,
            request.session_id.encode("ascii"),
            min_participants=need,
        )
        advertise = participant.advertise_keys()
        kept = np.array(vector, dtype=np.uint64, copy=True)
        kept.flags.writeable = False
        with self._lock:
            self._expire_locked()
            if request.session_id in self._sessions:
                raise SessionAlreadyOpen(
                    f"secure-aggregation session {request.session_id} is already open"
                )
            if len(self._sessions) >= self._max:
                raise TooManySessions(
                    f"this node holds {self._max} secure-aggregation sessions; "
                    "try again later"
                )
            held = sum(1 for s in self._sessions.values() if s.owner == owner)
            if held >= self._max_per_owner:
                raise TooManySessions(
                    f"this requester holds {held} secure-aggregation sessions at "
                    "this node, the most it may; finish or let them expire first"
                )
            self._sessions[request.session_id] = _Session(
                owner=owner,
                request=request,
                participant=participant,
                vector=kept,
                vector_length=len(kept),
                expires_at=self._now() + self._ttl,
            )
        return SessionOpening(advertise, len(kept))

    def step(
        self, owner: str, session_id: str, round: SecureRound, payload: bytes
    ) -> bytes:
        """Hand the participant the coordinator's message of ``round``; return its reply.

        Parameters
        ----------
        owner : str
            The caller's identity (SAN URI).
        session_id : str
            The session.
        round : SecureRound
            The round the message belongs to: the round after the session's last.
        payload : bytes
            The coordinator's ``KeyRoster``, ``ForwardedShares`` or
            ``UnmaskRequest``.

        Returns
        -------
        bytes
            The participant's ``ShareKeys``, ``MaskedInput`` or ``Unmasking``.
            After unmasking the session is deleted.

        Raises
        ------
        SessionNotFound
            If no such session is open (never opened, expired, finished or
            aborted).
        NotSessionOwner
            If ``owner`` did not open the session.
        StepOutOfOrder
            If the session is not in ``round``; it is left unchanged.
        SessionAborted
            If the participant refused the message; the session is deleted.
        """
        session = self._find(owner, session_id)
        with session.lock:
            if session.closed:
                raise _not_found(session_id)
            if round is not session.expected:
                raise StepOutOfOrder(
                    f"secure-aggregation session {session_id} expects "
                    f"{session.expected.name}, not {round.name}",
                    metadata={"expected": session.expected.name},
                )
            try:
                reply = self._run(session, round, payload)
            except secagg.SecAggError as exc:
                self._close(session_id, session)
                _log.info(
                    "secure-aggregation session %s aborted in %s: %s",
                    session_id,
                    round.name,
                    exc,
                )
                raise SessionAborted(
                    f"secure-aggregation session {session_id} aborted in "
                    f"{round.name}: {exc}",
                    metadata={"cause": type(exc).__name__},
                ) from None
            if round is SecureRound.UNMASKING:
                self._close(session_id, session)
            else:
                session.expected = SecureRound(round + 1)
                session.expires_at = self._now() + self._ttl
            return reply

    def expire(self) -> int:
        """Drop every session idle for longer than ``ttl``; return how many."""
        with self._lock:
            return self._expire_locked()

    # --------------------------------------------------------------------------

    def _find(self, owner: str, session_id: str) -> _Session:
        with self._lock:
            self._expire_locked()
            session = self._sessions.get(session_id)
        if session is None:
            raise _not_found(session_id)
        if session.owner != owner:
            raise NotSessionOwner(
                f"secure-aggregation session {session_id} belongs to another requester"
            )
        return session

    def _run(self, session: _Session, round: SecureRound, payload: bytes) -> bytes:
        participant = session.participant
        if round is SecureRound.SHARE_KEYS:
            self._check_roster(session, payload)
            return participant.share_keys(payload)
        if round is SecureRound.MASKED_INPUT:
            vector = session.vector
            if vector is None:  # pragma: no cover - guarded by the round order
                raise secagg.ProtocolViolation("the input is gone")
            reply = participant.mask_input(payload, vector)
            session.vector = None  # the raw input is not needed any more
            return reply
        return participant.unmask(payload)

    @staticmethod
    def _check_roster(session: _Session, payload: bytes) -> None:
        """Refuse a roster that contradicts what the session was opened with."""
        roster = secagg.KeyRoster.from_bytes(payload)
        if roster.threshold != session.request.threshold:
            raise secagg.ProtocolViolation(
                f"the roster's threshold {roster.threshold} is not the "
                f"{session.request.threshold} announced"
            )
        if len(roster.keys) > session.request.participants:
            raise secagg.ProtocolViolation(
                f"the roster lists {len(roster.keys)} participants, more than the "
                f"{session.request.participants} announced"
            )
        if roster.vector_length != session.vector_length:
            raise secagg.ProtocolViolation(
                f"the roster's vector length {roster.vector_length} is not this "
                f"node's {session.vector_length}"
            )

    def _close(self, session_id: str, session: _Session) -> None:
        session.closed = True
        session.vector = None
        with self._lock:
            if self._sessions.get(session_id) is session:
                del self._sessions[session_id]

    def _expire_locked(self) -> int:
        now = self._now()
        expired = [k for k, s in self._sessions.items() if s.expires_at <= now]
        for key in expired:
            session = self._sessions.pop(key)
            session.closed = True
            session.vector = None
        return len(expired)


def _invalid(name: str, message: str) -> InvalidQuery:
    return InvalidQuery(f"{FIELD_PREFIX}.{name}", message)


def _not_found(session_id: str) -> SessionNotFound:
    return SessionNotFound(
        f"no open secure-aggregation session {session_id} "
        "(never opened, expired, finished or aborted)"
    )


# The service ------------------------------------------------------------------


class SecureAggregationServicer(pb_grpc.SecureAggregationServiceServicer):
    """Serves ``Step`` for the sessions in a `SecureSessions` registry.

    Parameters
    ----------
    sessions : SecureSessions
        The node's registry, shared with the code that opens sessions.
    anonymous_owner : str or None
        The owner of calls without a client certificate (only on an
        ``--insecure`` server, where the opening code uses the same name);
        ``None`` refuses them with UNAUTHENTICATED.
    """

    def __init__(
        self, sessions: SecureSessions, *, anonymous_owner: str | None = None
    ) -> None:
        self._sessions = sessions
        self._anonymous = anonymous_owner

    def Step(
        self, request: pb.StepRequest, context: grpc.ServicerContext
    ) -> pb.StepResponse:
        """Run one round of a session for the requester that opened it."""
        with rpc_errors(context):
            owner = self._owner(context)
            round_ = round_from_proto(request.round)
            reply = self._sessions.step(
                owner, request.session_id, round_, request.payload
            )
            return pb.StepResponse(payload=reply)
        raise AssertionError("unreachable")  # pragma: no cover

    def _owner(self, context: grpc.ServicerContext) -> str:
        identity = pki.peer_identity(context.auth_context())
        if identity is not None:
            return identity.uri
        if self._anonymous is not None:
            return self._anonymous
        raise Unauthenticated(
            "secure aggregation needs the client certificate of the requester "
            "that opened the session"
        )


def add_secure_aggregation_service(
    server: grpc.Server, servicer: SecureAggregationServicer
) -> None:
    """Mount the ``SecureAggregationService`` on a (not yet started) gRPC server.

    Parameters
    ----------
    server : grpc.Server
        The node's server.
    servicer : SecureAggregationServicer
        The servicer.
    """
    pb_grpc.add_SecureAggregationServiceServicer_to_server(servicer, server)
