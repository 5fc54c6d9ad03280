"""The exception tree of ``secagg``; no message carries a participant's data.

::

    SecAggError               base of every error raised by ``secagg``
    ├── TooFewParticipants    fewer participants (or shares) remain than the
    │                         threshold or the configured minimum; nothing is
    │                         revealed and the session cannot continue
    ├── ProtocolViolation     a message is malformed, out of order, duplicated,
    │                         for another session, or asks for something the
    │                         protocol forbids (e.g. both secrets of one peer)
    ├── DecryptionFailed      an encrypted share fails authentication (tampered,
    │                         misaddressed or from another session)
    └── Overflow              values outside their declared bounds, or bounds
                              whose sum could exceed the 64-bit modulus

Misuse by the caller -- a wrong type, a threshold outside its range, a vector of
the wrong length, a non-finite float -- raises the built-in ``TypeError`` or
``ValueError``, as ``cryptography`` does: those are programming errors, not
events of a session.
"""

from __future__ import annotations


class SecAggError(Exception):
    """Base of every error raised by ``secagg``."""


class TooFewParticipants(SecAggError):
    """Fewer participants or shares remain than the session needs.

    Parameters
    ----------
    stage : str
        Where the shortfall was found (e.g. ``"masked inputs"``).
    have : int
        How many there are.
    need : int
        How many the threshold or the configured minimum requires.
    """

    def __init__(self, stage: str, have: int, need: int) -> None:
        super().__init__(
            f"{stage}: {have} received, at least {need} required; "
            "the session stops and reveals nothing"
        )
        self.stage = stage
        self.have = have
        self.need = need


class ProtocolViolation(SecAggError):
    """A message breaks the protocol: malformed, out of order or forbidden."""


class DecryptionFailed(SecAggError):
    """An encrypted share does not authenticate; it is never used."""


class Overflow(SecAggError):
    """Values exceed their declared bounds, or the bounds exceed the modulus."""
