"""Drive a secure-aggregation session over the nodes' links: the coordinator learns the sum.

The nodes open the session when they accept the request that carries a
``SecureAggregationRequest`` (`SecureSumSession.request`) and answer with their
``AdvertiseKeys``; `secure_sum` takes it from there, running a
`secagg.Aggregator` through rounds 1 to 3 and calling every live node of a
round at once, each call with its own deadline. A node that fails, times out
or sends a message the aggregator rejects drops out of the session:

- before its masked input arrived, its input is **not** in the total, and the
  other nodes' shares cancel its pairwise masks;
- after, its input **is** in the total, and the others' shares remove its
  self mask.

`SecureSumResult` names the contributors and the dropped; when too few nodes
remain for the threshold or the minimum of participants, `secure_sum` raises
and no total exists -- a dropout never yields a wrong total.

Errors::

    * CoordinatorError
      * SecureSumFailed              the session stopped; no total
        * TooFewSecureParticipants   fewer nodes remain than the threshold or
                                     the minimum of participants
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
import numpy as np
from numpy.typing import NDArray

import secagg
from accord.v1 import secure_aggregation_pb2 as pb
from coordinator._errors import CoordinatorError
from coordinator._outcome import describe_rpc_error
from coordinator._secure_link import SecureAggregationLink, SecureRound
from coordinator._threads import CALL_THREADS, node_calls

#: Extra seconds granted past the per-node deadline before a call is abandoned
#: (for links whose transport does not enforce the deadline itself).
_GRACE_SECONDS = 1.0


_R = TypeVar("_R")


class SecureSumFailed(CoordinatorError):
    """The secure-aggregation session stopped before the total; nothing is released.

    Parameters
    ----------
    message : str
        What happened.
    stage : str
        Where it stopped (``"opening"``, a round name, or ``"unmasking the sum"``).
    failures : Mapping[int, str]
        Participant id to why it dropped out.
    """

    def __init__(
        self, message: str, *, stage: str, failures: Mapping[int, str]
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.failures = dict(failures)


class TooFewSecureParticipants(SecureSumFailed):
    """Fewer nodes remain than the threshold or the minimum of participants.

    Parameters
    ----------
    stage : str
        Where the shortfall was found.
    have : int
        Participants (or responses) left.
    need : int
        How many the threshold or the minimum requires.
    failures : Mapping[int, str]
        Participant id to why it dropped out.
    """

    def __init__(
        self, stage: str, have: int, need: int, failures: Mapping[int, str]
    ) -> None:
        super().__init__(
            f"secure aggregation stopped at {stage}: {have} participant(s) left, at "
            f"least {need} required; no total is released",
            stage=stage,
            failures=failures,
        )
        self.have = have
        self.need = need


@dataclass(frozen=True)
class SecureSumResult:
    """The unmasked total and exactly whose inputs it holds.

    Parameters
    ----------
    total : numpy.ndarray of uint64
        The sum modulo 2^64 of the contributors' vectors (decode it with
        `secagg.decode_ints` or the decoder of `secagg.encode_floats`).
    contributors : tuple of int
        The participants whose input is in the total, in increasing order.
    dropped : tuple of int
        The invited participants whose input is not in the total.
    failures : Mapping[int, str]
        Participant id to why it dropped out or stopped answering; a node that
        failed only in the last round is a contributor and is listed here too.
    """

    total: NDArray[np.uint64]
    contributors: tuple[int, ...]
    dropped: tuple[int, ...]
    failures: Mapping[int, str] = field(default_factory=dict)


def new_session_id() -> str:
    """Return a fresh random session id (32 random bytes, URL-safe base64)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class SecureSumSession:
    """What the coordinator decides before opening a session at the nodes.

    Parameters
    ----------
    session_id : str
        A fresh random id (`new_session_id`).
    participants : int
        How many nodes are invited.
    threshold : int
        Shares needed to unmask: a strict majority of ``participants``.
    min_participants : int
        The fewest nodes whose inputs may be summed.
    """

    session_id: str
    participants: int
    threshold: int
    min_participants: int

    @classmethod
    def new(
        cls,
        participants: int,
        *,
        min_participants: int,
        threshold: int | None = None,
    ) -> SecureSumSession:
        """Plan a session for ``participants`` nodes with a fresh id.

        Parameters
        ----------
        participants : int
            How many nodes are invited.
        min_participants : int
            The fewest nodes whose inputs may be summed (the largest minimum
            of the policies involved; at least 2).
        threshold : int, optional
            Shares needed to unmask; default: the smallest strict majority,
            which tolerates the most dropouts.

        Returns
        -------
        SecureSumSession
            The plan.

        Raises
        ------
        TooFewSecureParticipants
            If fewer nodes are invited than ``min_participants``: the query
            does not run.
        """
        if participants < min_participants:
            raise TooFewSecureParticipants(
                "opening", participants, min_participants, {}
            )
        return cls(
            new_session_id(),
            participants,
            secagg.majority_threshold(participants) if threshold is None else threshold,
            min_participants,
        )

    def request(self, participant_id: int) -> pb.SecureAggregationRequest:
        """Return the ``SecureAggregationRequest`` inviting ``participant_id``."""
        return pb.SecureAggregationRequest(
            session_id=self.session_id,
            participant_id=participant_id,
            participants=self.participants,
            threshold=self.threshold,
            min_participants=self.min_participants,
        )


def secure_sum(
    links: Sequence[SecureAggregationLink],
    openings: Mapping[int, bytes],
    *,
    session_id: str,
    vector_length: int,
    threshold: int,
    min_participants: int,
    deadline: float,
) -> SecureSumResult:
    """Run rounds 1 to 3 of a session the nodes opened; return the unmasked total.

    Parameters
    ----------
    links : Sequence[SecureAggregationLink]
        One link per invited participant (their ``participant_id`` are the
        session's participants, opened or not).
    openings : Mapping[int, bytes]
        Participant id to the ``AdvertiseKeys`` bytes of each node that opened
        the session; the others take no part.
    session_id : str
        The session.
    vector_length : int
        Words in every node's vector (a node that opened with another length
        refuses the roster and drops out).
    threshold : int
        Shares needed to unmask: a strict majority of ``len(links)``.
    min_participants : int
        The fewest nodes whose inputs may be summed.
    deadline : float
        Seconds each node has to answer each round.

    Returns
    -------
    SecureSumResult
        The total of the contributors, who they are and who dropped out.

    Raises
    ------
    TooFewSecureParticipants
        If fewer nodes remain in some round than ``max(threshold,
        min_participants)``, or fewer than ``threshold`` send their unmasking
        shares; no total is released.
    SecureSumFailed
        If the nodes' shares are inconsistent (a reconstructed key does not
        match its advertised key); no total is released.
    ValueError
        If two links share a participant id, an opening names no link, or
        the session's parameters are invalid.
    """
    by_id: dict[int, SecureAggregationLink] = {}
    for link in links:
        if link.participant_id in by_id:
            raise ValueError(f"two links for participant {link.participant_id}")
        by_id[link.participant_id] = link
    if not set(openings) <= set(by_id):
        raise ValueError("an opening names a participant without a link")
    aggregator = secagg.Aggregator(
        session_id.encode("ascii"),
        by_id,
        threshold=threshold,
        min_participants=min_participants,
        vector_length=vector_length,
    )
    failures: dict[int, str] = dict.fromkeys(
        sorted(set(by_id) - set(openings)), "did not open the session"
    )
    for participant in sorted(openings):
        try:
            aggregator.receive_advertise_keys(participant, openings[participant])
        except secagg.SecAggError as exc:
            failures[participant] = f"opening: {exc}"

    workers = min(CALL_THREADS, max(1, len(by_id)))
    # Calls beyond the pool's size start late; their wait grows by whole deadlines.
    waves = -(-len(by_id) // workers)
    pool = node_calls()
    submitted: list[futures.Future[bytes]] = []

    def run_round(
        round_: SecureRound,
        outgoing: Mapping[int, bytes],
        receive: Callable[[int, bytes], None],
    ) -> None:
        pending = {
            pool.submit(by_id[p].step, session_id, round_, payload, deadline): p
            for p, payload in outgoing.items()
        }
        submitted.extend(pending)
        done, late = futures.wait(pending, timeout=waves * deadline + _GRACE_SECONDS)
        for future in late:
            future.cancel()
            failures[pending[future]] = f"{round_.name}: no answer in {deadline:g} s"
        for future in done:
            participant = pending[future]
            try:
                reply = future.result()
            except grpc.RpcError as exc:
                _, code, _, message, _ = describe_rpc_error(exc)
                failures[participant] = f"{round_.name}: {code}: {message}"
                continue
            except Exception as exc:  # any transport: the node drops out
                failures[participant] = f"{round_.name}: {type(exc).__name__}: {exc}"
                continue
            try:
                receive(participant, reply)
            except secagg.SecAggError as exc:
                failures[participant] = f"{round_.name}: rejected: {exc}"

    def close(stage: str, step: Callable[[], _R]) -> _R:
        try:
            return step()
        except secagg.TooFewParticipants as exc:
            raise TooFewSecureParticipants(
                stage, exc.have, exc.need, failures
            ) from None
        except secagg.SecAggError as exc:
            raise SecureSumFailed(
                f"secure aggregation stopped at {stage}: {exc}; no total is released",
                stage=stage,
                failures=failures,
            ) from None

    try:
        roster = close("opening", aggregator.key_roster)
        run_round(
            SecureRound.SHARE_KEYS,
            dict.fromkeys(sorted(aggregator.advertised), roster),
            aggregator.receive_share_keys,
        )
        forwarded = close(SecureRound.SHARE_KEYS.name, aggregator.forward_shares)
        run_round(SecureRound.MASKED_INPUT, forwarded, aggregator.receive_masked_input)
        request = close(SecureRound.MASKED_INPUT.name, aggregator.unmask_request)
        run_round(
            SecureRound.UNMASKING,
            dict.fromkeys(sorted(aggregator.survivors), request),
            aggregator.receive_unmasking,
        )
        result = close("unmasking the sum", aggregator.finish)
    finally:
        for future in submitted:  # the shared pool stays; this session's calls stop
            future.cancel()
    return SecureSumResult(
        total=result.total,
        contributors=tuple(sorted(result.contributors)),
        dropped=tuple(sorted(result.dropped)),
        failures=dict(sorted(failures.items())),
    )
