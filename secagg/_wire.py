"""A strict binary framing for protocol messages: fixed widths, canonical order.

Every message starts with ``b"ASAG"``, a version byte, a kind byte and the
session id (one length byte, then the id). Integers are big-endian; vectors are
little-endian uint64 words; sets of ids are strictly increasing. A reader
rejects anything else -- unknown kinds, short or trailing bytes, repeated or
unsorted ids, counts beyond the limits -- with `ProtocolViolation`, before
allocating memory for it.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable
from typing import NoReturn

import numpy as np
from numpy.typing import NDArray

from secagg._errors import ProtocolViolation
from secagg._rules import MAX_PARTICIPANTS, MAX_VECTOR_LENGTH
from secagg.hazmat import ELEMENT_SIZE, PRIME, Share

MAGIC = b"ASAG"
VERSION = 1
_WORD = np.dtype("<u8")
#: Bytes of a Shamir share on the wire: a 32-bit index and a 66-byte value.
SHARE_SIZE = 4 + ELEMENT_SIZE


class Writer:
    """Accumulate the fields of one message."""

    def __init__(self, kind: int, session_id: bytes) -> None:
        self._parts: list[bytes | memoryview] = [
            MAGIC,
            bytes([VERSION, kind, len(session_id)]),
            session_id,
        ]

    def u32(self, value: int) -> None:
        """Append an unsigned 32-bit integer."""
        self._parts.append(struct.pack(">I", value))

    def u64(self, value: int) -> None:
        """Append an unsigned 64-bit integer."""
        self._parts.append(struct.pack(">Q", value))

    def raw(self, data: bytes) -> None:
        """Append bytes of a size the reader knows."""
        self._parts.append(data)

    def blob(self, data: bytes) -> None:
        """Append bytes preceded by their 32-bit length."""
        self.u32(len(data))
        self._parts.append(data)

    def ids(self, ids: Iterable[int]) -> None:
        """Append a set of participant ids: count, then increasing ids."""
        ordered = sorted(ids)
        self.u32(len(ordered))
        self._parts.append(struct.pack(f">{len(ordered)}I", *ordered))

    def share(self, share: Share) -> None:
        """Append a Shamir share: index, then the value in 66 bytes."""
        self.u32(share.index)
        self._parts.append(share.value.to_bytes(ELEMENT_SIZE, "big"))

    def words(self, vector: NDArray[np.uint64]) -> None:
        """Append a vector: its length, then little-endian uint64 words."""
        self.u64(len(vector))
        self._parts.append(np.ascontiguousarray(vector, dtype=_WORD).data)

    def finish(self) -> bytes:
        """Return the message."""
        return b"".join(self._parts)


class Reader:
    """Parse the fields of one message, refusing anything non-canonical."""

    def __init__(self, data: bytes, kind: int, name: str) -> None:
        if not isinstance(data, bytes):
            raise TypeError("a message is bytes")
        self._data = data
        self._view = memoryview(data)
        self._offset = 0
        self._name = name
        if self.raw(len(MAGIC)) != MAGIC:
            self.fail("not a secure-aggregation message")
        version, found, size = self.raw(3)
        if version != VERSION:
            self.fail(f"version {version}, expected {VERSION}")
        if found != kind:
            self.fail(f"message kind {found}, expected {kind}")
        self.session_id = self.raw(size)

    def fail(self, reason: str) -> NoReturn:
        """Raise `ProtocolViolation` naming the message."""
        raise ProtocolViolation(f"malformed {self._name}: {reason}")

    def raw(self, size: int) -> bytes:
        """Read ``size`` bytes."""
        end = self._offset + size
        if end > len(self._data):
            self.fail("truncated")
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def u32(self) -> int:
        """Read an unsigned 32-bit integer."""
        value: int = struct.unpack(">I", self.raw(4))[0]
        return value

    def u64(self) -> int:
        """Read an unsigned 64-bit integer."""
        value: int = struct.unpack(">Q", self.raw(8))[0]
        return value

    def count(self, item_size: int, limit: int = MAX_PARTICIPANTS) -> int:
        """Read a count of items and check that the bytes for them are there."""
        count = self.u32()
        if count > limit:
            self.fail(f"{count} items, at most {limit} allowed")
        if count * item_size > len(self._data) - self._offset:
            self.fail("truncated")
        return count

    def blob(self, limit: int) -> bytes:
        """Read bytes preceded by their 32-bit length, at most ``limit``."""
        size = self.u32()
        if size > limit:
            self.fail(f"a field of {size} bytes, at most {limit} allowed")
        return self.raw(size)

    def ids(self) -> frozenset[int]:
        """Read a set of participant ids written by `Writer.ids`."""
        count = self.count(4)
        ids = struct.unpack(f">{count}I", self.raw(4 * count))
        if any(a >= b for a, b in itertools.pairwise(ids)):
            self.fail("participant ids are not strictly increasing")
        return frozenset(ids)

    def increasing_id(self, previous: int) -> int:
        """Read a participant id greater than ``previous`` (canonical order)."""
        value = self.u32()
        if value <= previous:
            self.fail("participant ids are not strictly increasing")
        return value

    def share(self) -> Share:
        """Read a Shamir share written by `Writer.share`."""
        index = self.u32()
        value = int.from_bytes(self.raw(ELEMENT_SIZE), "big")
        if index == 0 or value >= PRIME:
            self.fail("a share lies outside the field")
        return Share(index, value)

    def words(self) -> NDArray[np.uint64]:
        """Read a vector written by `Writer.words` (a read-only view, no copy)."""
        length = self.u64()
        if length > MAX_VECTOR_LENGTH:
            self.fail(f"a vector of {length} words, at most {MAX_VECTOR_LENGTH}")
        if 8 * length > len(self._data) - self._offset:
            self.fail("truncated")
        array = np.frombuffer(
            self._data, dtype=_WORD, count=length, offset=self._offset
        )
        self._offset += 8 * length
        return array.astype(np.uint64, copy=False)

    def done(self) -> None:
        """Check that every byte was read."""
        if self._offset != len(self._data):
            self.fail(f"{len(self._data) - self._offset} trailing bytes")
