"""RFC 6962 / RFC 9162 Merkle tree hashing, proof generation and verification.

Hashes are SHA-256 throughout: a leaf is ``SHA-256(0x00 || data)``, an interior
node ``SHA-256(0x01 || left || right)`` and the empty tree ``SHA-256("")``
(RFC 9162 section 2.1.1). Proofs are generated from the PATH and PROOF/SUBPROOF
definitions (sections 2.1.3.1 and 2.1.4.1) and checked with the verification
algorithms of sections 2.1.3.2 and 2.1.4.2; a proof that does not verify makes
the ``verify_*`` functions return ``False`` rather than raise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = sha256(b"").digest()
"""Root hash of the empty tree, ``SHA-256("")``."""

_LEAF = b"\x00"
_NODE = b"\x01"
_MAX_LEVELS = 64  # a tree of 2**64 leaves is far beyond any log


def leaf_hash(data: bytes) -> bytes:
    """Hash one leaf input.

    Parameters
    ----------
    data : bytes
        The leaf input (for the decision log, a record's canonical bytes).

    Returns
    -------
    bytes
        ``SHA-256(0x00 || data)``, 32 bytes.
    """
    return sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two child hashes into their parent.

    Parameters
    ----------
    left, right : bytes
        The child hashes, left then right.

    Returns
    -------
    bytes
        ``SHA-256(0x01 || left || right)``, 32 bytes.
    """
    return sha256(_NODE + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _fold(frontier: Sequence[bytes]) -> bytes:
    """Combine the perfect-subtree roots of a tree, largest first, into its root."""
    if not frontier:
        return EMPTY_ROOT
    acc = frontier[-1]
    for left in reversed(frontier[:-1]):
        acc = sha256(_NODE + left + acc).digest()
    return acc


def _split(n: int) -> int:
    """Return the largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Compute the Merkle tree hash of a list of leaf hashes.

    Parameters
    ----------
    leaf_hashes : Sequence[bytes]
        Leaf hashes (already hashed with :func:`leaf_hash`), in log order.

    Returns
    -------
    bytes
        The RFC 6962 tree hash; :data:`EMPTY_ROOT` for an empty list.

    Raises
    ------
    ValueError
        If a leaf hash is not 32 bytes long.
    """
    frontier: list[bytes] = []
    for n, value in enumerate(leaf_hashes):
        _check_hash(value, "leaf hash")
        h = bytes(value)
        while n & 1:
            h = sha256(_NODE + frontier.pop() + h).digest()
            n >>= 1
        frontier.append(h)
    return _fold(frontier)


class MerkleTree:
    """An append-only RFC 6962 Merkle tree of leaf hashes.

    Appending costs O(1) amortised hashes: the tree keeps the *frontier*, the
    roots of the perfect subtrees that make up the current tree, so the current
    root takes O(log n) hashes. Every leaf hash and every perfect-subtree hash
    is kept as well (about 64 bytes per leaf, packed), so inclusion and
    consistency proofs and past roots need O(log n) hashes each.

    Parameters
    ----------
    leaf_hashes : Iterable[bytes], optional
        Leaf hashes to append at construction.

    Examples
    --------
    >>> tree = MerkleTree([leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")])
    >>> proof = tree.inclusion_proof(2, 3)
    >>> verify_inclusion(leaf_hash(b"c"), 2, 3, proof, tree.root())
    True
    """

    __slots__ = ("_frontier", "_levels", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._size = 0
        self._frontier: list[bytes] = []
        # _levels[k] packs the hashes of the perfect subtrees of height k, left to
        # right, HASH_SIZE bytes each; _levels[0] holds the leaf hashes.
        self._levels: list[bytearray] = [bytearray() for _ in range(_MAX_LEVELS)]
        self.extend(leaf_hashes)

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"MerkleTree(size={self._size})"

    @property
    def size(self) -> int:
        """Number of leaves in the tree."""
        return self._size

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash.

        Parameters
        ----------
        leaf_hash : bytes
            A 32-byte leaf hash (see :func:`leaf_hash`).

        Returns
        -------
        int
            The index of the new leaf.

        Raises
        ------
        ValueError
            If ``leaf_hash`` is not 32 bytes long.
        """
        if len(leaf_hash) != HASH_SIZE or leaf_hash.__class__ is not bytes:
            _check_hash(leaf_hash, "leaf hash")
            leaf_hash = bytes(leaf_hash)
        n = index = self._size
        self._size = n + 1
        self._levels[0].extend(leaf_hash)
        if n & 1:
            # The new leaf completes one or more perfect subtrees: merge them.
            frontier = self._frontier
            levels = self._levels
            h = leaf_hash
            k = 0
            while n & 1:
                h = sha256(_NODE + frontier.pop() + h).digest()
                k += 1
                levels[k].extend(h)
                n >>= 1
            frontier.append(h)
        else:
            self._frontier.append(leaf_hash)
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaf hashes in order.

        Parameters
        ----------
        leaf_hashes : Iterable[bytes]
            32-byte leaf hashes.

        Raises
        ------
        ValueError
            If a leaf hash is not 32 bytes long; the ones before it stay appended.
        """
        append = self.append
        for value in leaf_hashes:
            append(value)

    def leaf(self, index: int) -> bytes:
        """Return the leaf hash at ``index``.

        Parameters
        ----------
        index : int
            Leaf index, ``0 <= index < size``.

        Returns
        -------
        bytes
            The 32-byte leaf hash.

        Raises
        ------
        IndexError
            If ``index`` is out of range.
        """
        if not 0 <= index < self._size:
            raise IndexError(f"leaf index {index} out of range for size {self._size}")
        start = index * HASH_SIZE
        return bytes(self._levels[0][start : start + HASH_SIZE])

    def root(self) -> bytes:
        """Return the root hash of the whole tree.

        Returns
        -------
        bytes
            The current root; :data:`EMPTY_ROOT` while the tree is empty.
        """
        return _fold(self._frontier)

    def root_at(self, size: int) -> bytes:
        """Return the root hash the tree had when it held ``size`` leaves.

        Parameters
        ----------
        size : int
            An earlier (or the current) tree size, ``0 <= size <= self.size``.

        Returns
        -------
        bytes
            The root hash of the first ``size`` leaves.

        Raises
        ------
        ValueError
            If ``size`` is negative or larger than the tree.
        """
        self._check_size(size, "size")
        if size == self._size:
            return self.root()
        if size == 0:
            return EMPTY_ROOT
        return self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the audit path of leaf ``index`` in the tree of ``size`` leaves.

        Parameters
        ----------
        index : int
            Leaf index, ``0 <= index < size``.
        size : int, optional
            Tree size the proof is for; defaults to the current size.

        Returns
        -------
        list[bytes]
            ``PATH(index, D[0:size])`` of RFC 9162 section 2.1.3.1, leaf to root.

        Raises
        ------
        ValueError
            If ``index`` or ``size`` is out of range.
        """
        size = self._size if size is None else size
        self._check_size(size, "size")
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} out of range for tree size {size}")
        proof: list[bytes] = []
        start, end, m = 0, size, index
        while end - start > 1:
            k = _split(end - start)
            if m < k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start += k
                m -= k
        proof.reverse()
        return proof

    def consistency_proof(
        self, old_size: int, new_size: int | None = None
    ) -> list[bytes]:
        """Return the proof that the tree of ``old_size`` leaves prefixes ``new_size``.

        Parameters
        ----------
        old_size : int
            Earlier tree size, ``0 <= old_size <= new_size``.
        new_size : int, optional
            Later tree size; defaults to the current size.

        Returns
        -------
        list[bytes]
            ``PROOF(old_size, D[0:new_size])`` of RFC 9162 section 2.1.4.1; empty
            when ``old_size`` is 0 or equals ``new_size``.

        Raises
        ------
        ValueError
            If a size is out of range or ``old_size > new_size``.
        """
        new_size = self._size if new_size is None else new_size
        self._check_size(new_size, "new_size")
        if not 0 <= old_size <= new_size:
            raise ValueError(
                f"old_size {old_size} out of range for new_size {new_size}"
            )
        if old_size in (0, new_size):
            return []
        proof: list[bytes] = []
        start, end, m, complete = 0, new_size, old_size, True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start += k
                m -= k
                complete = False
        if not complete:
            proof.append(self._subtree(start, end))
        proof.reverse()
        return proof

    def _check_size(self, size: int, what: str) -> None:
        if not 0 <= size <= self._size:
            raise ValueError(f"{what} {size} out of range for tree size {self._size}")

    def _subtree(self, start: int, end: int) -> bytes:
        """Return ``MTH(D[start:end])`` for ``0 <= start < end <= size``."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            level = n.bit_length() - 1
            offset = (start >> level) * HASH_SIZE
            return bytes(self._levels[level][offset : offset + HASH_SIZE])
        k = _split(n)
        return sha256(
            _NODE + self._subtree(start, start + k) + self._subtree(start + k, end)
        ).digest()


def _all_hashes(*values: object) -> bool:
    return all(isinstance(v, bytes | bytearray) and len(v) == HASH_SIZE for v in values)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check an inclusion proof (RFC 9162 section 2.1.3.2).

    Parameters
    ----------
    leaf_hash : bytes
        Hash of the leaf claimed to be in the tree.
    index : int
        Its index in the tree.
    size : int
        Size of the tree the proof and root are for.
    proof : Sequence[bytes]
        The inclusion path, leaf to root.
    root : bytes
        The trusted root hash of the tree of ``size`` leaves.

    Returns
    -------
    bool
        ``True`` only if the proof shows the leaf at ``index`` under ``root``.
    """
    if not 0 <= index < size:
        return False
    if not _all_hashes(leaf_hash, root, *proof):
        return False
    fn, sn = index, size - 1
    r = bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha256(_NODE + p + r).digest()
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = sha256(_NODE + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """Check a consistency proof between two tree heads (RFC 9162 section 2.1.4.2).

    Parameters
    ----------
    old_size, new_size : int
        The earlier and the later tree size.
    old_root, new_root : bytes
        The trusted root hashes at those sizes.
    proof : Sequence[bytes]
        The consistency proof.

    Returns
    -------
    bool
        ``True`` only if the tree of ``old_size`` leaves is a prefix of the tree of
        ``new_size`` leaves. Equal sizes need equal roots and an empty proof; an
        old size of 0 needs ``old_root == EMPTY_ROOT`` and an empty proof.
    """
    if not 0 <= old_size <= new_size:
        return False
    if not _all_hashes(old_root, new_root, *proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = bytes(path[0])
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = sha256(_NODE + c + fr).digest()
            sr = sha256(_NODE + c + sr).digest()
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = sha256(_NODE + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
