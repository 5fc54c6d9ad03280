"""RFC 6962 / RFC 9162 Merkle tree: hashing, proofs, verification."""

from __future__ import annotations

import random
from collections.abc import Sequence
from hashlib import sha256

import pytest

from policies.auditlog import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# --- a naive implementation, straight from the RFC 9162 definitions -------------


def _k(n: int) -> int:
    """Largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = _k(n)
    return sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def naive_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_mth(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_mth(leaves[:k])]


def naive_subproof(m: int, leaves: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [naive_mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*naive_subproof(m, leaves[:k], b), naive_mth(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), naive_mth(leaves[:k])]


def naive_proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    return naive_subproof(m, leaves, True)


def make_leaves(n: int) -> list[bytes]:
    return [leaf_hash(b"record %d" % i) for i in range(n)]


# --- known-answer vectors (transparency-dev/merkle testonly/constants.go) -------

KAT_INPUTS = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
KAT_ROOTS = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]

# (index, size, proof) and (old, new, proof) from transparency-dev/merkle
# proof/verify_test.go (their leaf numbers are 1-based; these indices are 0-based).
KAT_INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
KAT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


@pytest.fixture(scope="module")
def kat_tree() -> MerkleTree:
    return MerkleTree(leaf_hash(d) for d in KAT_INPUTS)


def test_hash_primitives() -> None:
    assert EMPTY_ROOT == KAT_ROOTS[0]
    assert leaf_hash(b"") == KAT_ROOTS[1]
    assert (
        node_hash(b"a" * 32, b"b" * 32)
        == sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert root([]) == EMPTY_ROOT


def test_known_roots(kat_tree: MerkleTree) -> None:
    leaves = [leaf_hash(d) for d in KAT_INPUTS]
    for size, expected in enumerate(KAT_ROOTS):
        assert kat_tree.root_at(size) == expected
        assert root(leaves[:size]) == expected
        assert MerkleTree(leaves[:size]).root() == expected


@pytest.mark.parametrize(("index", "size", "proof"), KAT_INCLUSION)
def test_known_inclusion_proofs(
    kat_tree: MerkleTree, index: int, size: int, proof: list[str]
) -> None:
    expected = [bytes.fromhex(p) for p in proof]
    assert kat_tree.inclusion_proof(index, size) == expected
    assert verify_inclusion(
        leaf_hash(KAT_INPUTS[index]), index, size, expected, KAT_ROOTS[size]
    )


@pytest.mark.parametrize(("old", "new", "proof"), KAT_CONSISTENCY)
def test_known_consistency_proofs(
    kat_tree: MerkleTree, old: int, new: int, proof: list[str]
) -> None:
    expected = [bytes.fromhex(p) for p in proof]
    assert kat_tree.consistency_proof(old, new) == expected
    assert verify_consistency(old, new, KAT_ROOTS[old], KAT_ROOTS[new], expected)


# --- against the naive tree ------------------------------------------------------


def test_incremental_roots_sizes_1_to_70() -> None:
    leaves = make_leaves(70)
    tree = MerkleTree()
    for n, value in enumerate(leaves, start=1):
        assert tree.append(value) == n - 1
        assert len(tree) == tree.size == n
        assert tree.root() == naive_mth(leaves[:n])
    for n in range(71):
        assert tree.root_at(n) == naive_mth(leaves[:n])
    assert [tree.leaf(i) for i in range(70)] == leaves


def _flip(value: bytes, bit: int = 0) -> bytes:
    return bytes([value[0] ^ (1 << bit)]) + value[1:]


def check_inclusion(
    tree: MerkleTree, leaves: list[bytes], index: int, size: int
) -> None:
    proof = tree.inclusion_proof(index, size)
    assert proof == naive_path(index, leaves[:size])
    top = naive_mth(leaves[:size])
    leaf = leaves[index]
    assert verify_inclusion(leaf, index, size, proof, top)
    # Negative cases: none of these may verify.
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = _flip(bad[i], i % 8)
        assert not verify_inclusion(leaf, index, size, bad, top), ("flip", i)
    if proof:
        assert not verify_inclusion(leaf, index, size, proof[:-1], top)
        assert not verify_inclusion(leaf, index, size, proof[1:], top)
    assert not verify_inclusion(leaf, index, size, [*proof, leaf], top)
    assert not verify_inclusion(leaf, index, size, [leaf, *proof], top)
    for wrong in (index - 1, index + 1, index ^ 2):
        if wrong != index and 0 <= wrong < size:
            assert not verify_inclusion(leaf, wrong, size, proof, top), ("index", wrong)
    assert not verify_inclusion(leaf, index, size, proof, _flip(top))
    assert not verify_inclusion(_flip(leaf), index, size, proof, top)
    for wrong_size in (size * 2, size // 2, index):
        assert not verify_inclusion(leaf, index, wrong_size, proof, top), wrong_size


@pytest.mark.parametrize("size", range(1, 71))
def test_inclusion_every_index_small_trees(size: int) -> None:
    leaves = make_leaves(size)
    tree = MerkleTree(leaves)
    for index in range(size):
        check_inclusion(tree, leaves, index, size)


@pytest.fixture(scope="module")
def big_tree() -> tuple[MerkleTree, list[bytes]]:
    leaves = make_leaves(2000)
    return MerkleTree(leaves), leaves


@pytest.mark.parametrize("size", [1000, 1023, 1024, 1025, 2000])
def test_inclusion_sampled_big_trees(
    big_tree: tuple[MerkleTree, list[bytes]], size: int
) -> None:
    tree, leaves = big_tree
    rng = random.Random(size)
    indices = {0, 1, size // 2, size - 2, size - 1, *rng.sample(range(size), 12)}
    for index in sorted(indices):
        check_inclusion(tree, leaves, index, size)


def check_consistency(
    tree: MerkleTree, leaves: list[bytes], old: int, new: int
) -> None:
    proof = tree.consistency_proof(old, new)
    expected = naive_proof(old, leaves[:new]) if 0 < old < new else []
    assert proof == expected
    old_root, new_root = naive_mth(leaves[:old]), naive_mth(leaves[:new])
    assert verify_consistency(old, new, old_root, new_root, proof)
    if old == new or old == 0:
        if old != new:
            assert not verify_consistency(old, new, _flip(old_root), new_root, proof)
        return
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = _flip(bad[i], (i + 3) % 8)
        assert not verify_consistency(old, new, old_root, new_root, bad), ("flip", i)
    assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
    assert not verify_consistency(old, new, old_root, new_root, [])
    assert not verify_consistency(old, new, old_root, new_root, [*proof, old_root])
    assert not verify_consistency(old, new, old_root, new_root, [new_root, *proof])
    assert not verify_consistency(old, new, new_root, old_root, proof)
    assert not verify_consistency(old, new, _flip(old_root), new_root, proof)
    assert not verify_consistency(old, new, old_root, _flip(new_root), proof)
    for wrong_old in (old - 1, old + 1, old ^ 2):
        if wrong_old != old and 0 < wrong_old <= new:
            assert not verify_consistency(wrong_old, new, old_root, new_root, proof)
    for wrong_new in (new * 2, new // 2):
        if wrong_new != new:
            assert not verify_consistency(old, wrong_new, old_root, new_root, proof)


def test_consistency_every_pair_up_to_40() -> None:
    leaves = make_leaves(40)
    tree = MerkleTree(leaves)
    for new in range(41):
        for old in range(new + 1):
            check_consistency(tree, leaves, old, new)


def test_consistency_sampled_big_trees(
    big_tree: tuple[MerkleTree, list[bytes]],
) -> None:
    tree, leaves = big_tree
    pairs = [(1, 1000), (999, 1000), (512, 1023), (1023, 1024), (1024, 1025)]
    pairs += [(1000, 2000), (1025, 2000), (1, 2000), (1999, 2000), (1024, 2000)]
    rng = random.Random(7)
    for _ in range(10):
        new = rng.randrange(2, 2001)
        pairs.append((rng.randrange(1, new), new))
    for old, new in pairs:
        check_consistency(tree, leaves, old, new)


# --- edge cases and argument checking --------------------------------------------


def test_trivial_consistency() -> None:
    some = leaf_hash(b"x")
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, some, [])
    assert not verify_consistency(0, 5, some, some, [])  # size 0 has the empty root
    assert not verify_consistency(0, 5, EMPTY_ROOT, some, [some])
    assert not verify_consistency(3, 3, some, EMPTY_ROOT, [])
    assert not verify_consistency(3, 3, some, some, [some])
    assert not verify_consistency(3, 2, some, some, [some])  # time travel
    assert not verify_consistency(-1, 2, some, some, [some])


def test_trivial_inclusion() -> None:
    leaf = leaf_hash(b"data")
    assert verify_inclusion(leaf, 0, 1, [], leaf)
    assert not verify_inclusion(leaf, 0, 1, [], EMPTY_ROOT)
    assert not verify_inclusion(leaf, 1, 1, [], leaf)
    assert not verify_inclusion(leaf, 0, 0, [], leaf)
    assert not verify_inclusion(leaf, -1, 1, [], leaf)
    assert not verify_inclusion(b"", 0, 1, [], b"")  # wrong hash size
    assert not verify_inclusion(leaf, 0, 2, [b"short"], leaf)


def test_argument_checks() -> None:
    tree = MerkleTree(make_leaves(5))
    with pytest.raises(ValueError, match="32 bytes"):
        tree.append(b"short")
    with pytest.raises(TypeError):
        tree.append("x" * 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32 bytes"):
        root([b"short"])
    tree.append(bytearray(leaf_hash(b"ba")))  # type: ignore[arg-type]
    assert tree.leaf(5) == leaf_hash(b"ba")
    with pytest.raises(ValueError):
        tree.root_at(7)
    with pytest.raises(ValueError):
        tree.inclusion_proof(6, 6)
    with pytest.raises(ValueError):
        tree.inclusion_proof(0, 7)
    with pytest.raises(ValueError):
        tree.consistency_proof(4, 3)
    with pytest.raises(ValueError):
        tree.consistency_proof(1, 7)
    with pytest.raises(IndexError):
        tree.leaf(6)
    assert tree.inclusion_proof(5) == tree.inclusion_proof(5, 6)
    assert tree.consistency_proof(3) == tree.consistency_proof(3, 6)
    assert repr(tree) == "MerkleTree(size=6)"


def test_extend_matches_append() -> None:
    leaves = make_leaves(300)
    one = MerkleTree()
    for value in leaves:
        one.append(value)
    other = MerkleTree()
    other.extend(leaves[:100])
    other.extend(iter(leaves[100:]))
    assert one.root() == other.root() == root(leaves) == naive_mth(leaves)
