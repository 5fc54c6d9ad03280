"""The limits and threshold rule that participants and the aggregator both enforce."""

from __future__ import annotations

import numpy as np

#: Most participants in one session (all-to-all key agreement; past a few dozen,
#: a sparse neighbour graph (SecAgg+) is the way to grow, see DESIGN.md).
MAX_PARTICIPANTS = 1024
#: Longest vector in one session (2^28 words = 2 GiB per masked input).
MAX_VECTOR_LENGTH = 1 << 28
#: Participant ids are unsigned 32-bit integers.
MAX_PARTICIPANT_ID = (1 << 32) - 1
#: Allowed sizes of a session id, in bytes.
SESSION_ID_MIN, SESSION_ID_MAX = 16, 64


def majority_threshold(participants: int) -> int:
    """Return the smallest allowed threshold for ``participants``: a strict majority.

    Parameters
    ----------
    participants : int
        Number of participants invited to the session.

    Returns
    -------
    int
        ``participants // 2 + 1``.
    """
    return participants // 2 + 1


def threshold_problem(threshold: int, participants: int) -> str | None:
    """Say why ``threshold`` is not allowed for ``participants``, or return None.

    A threshold must be a strict majority (``2 t > n``) and at most ``n``. The
    majority rule keeps an aggregator that tells different participants
    different survivor lists from collecting ``t`` shares of both secrets of
    one participant without the help of colluding participants.

    Parameters
    ----------
    threshold : int
        The proposed threshold ``t``.
    participants : int
        The number of participants ``n`` the secrets are shared among.

    Returns
    -------
    str or None
        A one-line reason, or None when the threshold is allowed.
    """
    if not 2 <= participants <= MAX_PARTICIPANTS:
        return f"a session has 2 to {MAX_PARTICIPANTS} participants, not {participants}"
    if not (2 * threshold > participants and threshold <= participants):
        return (
            f"threshold {threshold} for {participants} participants: it must be a "
            f"strict majority, {majority_threshold(participants)} to {participants}"
        )
    return None


def check_session_id(session_id: bytes) -> bytes:
    """Return ``session_id`` if it is bytes of an allowed size.

    Parameters
    ----------
    session_id : bytes
        A fresh random id, shared by all parties of the session.

    Returns
    -------
    bytes
        The same id.

    Raises
    ------
    TypeError
        If it is not bytes.
    ValueError
        If its size is outside ``SESSION_ID_MIN..SESSION_ID_MAX``.
    """
    if not isinstance(session_id, bytes):
        raise TypeError("a session id is bytes")
    if not SESSION_ID_MIN <= len(session_id) <= SESSION_ID_MAX:
        raise ValueError(
            f"a session id has {SESSION_ID_MIN} to {SESSION_ID_MAX} bytes, "
            f"not {len(session_id)}"
        )
    return session_id


def check_participant_id(participant_id: int) -> int:
    """Return ``participant_id`` if it is an unsigned 32-bit integer.

    Parameters
    ----------
    participant_id : int
        The id, stable for the session.

    Returns
    -------
    int
        The same id.

    Raises
    ------
    TypeError
        If it is not an ``int``.
    ValueError
        If it is outside ``0..MAX_PARTICIPANT_ID``.
    """
    if not _is_int(participant_id):
        raise TypeError("a participant id is an int")
    if not 0 <= participant_id <= MAX_PARTICIPANT_ID:
        raise ValueError(
            f"participant id {participant_id} is not an unsigned 32-bit int"
        )
    return participant_id


def is_uint64_vector(value: object) -> bool:
    """Return whether ``value`` is a one-dimensional numpy uint64 array.

    Parameters
    ----------
    value : object
        Anything a caller passed where an encoded vector belongs.

    Returns
    -------
    bool
        True for a numpy ``uint64`` array of one dimension.
    """
    return (
        isinstance(value, np.ndarray) and value.dtype == np.uint64 and value.ndim == 1
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_min_participants(min_participants: int) -> int:
    """Return ``min_participants`` if it is at least 2.

    Parameters
    ----------
    min_participants : int
        The fewest participants whose inputs may be summed (a policy value).

    Returns
    -------
    int
        The same number.

    Raises
    ------
    ValueError
        If it is below 2 or above `MAX_PARTICIPANTS`.
    """
    if not 2 <= min_participants <= MAX_PARTICIPANTS:
        raise ValueError(
            f"min_participants must be 2 to {MAX_PARTICIPANTS}, not {min_participants}"
        )
    return min_participants
