"""The decision record: its canonical encoding, its hash-chain link and its leaf.

A record's *canonical bytes* are its payload (every field, JSON types) encoded as
``json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
in UTF-8. From them:

* ``chain_hash = SHA-256(bytes.fromhex(prev_hash) || canonical bytes)``, and the
  next record's ``prev_hash`` is its hex; record 0 has ``prev_hash`` = 64 zeros;
* the Merkle leaf is ``SHA-256(0x00 || canonical bytes)`` (RFC 6962).

Times are UTC, written ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; ``privacy_charged`` and
``privacy_remaining`` are JSON floats (``0.0``, never ``0``); the tuple fields are
JSON arrays of strings. Parsing is strict, so every accepted record has exactly
one encoding.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from operator import itemgetter
from typing import Any

from ._errors import MalformedRecord
from ._merkle import leaf_hash

__all__ = [
    "DECISIONS",
    "GENESIS_PREV_HASH",
    "OPERATIONS",
    "DecisionRecord",
]

OPERATIONS = frozenset(
    {"collection", "alteration", "consultation", "disclosure", "combination", "erasure"}
)
"""Processing operations that must be logged (LED Art. 25(1))."""

DECISIONS = frozenset({"allow", "deny", "error"})
"""Possible outcomes of a policy decision."""

GENESIS_PREV_HASH = "0" * 64
"""``prev_hash`` of record 0."""

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ZERO = timedelta(0)

_STR_FIELDS = (
    "requester",
    "on_behalf_of",
    "purpose",
    "legal_basis",
    "justification",
    "dataset",
    "reason",
    "query_id",
    "method",
)
_DIGEST_FIELDS = ("request_hash", "policy_digest")  # prev_hash: _check_position
_TUPLE_FIELDS = ("columns", "matched_rules", "recipients")


def _show(value: object) -> str:
    """Describe a bad value briefly (a long one is cut)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _format_time(value: datetime) -> str:
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise MalformedRecord(
            f"time: expected 'YYYY-MM-DDTHH:MM:SS.ffffffZ', got {_show(value)}"
        )
    try:
        return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise MalformedRecord(
            f"time: {_show(value)} is not a valid date and time"
        ) from None


def _check_float(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, float):
        raise MalformedRecord(f"{name}: expected a float, got {_show(value)}")
    if not math.isfinite(value):
        raise MalformedRecord(f"{name}: {_show(value)} is not finite")


def _check_position(get: Callable[[str], object]) -> None:
    """Check ``seq`` and ``prev_hash``; ``get`` reads one."""
    seq = get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise MalformedRecord(f"seq: expected an integer >= 0, got {_show(seq)}")
    _check_hex("prev_hash", get("prev_hash"))


def _check_hex(name: str, value: object) -> None:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise MalformedRecord(
            f"{name}: expected 64 lowercase hex digits, got {_show(value)}"
        )


def _check_shared(get: Callable[[str], object]) -> None:
    """Check the fields whose Python and JSON forms coincide; ``get`` reads one."""
    _check_position(get)
    operation = get("operation")
    if not isinstance(operation, str) or operation not in OPERATIONS:
        raise MalformedRecord(
            f"operation: {_show(operation)} is not one of {sorted(OPERATIONS)}"
        )
    decision = get("decision")
    if not isinstance(decision, str) or decision not in DECISIONS:
        raise MalformedRecord(
            f"decision: {_show(decision)} is not one of {sorted(DECISIONS)}"
        )
    for name in _STR_FIELDS:
        if not isinstance(get(name), str):
            raise MalformedRecord(f"{name}: expected a string, got {_show(get(name))}")
    for name in _DIGEST_FIELDS:
        _check_hex(name, get(name))
    charged = get("privacy_charged")
    _check_float("privacy_charged", charged, optional=False)
    assert isinstance(charged, float)
    if charged < 0:
        raise MalformedRecord(f"privacy_charged: {_show(charged)} is negative")
    _check_float("privacy_remaining", get("privacy_remaining"), optional=True)


def _check_sequence(name: str, value: object, *, allow_list: bool) -> None:
    if not (isinstance(value, tuple) or (allow_list and isinstance(value, list))):
        raise MalformedRecord(
            f"{name}: expected a sequence of strings, got {_show(value)}"
        )
    if not all(isinstance(v, str) for v in value):
        raise MalformedRecord(
            f"{name}: expected a sequence of strings, got {_show(value)}"
        )


_HEX_DIGITS = "0123456789abcdef"


def _is_canonical_dict(payload: object) -> bool:
    """Return ``True`` if ``payload`` is surely a valid payload (a fast path).

    ``False`` means "not sure": :func:`check_payload` then checks field by field.
    """
    if payload.__class__ is not dict:
        return False
    assert isinstance(payload, dict)
    if len(payload) != len(_FIELD_ORDER):
        return False
    try:
        values = _get_fields(payload)
    except KeyError:
        return False
    types = tuple(map(type, values))
    if types != _TYPES and types != _TYPES_NO_REMAINING:
        return False
    (columns, _, decision, _, _, matched_rules, _, _, operation, policy_digest,
     prev_hash, charged, remaining, _, _, _, recipients, request_hash, _, seq,
     time) = values  # fmt: skip
    if seq < 0 or operation not in OPERATIONS or decision not in DECISIONS:
        return False
    if not 0.0 <= charged < math.inf:
        return False
    if remaining is not None and not -math.inf < remaining < math.inf:
        return False
    digests = request_hash + policy_digest + prev_hash
    if len(digests) != 192 or digests.strip(_HEX_DIGITS) or len(prev_hash) != 64:
        return False
    if len(request_hash) != 64:
        return False
    for items in (columns, matched_rules, recipients):
        for item in items:
            if item.__class__ is not str:
                return False
    if not _TIME.fullmatch(time):
        return False
    try:
        datetime.fromisoformat(time[:-1])
    except ValueError:
        return False
    return True


def check_payload(payload: Mapping[str, object]) -> None:
    """Check that a mapping is a record payload in canonical form.

    Parameters
    ----------
    payload : Mapping[str, object]
        A parsed JSON record, as produced by :meth:`DecisionRecord.to_dict`.

    Raises
    ------
    MalformedRecord
        If a field is missing, unknown, of the wrong type or not canonical.
    """
    if _is_canonical_dict(payload):
        return
    if not isinstance(payload, Mapping):
        raise MalformedRecord(
            f"record must be a JSON object, not {type(payload).__name__}"
        )
    if payload.keys() != _FIELD_SET:
        missing = sorted(_FIELD_SET - payload.keys())
        unknown = sorted(payload.keys() - _FIELD_SET)
        parts = [f"missing fields {missing}"] if missing else []
        parts += [f"unknown fields {unknown}"] if unknown else []
        raise MalformedRecord(", ".join(parts))
    _check_shared(payload.__getitem__)
    _parse_time(payload["time"])
    for name in _TUPLE_FIELDS:
        _check_sequence(name, payload[name], allow_list=True)


def encode_payload(payload: Mapping[str, object]) -> bytes:
    """Return the canonical bytes of a checked payload (see :func:`check_payload`).

    Raises
    ------
    MalformedRecord
        If a string cannot be encoded as UTF-8 (a lone surrogate).
    """
    try:
        return _ENCODER.encode(payload).encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedRecord("a string field is not valid Unicode") from None


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One entry of the decision log (LED Art. 25 logging).

    Records hold declared facts about a request and its decision; never raw data
    values, nor the true or noisy answer of a denied query.

    Attributes
    ----------
    seq : int
        Position in the log, from 0.
    time : datetime
        When the decision was taken; aware, UTC.
    operation : str
        One of :data:`OPERATIONS`.
    requester : str
        The requesting service's SAN URI (from mTLS).
    on_behalf_of : str
        The person the request was made for.
    purpose, legal_basis, justification : str
        As declared in the request.
    dataset : str
        Dataset the request concerns.
    columns : tuple[str, ...]
        Columns it touches.
    request_hash : str
        SHA-256 of the request, lowercase hex.
    policy_digest : str
        SHA-256 of the policy that decided, lowercase hex.
    decision : str
        ``"allow"``, ``"deny"`` or ``"error"``.
    matched_rules : tuple[str, ...]
        Ids of the rules that matched.
    reason : str
        The declared rule or the error class; never data values.
    privacy_charged : float
        zCDP rho charged for this request (0.0 if none); ints are converted.
    privacy_remaining : float or None
        Rho left to the requester afterwards, if a budget applies.
    recipients : tuple[str, ...]
        Who receives the result.
    query_id : str
        Request / job identifier, shared with the requester's log.
    method : str
        The RPC name.
    prev_hash : str
        Hex chain hash of record ``seq - 1``; :data:`GENESIS_PREV_HASH` for seq 0.

    Raises
    ------
    MalformedRecord
        If a field has the wrong type or value.
    """

    seq: int
    time: datetime
    operation: str
    requester: str
    on_behalf_of: str
    purpose: str
    legal_basis: str
    justification: str
    dataset: str
    columns: tuple[str, ...]
    request_hash: str
    policy_digest: str
    decision: str
    matched_rules: tuple[str, ...]
    reason: str
    privacy_charged: float
    privacy_remaining: float | None
    recipients: tuple[str, ...]
    query_id: str
    method: str
    prev_hash: str

    def __post_init__(self) -> None:
        for name in ("privacy_charged", "privacy_remaining"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        _check_shared(self.__getattribute__)
        time: object = self.time
        if (
            not isinstance(time, datetime)
            or time.tzinfo is None
            or time.utcoffset() != _ZERO
        ):
            raise MalformedRecord(
                f"time: expected an aware UTC datetime, got {_show(time)}"
            )
        for name in _TUPLE_FIELDS:
            _check_sequence(name, getattr(self, name), allow_list=False)

    def to_dict(self) -> dict[str, object]:
        """Return the record's payload, ready for JSON.

        Returns
        -------
        dict[str, object]
            Every field; the time as an RFC 3339 string, tuples as lists.
        """
        return {
            "seq": self.seq,
            "time": _format_time(self.time),
            "operation": self.operation,
            "requester": self.requester,
            "on_behalf_of": self.on_behalf_of,
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "justification": self.justification,
            "dataset": self.dataset,
            "columns": list(self.columns),
            "request_hash": self.request_hash,
            "policy_digest": self.policy_digest,
            "decision": self.decision,
            "matched_rules": list(self.matched_rules),
            "reason": self.reason,
            "privacy_charged": self.privacy_charged,
            "privacy_remaining": self.privacy_remaining,
            "recipients": list(self.recipients),
            "query_id": self.query_id,
            "method": self.method,
            "prev_hash": self.prev_hash,
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, object]) -> DecisionRecord:
        """Build a record from its payload.

        Parameters
        ----------
        payload : Mapping[str, object]
            As returned by :meth:`to_dict` (lists or tuples for the tuple fields).

        Returns
        -------
        DecisionRecord
            The record.

        Raises
        ------
        MalformedRecord
            If the payload is not a record in canonical form.
        """
        check_payload(payload)
        values: dict[str, Any] = dict(payload)
        values["time"] = _parse_time(payload["time"])
        for name in _TUPLE_FIELDS:
            values[name] = tuple(values[name])
        return cls(**values)

    def canonical_bytes(self) -> bytes:
        """Return the canonical encoding that is hashed and signed.

        Returns
        -------
        bytes
            UTF-8 of ``json.dumps(self.to_dict(), sort_keys=True,
            separators=(",", ":"), ensure_ascii=False)``.

        Raises
        ------
        MalformedRecord
            If a string field cannot be encoded as UTF-8.
        """
        return encode_payload(self.to_dict())

    def placed(self, seq: int, prev_hash: str) -> DecisionRecord:
        """Return this record at position ``seq`` of the chain, after ``prev_hash``.

        The log's writer places each queued record; only the two new fields are
        checked, the others were checked when this record was made.

        Parameters
        ----------
        seq : int
            The record's position, from 0.
        prev_hash : str
            Hex chain hash of record ``seq - 1``.

        Returns
        -------
        DecisionRecord
            A copy with ``seq`` and ``prev_hash`` set.

        Raises
        ------
        MalformedRecord
            If ``seq`` or ``prev_hash`` is malformed.
        """
        fields = {"seq": seq, "prev_hash": prev_hash}
        _check_position(fields.__getitem__)
        placed = object.__new__(type(self))
        for name in self.__slots__:
            object.__setattr__(placed, name, fields.get(name, getattr(self, name)))
        return placed

    def to_json(self) -> str:
        """Return the canonical JSON text (one line).

        Returns
        -------
        str
            The canonical bytes, decoded.
        """
        return self.canonical_bytes().decode("utf-8")

    @classmethod
    def from_json(cls, text: str | bytes) -> DecisionRecord:
        """Parse a record from JSON text.

        Parameters
        ----------
        text : str or bytes
            A JSON object, e.g. one line of an export.

        Returns
        -------
        DecisionRecord
            The record.

        Raises
        ------
        MalformedRecord
            If the text is not JSON or not a record in canonical form.
        """
        try:
            payload = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise MalformedRecord(f"not valid JSON: {exc}") from None
        return cls.from_dict(payload)

    def chain_hash(self) -> str:
        """Return this record's link in the hash chain.

        Returns
        -------
        str
            Hex of ``SHA-256(bytes.fromhex(prev_hash) || canonical bytes)``; the
            next record's ``prev_hash``.
        """
        return sha256(
            bytes.fromhex(self.prev_hash) + self.canonical_bytes()
        ).hexdigest()

    def leaf_hash(self) -> bytes:
        """Return this record's Merkle leaf hash.

        Returns
        -------
        bytes
            ``SHA-256(0x00 || canonical bytes)``.
        """
        return leaf_hash(self.canonical_bytes())


_FIELD_SET = frozenset(f.name for f in fields(DecisionRecord))
_FIELD_ORDER = tuple(sorted(_FIELD_SET))
_get_fields = itemgetter(*_FIELD_ORDER)
_FIELD_TYPES = {
    **dict.fromkeys(_FIELD_ORDER, str),
    "seq": int,
    "columns": list,
    "matched_rules": list,
    "recipients": list,
    "privacy_charged": float,
    "privacy_remaining": float,
}
_TYPES = tuple(_FIELD_TYPES[name] for name in _FIELD_ORDER)
_TYPES_NO_REMAINING = tuple(
    type(None) if name == "privacy_remaining" else _FIELD_TYPES[name]
    for name in _FIELD_ORDER
)

# A whole canonical record line, matched by one regular expression: a fast path
# for verifying exports that avoids building a dict. Each JSON string must be
# written exactly as json.dumps(ensure_ascii=False) writes it; floats are matched
# only in forms that cannot overflow. Anything else falls back to parsing.
_JSON_STR = r'"(?:[^"\\\x00-\x1f]++|\\["\\bfnrt]|\\u00[01][0-9a-f])*+"'
_JSON_FLOAT = r"(?:(?:0|[1-9][0-9]*+)\.[0-9]++|[0-9](?:\.[0-9]++)?e[+-][0-9]{2})"
_JSON_LIST = rf"\[(?:{_JSON_STR}(?:,{_JSON_STR})*+)?\]"
_LINE_FIELDS = {
    **dict.fromkeys(_STR_FIELDS, _JSON_STR),
    **dict.fromkeys(_TUPLE_FIELDS, _JSON_LIST),
    "seq": "(0|[1-9][0-9]*+)",
    "time": r'"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6})Z"',
    "operation": '"(?:' + "|".join(sorted(OPERATIONS)) + ')"',
    "decision": '"(?:' + "|".join(sorted(DECISIONS)) + ')"',
    "request_hash": '"[0-9a-f]{64}"',
    "policy_digest": '"[0-9a-f]{64}"',
    "prev_hash": '"([0-9a-f]{64})"',
    "privacy_charged": _JSON_FLOAT,
    "privacy_remaining": f"(?:-?{_JSON_FLOAT}|null)",
}
assert sorted(_LINE_FIELDS) == list(_FIELD_ORDER)
_LINE = re.compile(
    r"\{" + ",".join(f'"{name}":{_LINE_FIELDS[name]}' for name in _FIELD_ORDER) + r"\}"
)


def scan_line(line: str) -> tuple[int, str] | None:
    """Recognise a canonical record line without parsing it into a dict.

    Parameters
    ----------
    line : str
        One line of an export, without its newline.

    Returns
    -------
    tuple[int, str] or None
        ``(seq, prev_hash)`` if ``line`` is surely a valid record in canonical
        form; ``None`` if not sure (parse it and call :func:`check_payload`).
    """
    match = _LINE.fullmatch(line)
    if match is None:
        return None
    prev_hash, seq, time = match.groups()
    try:
        datetime.fromisoformat(time)
    except ValueError:
        return None
    return int(seq), prev_hash
