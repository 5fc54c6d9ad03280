"""Secure aggregation for Accord: the coordinator learns the sum, not the parts.

One module for federated queries and training (DESIGN.md, D5): the protocol of
Bonawitz et al. (CCS 2017, rounds 0 AdvertiseKeys, 1 ShareKeys, 2 MaskedInput,
3 Unmasking; its malicious-model consistency round is not run), as pure state
machines -- `Participant` on each node, `Aggregator` at the coordinator --
exchanging transport-agnostic byte messages, on ``cryptography`` primitives only.

Parameters
----------
- Arithmetic modulo 2^64 on uint64 words; signed values in two's complement.
  `encode_ints` / `encode_floats` check the bit budget ``value_bits +
  ceil(log2 n) + 1 <= 64`` and raise `Overflow` before anything is masked.
- Per participant and session, two fresh X25519 key pairs: c_u (share
  encryption) and s_u (pairwise masks), plus a 32-byte self-mask seed b_u.
- HKDF-SHA256 with ``salt = session id`` and one ``info`` per use: pairwise
  masks (per unordered pair), self masks (per owner), share encryption (per
  ordered sender/recipient pair).
- Masks: AES-256-CTR keystream, zero nonce, a fresh key per stream, read as
  uint64 words; ``y_u = x_u + PRG(b_u) + sum_{v>u} PRG(s_uv) - sum_{v<u} PRG(s_uv)``.
- Dropouts: b_u and s_u^SK are Shamir-shared t-of-n over GF(2^521 - 1) (share
  indices 1..n in roster order), sealed with AES-256-GCM (associated data:
  session, sender, recipient) and relayed by the aggregator.
- Threshold t: a strict majority of the invited participants (``2t > n``),
  and every party enforces ``max(t, min_participants)`` in every round.

Threat model
------------
Semi-honest (honest-but-curious) aggregator, as DESIGN.md's "Trust and
threats": it follows the protocol and may try to learn one agency's input.

- The aggregator sees public keys, sealed shares, masked vectors (each
  uniform on its own), the survivor list and, in round 3, shares of b_v for
  survivors and of s_v^SK for dropouts. It learns the sum of U3's inputs and
  who contributed -- nothing else, provided fewer than t participants collude
  with it.
- A participant refuses to reveal shares of both b_v and s_v^SK for any v, so
  an aggregator that declares v dropped after v's masked input arrived cannot
  unmask it; the majority threshold keeps a split view (telling half the
  participants one survivor list, half another) from reaching t shares of both.
- Not covered (malicious model): messages are not signed, so an aggregator
  that substitutes public keys can impersonate participants to each other;
  the transport's mutual TLS authenticates parties to the aggregator only.
  Sign the advertised keys with the node certificate before relying on an
  actively malicious coordinator.
- Collusion with few parties: with n = 3 and t = 2 the coordinator and one
  agency learn the third agency's input (the sum minus their own), and t
  colluding participants plus the coordinator can unmask anyone. Secure
  aggregation hides individual inputs, not what the sum reveals: pair it with
  a policy minimum of participants (>= 3 or >= 5), an explicit collusion
  assumption, and integer DP noise added by each node before encoding
  (REFERENCES.md, section (d)).
- A participant's input appears in the sum exactly when its masked input
  arrived (U3); `AggregateResult` names the contributors, so a dropout is
  excluded explicitly, never silently half-counted.

Exceptions::

    SecAggError
    ├── TooFewParticipants
    ├── ProtocolViolation
    ├── DecryptionFailed
    └── Overflow

The building blocks live in `secagg.hazmat`, fenced off: use them only
through the protocol.
"""

from secagg._aggregator import AggregateResult as AggregateResult
from secagg._aggregator import Aggregator as Aggregator
from secagg._driver import Envelope as Envelope
from secagg._driver import RunRecord as RunRecord
from secagg._driver import run_in_memory as run_in_memory
from secagg._encoding import MODULUS_BITS as MODULUS_BITS
from secagg._encoding import FixedPointDecoder as FixedPointDecoder
from secagg._encoding import check_bit_budget as check_bit_budget
from secagg._encoding import decode_ints as decode_ints
from secagg._encoding import encode_floats as encode_floats
from secagg._encoding import encode_ints as encode_ints
from secagg._encoding import max_value_bits as max_value_bits
from secagg._errors import DecryptionFailed as DecryptionFailed
from secagg._errors import Overflow as Overflow
from secagg._errors import ProtocolViolation as ProtocolViolation
from secagg._errors import SecAggError as SecAggError
from secagg._errors import TooFewParticipants as TooFewParticipants
from secagg._messages import AdvertiseKeys as AdvertiseKeys
from secagg._messages import ForwardedShares as ForwardedShares
from secagg._messages import KeyRoster as KeyRoster
from secagg._messages import MaskedInput as MaskedInput
from secagg._messages import Message as Message
from secagg._messages import PublicKeys as PublicKeys
from secagg._messages import ShareKeys as ShareKeys
from secagg._messages import Unmasking as Unmasking
from secagg._messages import UnmaskRequest as UnmaskRequest
from secagg._messages import parse_message as parse_message
from secagg._participant import Participant as Participant
from secagg._rules import MAX_PARTICIPANTS as MAX_PARTICIPANTS
from secagg._rules import MAX_VECTOR_LENGTH as MAX_VECTOR_LENGTH
from secagg._rules import majority_threshold as majority_threshold

__all__ = [
    "MAX_PARTICIPANTS",
    "MAX_VECTOR_LENGTH",
    "MODULUS_BITS",
    "AdvertiseKeys",
    "AggregateResult",
    "Aggregator",
    "DecryptionFailed",
    "Envelope",
    "FixedPointDecoder",
    "ForwardedShares",
    "KeyRoster",
    "MaskedInput",
    "Message",
    "Overflow",
    "Participant",
    "ProtocolViolation",
    "PublicKeys",
    "RunRecord",
    "SecAggError",
    "ShareKeys",
    "TooFewParticipants",
    "UnmaskRequest",
    "Unmasking",
    "check_bit_budget",
    "decode_ints",
    "encode_floats",
    "encode_ints",
    "majority_threshold",
    "max_value_bits",
    "parse_message",
    "run_in_memory",
]
