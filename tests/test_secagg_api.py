"""The public surface of ``secagg`` and ``secagg.hazmat`` is pinned, and it stands alone."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import secagg
import secagg.hazmat

SECAGG = [
    "MAX_PARTICIPANTS", "MAX_VECTOR_LENGTH", "MODULUS_BITS", "AdvertiseKeys",
    "AggregateResult", "Aggregator", "DecryptionFailed", "Envelope", "FixedPointDecoder",
    "ForwardedShares", "KeyRoster", "MaskedInput", "Message", "Overflow", "Participant",
    "ProtocolViolation", "PublicKeys", "RunRecord", "SecAggError", "ShareKeys",
    "TooFewParticipants", "UnmaskRequest", "Unmasking", "check_bit_budget",
    "decode_ints", "encode_floats", "encode_ints", "majority_threshold", "max_value_bits",
    "parse_message", "run_in_memory",
]  # fmt: skip
HAZMAT = [
    "ELEMENT_SIZE", "MASK_KEY_SIZE", "NONCE_SIZE", "PAIRWISE_MASK_INFO", "PRIME",
    "SECRET_SIZE", "SELF_MASK_INFO", "SHARE_ENCRYPTION_INFO", "RandomBytes", "Share",
    "add_keystream", "combine_shares", "expand_seed", "interpolate_at_zero",
    "open_share", "pairwise_mask_key", "seal_share", "seeded_random_bytes",
    "self_mask_key", "share_associated_data", "share_encryption_key", "split_secret",
]  # fmt: skip


def test_exported_names_are_pinned() -> None:
    assert sorted(secagg.__all__) == sorted(SECAGG)
    assert sorted(secagg.hazmat.__all__) == sorted(HAZMAT)
    for module in (secagg, secagg.hazmat):
        for name in module.__all__:
            assert hasattr(module, name), name
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and not inspect.ismodule(value)
        }
        assert public == set(module.__all__)


def test_one_exception_tree() -> None:
    for error in (
        secagg.TooFewParticipants,
        secagg.ProtocolViolation,
        secagg.DecryptionFailed,
        secagg.Overflow,
    ):
        assert error.__bases__ == (secagg.SecAggError,)


def test_secagg_imports_only_the_standard_library_numpy_and_cryptography() -> None:
    allowed = {"secagg", "numpy", "cryptography", "__future__", "collections", "contextlib",
               "dataclasses", "enum", "functools", "itertools", "math", "os", "struct",
               "time", "typing"}  # fmt: skip
    root = Path(secagg.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
