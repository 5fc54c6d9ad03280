"""C2SP signed notes, checkpoints and verifier keys."""

from __future__ import annotations

import base64
from hashlib import sha256

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from policies.auditlog import (
    MAX_SIGNATURES,
    AuditLogError,
    Checkpoint,
    MalformedNote,
    NoteSignature,
    SignatureInvalid,
    add_signature,
    encode_verifier_key,
    key_id,
    leaf_hash,
    parse_note,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    verify_note,
)

# Known-answer vectors from golang.org/x/mod/sumdb/note (note_test.go), the
# reference implementation of c2sp.org/signed-note.
PETER_SKEY = (
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
)
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKv"
    "qfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG0"
    "1oOTGwnWLox33WWd1RvMc+QQ=\n"
)
# The example of c2sp.org/tlog-checkpoint (signed by a key we do not have).
SPEC_CHECKPOINT = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4U"
    "RYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)

ORIGIN = "audit.agency-a.example/policy-decisions"


def peter_key() -> Ed25519PrivateKey:
    encoded = PETER_SKEY.split("+", 4)[4]
    raw = base64.b64decode(encoded)
    assert raw[0] == 1
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


@pytest.fixture(scope="module")
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(sha256(b"accord test log key").digest())


@pytest.fixture(scope="module")
def witness_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(sha256(b"accord test witness").digest())


@pytest.fixture
def checkpoint() -> Checkpoint:
    return Checkpoint(ORIGIN, 20000, leaf_hash(b"some root"))


# --- known answers --------------------------------------------------------------


def test_go_known_answer_signature() -> None:
    assert sign_note(GO_TEXT, "PeterNeumann", peter_key()) == GO_TEXT + "\n" + PETER_SIG


def test_go_known_answer_verifier_keys() -> None:
    public = peter_key().public_key()
    assert encode_verifier_key("PeterNeumann", public) == PETER_VKEY
    assert key_id("PeterNeumann", public) == bytes.fromhex("c74f20a3")
    name, parsed = parse_verifier_key(PETER_VKEY)
    assert name == "PeterNeumann"
    assert parsed.public_bytes_raw() == public.public_bytes_raw()
    name, enoch = parse_verifier_key(ENOCH_VKEY)
    assert name == "EnochRoot"
    assert encode_verifier_key(name, enoch) == ENOCH_VKEY


def test_go_signature_lines_parse() -> None:
    # Not a checkpoint, but the signature block is parsed before the body.
    with pytest.raises(MalformedNote, match="checkpoint has 2 lines"):
        parse_note(GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG)
    with pytest.raises(MalformedNote, match="note line 4: signature"):
        parse_note(GO_TEXT + "\n" + PETER_SIG[:60] + "\n" + ENOCH_SIG)


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        # Go: wrong-length key with adjusted key ID; unknown algorithm.
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "not canonical base64",
        ),
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEQ==",
            "32",
        ),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "type"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "match"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "hex"),
        (
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "space",
        ),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "empty"),
        ("PeterNeumann+c74f20a3", "<name>"),
        ("PeterNeumann+c74f20a3+", "type"),
    ],
)
def test_bad_verifier_keys(vkey: str, message: str) -> None:
    with pytest.raises(MalformedNote, match=message):
        parse_verifier_key(vkey)


def test_mangled_verifier_keys_rejected() -> None:
    # As in Go's TestNewVerifier: every proper substring and every byte bump fails.
    for i in range(len(PETER_VKEY)):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(MalformedNote):
                    parse_verifier_key(PETER_VKEY[i:j])
    for i in range(len(PETER_VKEY)):
        mangled = PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
        with pytest.raises(MalformedNote):
            parse_verifier_key(mangled)


def test_spec_example_parses() -> None:
    cp, sigs = parse_note(SPEC_CHECKPOINT)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode(
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    )
    assert cp.body() == SPEC_CHECKPOINT.split("\n\n")[0] + "\n"
    assert len(sigs) == 1 and sigs[0].key_name == cp.origin
    assert sigs[0].line() == SPEC_CHECKPOINT.split("\n\n")[1]


# --- checkpoints ------------------------------------------------------------------


def test_body_format(checkpoint: Checkpoint) -> None:
    encoded = base64.b64encode(checkpoint.root_hash).decode()
    assert checkpoint.body() == f"{ORIGIN}\n20000\n{encoded}\n"
    assert Checkpoint("o", 0, bytes(32)).body() == "o\n0\n" + "A" * 43 + "=\n"
    with_ext = Checkpoint("o", 1, bytes(32), ("ext one", "ext two"))
    assert with_ext.body().endswith("=\next one\next two\n")


def test_sign_and_verify(checkpoint: Checkpoint, log_key: Ed25519PrivateKey) -> None:
    note = sign_checkpoint(checkpoint, ORIGIN, log_key)
    body, sig_block = note.split("\n\n")
    assert body + "\n" == checkpoint.body()
    assert sig_block.startswith(f"\u2014 {ORIGIN} ")
    raw = base64.b64decode(sig_block.split(" ")[-1])
    assert raw[:4] == key_id(ORIGIN, log_key.public_key())
    assert (
        raw[:4]
        == sha256(
            ORIGIN.encode() + b"\n\x01" + log_key.public_key().public_bytes_raw()
        ).digest()[:4]
    )
    assert len(raw) == 68
    assert verify_note(note, ORIGIN, log_key.public_key()) == checkpoint
    assert verify_note(note.encode(), ORIGIN, log_key.public_key()) == checkpoint
    parsed, sigs = parse_note(note)
    assert parsed == checkpoint
    assert sigs == [NoteSignature(ORIGIN, raw[:4], raw[4:])]


def test_extension_lines_round_trip(log_key: Ed25519PrivateKey) -> None:
    cp = Checkpoint(ORIGIN, 7, bytes(range(32)), ("time 1700000000",))
    note = sign_checkpoint(cp, ORIGIN, log_key)
    assert verify_note(note, ORIGIN, log_key.public_key()) == cp


@pytest.mark.parametrize(
    "edit",
    [
        lambda n: n.replace("\n20000\n", "\n20001\n"),
        lambda n: n.replace(
            ORIGIN + "\n", "audit.agency-b.example/policy-decisions\n", 1
        ),
        lambda n: n.replace("=\n\n", "=\nextra\n\n"),
    ],
    ids=["size", "origin", "extension"],
)
def test_tampered_body_fails(
    checkpoint: Checkpoint, log_key: Ed25519PrivateKey, edit: object
) -> None:
    note = sign_checkpoint(checkpoint, ORIGIN, log_key)
    tampered = edit(note)  # type: ignore[operator]
    assert tampered != note
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify_note(tampered, ORIGIN, log_key.public_key())


def test_tampered_root_fails(
    checkpoint: Checkpoint, log_key: Ed25519PrivateKey
) -> None:
    note = sign_checkpoint(checkpoint, ORIGIN, log_key)
    forged = Checkpoint(ORIGIN, checkpoint.size, leaf_hash(b"other"))
    tampered = forged.body() + note[len(checkpoint.body()) :]
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify_note(tampered, ORIGIN, log_key.public_key())


def test_wrong_key_or_name(
    checkpoint: Checkpoint,
    log_key: Ed25519PrivateKey,
    witness_key: Ed25519PrivateKey,
) -> None:
    note = sign_checkpoint(checkpoint, ORIGIN, log_key)
    with pytest.raises(SignatureInvalid, match="no signature by"):
        verify_note(note, ORIGIN, witness_key.public_key())
    with pytest.raises(SignatureInvalid, match="no signature by"):
        verify_note(note, "audit.other.example", log_key.public_key())
    # Another key under the log's name (a forger, or a rotated key) is ignored.
    forged = sign_checkpoint(checkpoint, ORIGIN, witness_key)
    with pytest.raises(SignatureInvalid, match="no signature by"):
        verify_note(forged, ORIGIN, log_key.public_key())


def test_corrupt_signature_by_pinned_key(
    checkpoint: Checkpoint, log_key: Ed25519PrivateKey, witness_key: Ed25519PrivateKey
) -> None:
    note = sign_checkpoint(checkpoint, ORIGIN, log_key)
    _, sigs = parse_note(note)
    bad = NoteSignature(ORIGIN, sigs[0].key_id, bytes(64))
    short = NoteSignature(ORIGIN, sigs[0].key_id, b"x")
    for sig in (bad, short):
        corrupted = checkpoint.body() + "\n" + sig.line()
        with pytest.raises(SignatureInvalid, match="does not verify"):
            verify_note(corrupted, ORIGIN, log_key.public_key())
    # One bad signature by the pinned key rejects the note even beside a good one.
    both = note + bad.line()
    with pytest.raises(SignatureInvalid):
        verify_note(both, ORIGIN, log_key.public_key())


def test_witness_cosignature(
    checkpoint: Checkpoint, log_key: Ed25519PrivateKey, witness_key: Ed25519PrivateKey
) -> None:
    note = sign_checkpoint(checkpoint, ORIGIN, log_key)
    witness = "witness.agency-b.example"
    cosigned = add_signature(note, witness, witness_key)
    assert cosigned.startswith(note)
    assert verify_note(cosigned, ORIGIN, log_key.public_key()) == checkpoint
    assert verify_note(cosigned, witness, witness_key.public_key()) == checkpoint
    _, sigs = parse_note(cosigned)
    assert [s.key_name for s in sigs] == [ORIGIN, witness]
    # Signing again replaces the old signature rather than duplicating it.
    assert add_signature(cosigned, witness, witness_key) == cosigned
    assert add_signature(cosigned.encode(), ORIGIN, log_key).count(ORIGIN + " ") == 1
    # Unknown signatures (the spec example's, other witnesses') are ignored.
    spec_cosigned = cosigned + SPEC_CHECKPOINT.split("\n\n")[1]
    assert verify_note(spec_cosigned, ORIGIN, log_key.public_key()) == checkpoint


def test_sixteen_and_too_many_signatures(
    checkpoint: Checkpoint, log_key: Ed25519PrivateKey
) -> None:
    note = sign_checkpoint(checkpoint, ORIGIN, log_key)
    sig = parse_note(SPEC_CHECKPOINT)[1][0].line()
    assert verify_note(note + sig * 15, ORIGIN, log_key.public_key()) == checkpoint
    limit = note + sig * (MAX_SIGNATURES - 1)
    assert verify_note(limit, ORIGIN, log_key.public_key()) == checkpoint
    with pytest.raises(MalformedNote, match="more than"):
        parse_note(limit + sig)
    with pytest.raises(MalformedNote, match="already has"):
        add_signature(limit, "witness.example", log_key)


# --- strict parsing ---------------------------------------------------------------

GOOD_BODY = f"{ORIGIN}\n5\n{base64.b64encode(bytes(32)).decode()}\n"
GOOD_SIG = parse_note(SPEC_CHECKPOINT)[1][0].line()


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (GOOD_BODY, "no blank line"),
        (GOOD_BODY + "\n", "no signature lines"),
        (GOOD_BODY + "\n" + GOOD_SIG[:-1], "end with a newline"),
        (GOOD_BODY + "\n" + GOOD_SIG + "Unexpected line.\n", "note line 6: signature"),
        (GOOD_BODY + "\n" + GOOD_SIG.replace("\u2014", "-"), "em dash"),
        (GOOD_BODY + "\n" + GOOD_SIG.replace("\u2014 ", "\u2014"), "em dash"),
        (GOOD_BODY + "\n" + "\u2014 nospace\n", "no space after"),
        (GOOD_BODY + "\n" + "\u2014 a+b AAAAAAAA\n", "space or '\\+'"),
        (GOOD_BODY + "\n" + "\u2014 a\u00a0b AAAAAAAA\n", "space or '\\+'"),
        (GOOD_BODY + "\n" + "\u2014  AAAAAAAA\n", "key name is empty"),
        (GOOD_BODY + "\n" + "\u2014 name AAAA\n", "need a 4-byte key ID"),
        (GOOD_BODY + "\n" + "\u2014 name AAAA AAAAAAAA\n", "not valid base64"),
        (GOOD_BODY + "\n" + "\u2014 name AAAAAA=\n", "not valid base64"),
        (GOOD_BODY + "\n" + "\u2014 name AAAAAAB=\n", "not canonical base64"),
        ("\x01" + GOOD_BODY + "\n" + GOOD_SIG, "note line 1: control"),
        (GOOD_BODY.replace("\n5\n", "\n5\r\n") + "\n" + GOOD_SIG, "line 2: control"),
        (GOOD_BODY.replace("\n5\n", "\n05\n") + "\n" + GOOD_SIG, "leading zeros"),
        (GOOD_BODY.replace("\n5\n", "\n+5\n") + "\n" + GOOD_SIG, "line 2"),
        (GOOD_BODY.replace("\n5\n", "\n-5\n") + "\n" + GOOD_SIG, "line 2"),
        (GOOD_BODY.replace("\n5\n", "\n\uff15\n") + "\n" + GOOD_SIG, "line 2"),
        (GOOD_BODY.replace("\n5\n", "\n 5\n") + "\n" + GOOD_SIG, "line 2"),
        (GOOD_BODY.replace("\n5\n", f"\n{2**64}\n") + "\n" + GOOD_SIG, "uint64"),
        (GOOD_BODY.replace("\n5\n", "\n5\n\n") + "\n" + GOOD_SIG, "line 3 is empty"),
        (f"{ORIGIN}\n5\n\n" + GOOD_SIG, "2 lines"),
        (f"{ORIGIN}\n5\nAAAA\n\n" + GOOD_SIG, "3 bytes, expected 32"),
        (f"{ORIGIN}\n5\n{'A' * 43}\n\n" + GOOD_SIG, "line 3: root hash"),
        (f"\n5\n{'A' * 43}=\n\n" + GOOD_SIG, "line 1 is empty"),
        (b"\xff" + GOOD_BODY.encode() + b"\n" + GOOD_SIG.encode(), "UTF-8"),
        ("\ud800" + GOOD_BODY + "\n" + GOOD_SIG, "UTF-8"),
    ],
)
def test_malformed_notes(note: str | bytes, message: str) -> None:
    with pytest.raises(MalformedNote, match=message):
        parse_note(note)


def test_good_note_parses() -> None:
    cp, sigs = parse_note(GOOD_BODY + "\n" + GOOD_SIG)
    assert (cp.origin, cp.size, cp.root_hash) == (ORIGIN, 5, bytes(32))
    assert len(sigs) == 1
    max_size = GOOD_BODY.replace("\n5\n", f"\n{2**64 - 1}\n")
    assert parse_note(max_size + "\n" + GOOD_SIG)[0].size == 2**64 - 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": "", "size": 1, "root_hash": bytes(32)},
        {"origin": "a\nb", "size": 1, "root_hash": bytes(32)},
        {"origin": "a", "size": -1, "root_hash": bytes(32)},
        {"origin": "a", "size": True, "root_hash": bytes(32)},
        {"origin": "a", "size": 2**64, "root_hash": bytes(32)},
        {"origin": "a", "size": 1, "root_hash": bytes(31)},
        {"origin": "a", "size": 1, "root_hash": "x" * 32},
        {"origin": "a", "size": 1, "root_hash": bytes(32), "extensions": ("",)},
        {"origin": "a", "size": 1, "root_hash": bytes(32), "extensions": ("a\nb",)},
        {"origin": "a", "size": 1, "root_hash": bytes(32), "extensions": ["x"]},
    ],
)
def test_checkpoint_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(MalformedNote):
        Checkpoint(**kwargs)  # type: ignore[arg-type]


def test_error_tree(checkpoint: Checkpoint, log_key: Ed25519PrivateKey) -> None:
    assert issubclass(MalformedNote, AuditLogError)
    assert issubclass(MalformedNote, ValueError)
    assert issubclass(SignatureInvalid, AuditLogError)
    with pytest.raises(MalformedNote, match="space"):
        sign_checkpoint(checkpoint, "bad name", log_key)
    with pytest.raises(MalformedNote, match="empty"):
        sign_checkpoint(checkpoint, "", log_key)
    with pytest.raises(TypeError):
        sign_checkpoint(checkpoint, ORIGIN, log_key.public_key())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify_note(sign_checkpoint(checkpoint, ORIGIN, log_key), ORIGIN, log_key)  # type: ignore[arg-type]
    with pytest.raises(MalformedNote, match="newline"):
        sign_note("no newline", ORIGIN, log_key)
    with pytest.raises(MalformedNote, match="control"):
        sign_note("tab\there\n", ORIGIN, log_key)
    with pytest.raises(MalformedNote):
        add_signature("not a note", ORIGIN, log_key)
