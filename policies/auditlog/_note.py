"""C2SP signed notes with Ed25519 signatures, and tlog checkpoints carried in them.

A checkpoint (c2sp.org/tlog-checkpoint) is the note text::

    <origin>
    <tree size in decimal>
    <base64 root hash>

followed, as in every signed note (c2sp.org/signed-note), by a blank line and one
line per signature: an em dash (U+2014), a space, the key name, a space and
``base64(key ID || signature)``. For Ed25519 (signature type 0x01) the key ID is
the first four bytes of ``SHA-256(key name || 0x0A || 0x01 || public key)`` and the
signature is over the note text, final newline included.

Verifiers pin a key by name and public key, conveniently as one verifier-key
string ``<name>+<hex key ID>+<base64(0x01 || public key)>``. Signatures by other
keys are ignored (key rotation, witness cosignatures); a signature by the pinned
key that fails to verify rejects the whole note.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from hashlib import sha256

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ._errors import MalformedNote, SignatureInvalid
from ._merkle import HASH_SIZE

__all__ = [
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteSignature",
    "add_signature",
    "encode_verifier_key",
    "key_id",
    "parse_note",
    "parse_verifier_key",
    "sign_checkpoint",
    "sign_note",
    "verify_note",
]

MAX_SIGNATURES = 100
"""Most signature lines accepted in one note (the spec requires at least 16)."""

_SIG_PREFIX = "\u2014 "  # em dash, space
_ED25519 = b"\x01"
_ED25519_SIG_SIZE = 64
_MAX_TREE_SIZE = 2**64 - 1
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    """Decode canonical standard base64 (RFC 4648 section 4), or raise."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise MalformedNote(f"{what} is not valid base64: {text!r}") from None
    if _b64encode(data) != text:
        raise MalformedNote(f"{what} is not canonical base64: {text!r}")
    return data


def _check_key_name(name: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"key name must be str, not {type(name).__name__}")
    if not name:
        raise MalformedNote("key name is empty")
    if "+" in name or any(c.isspace() for c in name):
        raise MalformedNote(f"key name {name!r} contains a space or '+'")
    if _CONTROL.search(name):
        raise MalformedNote(f"key name {name!r} contains a control character")


def _raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    if not isinstance(public_key, Ed25519PublicKey):
        raise TypeError(
            f"public_key must be an Ed25519PublicKey, not {type(public_key).__name__}"
        )
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key_name: str, public_key: Ed25519PublicKey) -> bytes:
    """Compute the signed-note key ID of an Ed25519 key.

    Parameters
    ----------
    key_name : str
        The key name (for a log, its origin).
    public_key : Ed25519PublicKey
        The public key.

    Returns
    -------
    bytes
        ``SHA-256(key_name || 0x0A || 0x01 || public key)[:4]``.

    Raises
    ------
    MalformedNote
        If ``key_name`` is empty or contains a space or ``+``.
    """
    _check_key_name(key_name)
    raw = _raw_public_key(public_key)
    return sha256(key_name.encode("utf-8") + b"\n" + _ED25519 + raw).digest()[:4]


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line of a signed note.

    Attributes
    ----------
    key_name : str
        The signer's key name.
    key_id : bytes
        The 4-byte key ID.
    signature : bytes
        The signature bytes (64 for Ed25519; other types may differ).
    """

    key_name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """Return the signature line, newline included."""
        return (
            f"{_SIG_PREFIX}{self.key_name} {_b64encode(self.key_id + self.signature)}\n"
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A transparency-log checkpoint: the signed head of the log's Merkle tree.

    Attributes
    ----------
    origin : str
        The log's identity, e.g. ``audit.agency-a.example/policy-decisions``.
    size : int
        Number of records (leaves) in the tree.
    root_hash : bytes
        The 32-byte RFC 6962 root hash of the tree at ``size``.
    extensions : tuple[str, ...]
        Optional extension lines (non-empty, opaque); Accord writes none.

    Raises
    ------
    MalformedNote
        If a field cannot be written as a C2SP checkpoint.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        origin: object = self.origin
        size: object = self.size
        root_hash: object = self.root_hash
        extensions: object = self.extensions
        if not isinstance(origin, str) or not origin:
            raise MalformedNote("checkpoint origin must be a non-empty str")
        if "\n" in origin or _CONTROL.search(origin):
            raise MalformedNote("checkpoint origin contains a control character")
        if (
            not isinstance(size, int)
            or isinstance(size, bool)
            or not 0 <= size <= _MAX_TREE_SIZE
        ):
            raise MalformedNote(f"checkpoint size {size!r} is not a uint64")
        if not isinstance(root_hash, bytes) or len(root_hash) != HASH_SIZE:
            raise MalformedNote(f"checkpoint root hash must be {HASH_SIZE} bytes")
        if not isinstance(extensions, tuple):
            raise MalformedNote("checkpoint extensions must be a tuple of str")
        for ext in extensions:
            if not isinstance(ext, str) or not ext:
                raise MalformedNote("checkpoint extension lines must be non-empty str")
            if "\n" in ext or _CONTROL.search(ext):
                raise MalformedNote("checkpoint extension contains a control character")

    def body(self) -> str:
        """Return the note text that is signed.

        Returns
        -------
        str
            The lines origin, size and base64 root hash, then any extension
            lines, each ending in a newline.
        """
        lines = [self.origin, str(self.size), _b64encode(self.root_hash)]
        lines.extend(self.extensions)
        return "\n".join(lines) + "\n"


def _as_text(note: str | bytes) -> str:
    if isinstance(note, bytes):
        try:
            return note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedNote(f"note is not valid UTF-8 (byte {exc.start})") from None
    if not isinstance(note, str):
        raise TypeError(f"note must be str or bytes, not {type(note).__name__}")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedNote(f"note is not valid UTF-8 (char {exc.start})") from None
    return note


def _split_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and its signatures, checking syntax only."""
    note = _as_text(note)
    bad = _CONTROL.search(note)
    if bad:
        where = note.count("\n", 0, bad.start()) + 1
        raise MalformedNote(
            f"note line {where}: control character U+{ord(bad.group()):04X}"
        )
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedNote("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise MalformedNote("note has no signature lines")
    if not block.endswith("\n"):
        raise MalformedNote("note does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(
            f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}"
        )
    first = text.count("\n") + 2  # 1-based note line number of the first signature
    signatures = []
    for number, line in enumerate(lines, start=first):
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNote(
                f"note line {number}: signature line must start with an em dash "
                "(U+2014) and a space"
            )
        name, sep, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep:
            raise MalformedNote(f"note line {number}: no space after the key name")
        try:
            _check_key_name(name)
        except MalformedNote as exc:
            raise MalformedNote(f"note line {number}: {exc}") from None
        raw = _b64decode(encoded, f"note line {number}: signature")
        if len(raw) < 5:
            raise MalformedNote(
                f"note line {number}: signature has {len(raw)} bytes, "
                "need a 4-byte key ID and a signature"
            )
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return text, signatures


def _parse_checkpoint(text: str) -> Checkpoint:
    lines = text[:-1].split("\n")  # text ends with "\n"
    if len(lines) < 3:
        raise MalformedNote(
            f"checkpoint has {len(lines)} lines, needs origin, size and root hash"
        )
    for number, line in enumerate(lines, start=1):
        if not line:
            raise MalformedNote(f"checkpoint line {number} is empty")
    origin, size_text, root_text = lines[:3]
    if not _DECIMAL.fullmatch(size_text):
        raise MalformedNote(
            f"checkpoint line 2: tree size {size_text!r} is not a decimal number "
            "without leading zeros"
        )
    size = int(size_text)
    if size > _MAX_TREE_SIZE:
        raise MalformedNote(f"checkpoint line 2: tree size {size} exceeds uint64")
    root_hash = _b64decode(root_text, "checkpoint line 3: root hash")
    if len(root_hash) != HASH_SIZE:
        raise MalformedNote(
            f"checkpoint line 3: root hash has {len(root_hash)} bytes, "
            f"expected {HASH_SIZE}"
        )
    return Checkpoint(origin, size, root_hash, tuple(lines[3:]))


def parse_note(note: str | bytes) -> tuple[Checkpoint, list[NoteSignature]]:
    """Parse a signed checkpoint note without verifying any signature.

    Parameters
    ----------
    note : str or bytes
        The note text (bytes are decoded as UTF-8).

    Returns
    -------
    tuple[Checkpoint, list[NoteSignature]]
        The checkpoint and the signatures, in note order.

    Raises
    ------
    MalformedNote
        If the note or its checkpoint body is not well formed; the message names
        the offending line.
    """
    text, signatures = _split_note(note)
    return _parse_checkpoint(text), signatures


def _check_private_key(private_key: Ed25519PrivateKey) -> Ed25519PublicKey:
    if not isinstance(private_key, Ed25519PrivateKey):
        raise TypeError(
            "private_key must be an Ed25519PrivateKey, "
            f"not {type(private_key).__name__}"
        )
    return private_key.public_key()


def _signature(
    text: str, key_name: str, private_key: Ed25519PrivateKey
) -> NoteSignature:
    kid = key_id(key_name, _check_private_key(private_key))
    return NoteSignature(key_name, kid, private_key.sign(text.encode("utf-8")))


def sign_note(text: str, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign an arbitrary note text.

    Parameters
    ----------
    text : str
        The note text: UTF-8, ending in a newline, no control characters other
        than newline.
    key_name : str
        The signer's key name.
    private_key : Ed25519PrivateKey
        The signing key.

    Returns
    -------
    str
        ``text``, a blank line and one signature line.

    Raises
    ------
    MalformedNote
        If ``text`` cannot be the text of a signed note or ``key_name`` is invalid.
    """
    text = _as_text(text)
    if not text.endswith("\n"):
        raise MalformedNote("note text must end with a newline")
    if _CONTROL.search(text):
        raise MalformedNote("note text contains a control character")
    return text + "\n" + _signature(text, key_name, private_key).line()


def sign_checkpoint(
    checkpoint: Checkpoint, key_name: str, private_key: Ed25519PrivateKey
) -> str:
    """Sign a checkpoint as a C2SP signed note.

    Parameters
    ----------
    checkpoint : Checkpoint
        The tree head to sign.
    key_name : str
        The log's key name; it should equal ``checkpoint.origin``.
    private_key : Ed25519PrivateKey
        The log's signing key.

    Returns
    -------
    str
        The signed note: ``checkpoint.body()``, a blank line, one signature line.

    Raises
    ------
    MalformedNote
        If ``key_name`` is empty or contains a space or ``+``.
    """
    return sign_note(checkpoint.body(), key_name, private_key)


def add_signature(
    note: str | bytes, key_name: str, private_key: Ed25519PrivateKey
) -> str:
    """Add a signature (a witness cosignature) to a signed checkpoint note.

    The existing signatures are not verified here: a witness should call
    :func:`verify_note` with the log's key, and check consistency with the last
    checkpoint it signed, before adding its own. A previous signature by the same
    key name and key ID is replaced.

    Parameters
    ----------
    note : str or bytes
        A signed checkpoint note.
    key_name : str
        The cosigner's key name.
    private_key : Ed25519PrivateKey
        The cosigner's key.

    Returns
    -------
    str
        The note with the new signature line appended.

    Raises
    ------
    MalformedNote
        If the note is not a well-formed checkpoint note, ``key_name`` is invalid,
        or the note would exceed :data:`MAX_SIGNATURES`.
    """
    text, signatures = _split_note(note)
    _parse_checkpoint(text)
    new = _signature(text, key_name, private_key)
    kept = [
        s for s in signatures if (s.key_name, s.key_id) != (new.key_name, new.key_id)
    ]
    if len(kept) + 1 > MAX_SIGNATURES:
        raise MalformedNote(f"note already has {MAX_SIGNATURES} signatures")
    return text + "\n" + "".join(s.line() for s in [*kept, new])


def verify_note(
    note: str | bytes, key_name: str, public_key: Ed25519PublicKey
) -> Checkpoint:
    """Verify a signed checkpoint note against one pinned Ed25519 key.

    Signatures by other keys (another name, or the same name with another key ID)
    are ignored. Every signature by the pinned key must verify.

    Parameters
    ----------
    note : str or bytes
        The signed checkpoint note.
    key_name : str
        The pinned key name.
    public_key : Ed25519PublicKey
        The pinned public key.

    Returns
    -------
    Checkpoint
        The checkpoint, now authenticated.

    Raises
    ------
    MalformedNote
        If the note is not well formed.
    SignatureInvalid
        If the note has no signature by the key, or one that does not verify.
    """
    text, signatures = _split_note(note)
    checkpoint = _parse_checkpoint(text)
    kid = key_id(key_name, public_key)
    message = text.encode("utf-8")
    found = False
    for signature in signatures:
        if signature.key_name != key_name or signature.key_id != kid:
            continue
        found = True
        try:
            if len(signature.signature) != _ED25519_SIG_SIZE:
                raise InvalidSignature
            public_key.verify(signature.signature, message)
        except InvalidSignature:
            raise SignatureInvalid(
                f"signature by {key_name}+{kid.hex()} does not verify"
            ) from None
    if not found:
        raise SignatureInvalid(f"note has no signature by {key_name}+{kid.hex()}")
    return checkpoint


def encode_verifier_key(key_name: str, public_key: Ed25519PublicKey) -> str:
    """Encode a key as a signed-note verifier key string.

    Parameters
    ----------
    key_name : str
        The key name.
    public_key : Ed25519PublicKey
        The public key.

    Returns
    -------
    str
        ``<name>+<8 hex digits of key ID>+<base64(0x01 || public key)>``.

    Raises
    ------
    MalformedNote
        If ``key_name`` is empty or contains a space or ``+``.
    """
    kid = key_id(key_name, public_key)
    return (
        f"{key_name}+{kid.hex()}+{_b64encode(_ED25519 + _raw_public_key(public_key))}"
    )


def parse_verifier_key(vkey: str) -> tuple[str, Ed25519PublicKey]:
    """Parse a signed-note verifier key string.

    Parameters
    ----------
    vkey : str
        ``<name>+<8 hex digits of key ID>+<base64(0x01 || public key)>``.

    Returns
    -------
    tuple[str, Ed25519PublicKey]
        The key name and the public key.

    Raises
    ------
    MalformedNote
        If the string is malformed, the key type is not Ed25519, or the key ID
        does not match the name and key.
    """
    if not isinstance(vkey, str):
        raise TypeError(f"verifier key must be str, not {type(vkey).__name__}")
    name, _, rest = vkey.partition("+")
    hex_id, sep, encoded = rest.partition("+")
    if not sep:
        raise MalformedNote("verifier key must be <name>+<key ID>+<key>")
    try:
        _check_key_name(name)
    except MalformedNote as exc:
        raise MalformedNote(f"verifier key: {exc}") from None
    if not _KEY_ID_HEX.fullmatch(hex_id):
        raise MalformedNote(
            f"verifier key: key ID {hex_id!r} is not 8 lowercase hex digits"
        )
    data = _b64decode(encoded, "verifier key: key")
    if not data or data[:1] != _ED25519:
        kind = f"0x{data[0]:02x}" if data else "missing"
        raise MalformedNote(f"verifier key: key type {kind} is not Ed25519 (0x01)")
    if len(data) != 33:
        raise MalformedNote(
            f"verifier key: Ed25519 key has {len(data) - 1} bytes, expected 32"
        )
    try:
        public_key = Ed25519PublicKey.from_public_bytes(data[1:])
    except ValueError:
        raise MalformedNote("verifier key: not an Ed25519 public key") from None
    if key_id(name, public_key).hex() != hex_id:
        raise MalformedNote("verifier key: key ID does not match the name and key")
    return name, public_key
