"""Map a field path of a parsed TOML document back to the line and column declaring it."""

from __future__ import annotations

import bisect
import re
import tomllib
from collections.abc import Sequence

FieldPath = tuple[str | int, ...]
#: A 1-based (line, column) in the text.
Position = tuple[int, int]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = frozenset(",]}\n#")


def position_index(text: str) -> dict[FieldPath, Position]:
    """Return the 1-based line and column of every key, table and array item in ``text``.

    Arrays of tables get their element index in the path (``("datasets", 1, "id")``);
    so do the items of arrays (``("actions", 2)``). Keys inside inline tables are found
    too. A table header is located at its last key. ``text`` should be valid TOML (the
    scanner trusts what ``tomllib`` accepted); on anything else it returns what it found
    up to the first surprise.
    """
    return _Scanner(text).run()


def line_index(text: str) -> dict[FieldPath, int]:
    """Return the 1-based line of every table header, key and array item in ``text``."""
    return {path: line for path, (line, _) in position_index(text).items()}


def locate(index: dict[FieldPath, int], path: Sequence[str | int]) -> int | None:
    """Return the line of the longest prefix of ``path`` found in ``index``."""
    for end in range(len(path), 0, -1):
        line = index.get(tuple(path[:end]))
        if line is not None:
            return line
    return None


def locate_position(
    index: dict[FieldPath, Position], path: Sequence[str | int]
) -> Position | None:
    """Return the (line, column) of the longest prefix of ``path`` found in ``index``."""
    for end in range(len(path), 0, -1):
        position = index.get(tuple(path[:end]))
        if position is not None:
            return position
    return None


def dotted(path: Sequence[str | int]) -> str:
    """Render a field path as ``a.b[0].c``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class _Surprise(Exception):
    """The text is not what the scanner expects; stop scanning."""


class _Scanner:
    """A recursive-descent walk over valid TOML that records where each path starts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.end = len(text)
        self.i = 0
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.index: dict[FieldPath, Position] = {}
        self.array_counts: dict[FieldPath, int] = {}

    def run(self) -> dict[FieldPath, Position]:
        table: FieldPath = ()
        try:
            while True:
                self.skip(newlines=True)
                if self.i >= self.end:
                    break
                if self.text[self.i] == "[":
                    table = self.header()
                else:
                    self.keyval(table)
        except (_Surprise, IndexError):
            pass
        return self.index

    def position(self, offset: int) -> Position:
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def record(self, path: FieldPath, offset: int) -> None:
        self.index.setdefault(path, self.position(offset))

    def skip(self, *, newlines: bool) -> None:
        """Skip blanks and comments (and line breaks when ``newlines``)."""
        text = self.text
        while self.i < self.end:
            ch = text[self.i]
            if ch in " \t\r" or (newlines and ch == "\n"):
                self.i += 1
            elif ch == "#":
                nl = text.find("\n", self.i)
                self.i = self.end if nl < 0 else nl
            else:
                break

    def expect(self, token: str) -> None:
        if not self.text.startswith(token, self.i):
            raise _Surprise(token)
        self.i += len(token)

    def header(self) -> FieldPath:
        is_array = self.text.startswith("[[", self.i)
        self.i += 2 if is_array else 1
        parts = self.key()
        self.skip(newlines=False)
        self.expect("]]" if is_array else "]")
        resolved: list[str | int] = []
        for n, (name, offset) in enumerate(parts):
            resolved.append(name)
            path = tuple(resolved)
            self.record(path, offset)
            last = n == len(parts) - 1
            if last and is_array:
                count = self.array_counts.get(path, -1) + 1
                self.array_counts[path] = count
                resolved.append(count)
                self.record(tuple(resolved), offset)
            elif not last and path in self.array_counts:
                resolved.append(self.array_counts[path])
        return tuple(resolved)

    def key(self) -> list[tuple[str, int]]:
        """Read a (dotted) key: its parts with their offsets."""
        parts: list[tuple[str, int]] = []
        while True:
            self.skip(newlines=False)
            start = self.i
            ch = self.text[start]
            if ch == '"':
                self.basic_string()
                raw = self.text[start : self.i]
                name = raw[1:-1] if "\\" not in raw else _decode(raw)
            elif ch == "'":
                self.literal_string()
                name = self.text[start + 1 : self.i - 1]
            else:
                match = _BARE_KEY.match(self.text, start)
                if match is None:
                    raise _Surprise("key")
                name = match.group()
                self.i = match.end()
            parts.append((name, start))
            self.skip(newlines=False)
            if self.i < self.end and self.text[self.i] == ".":
                self.i += 1
                continue
            return parts

    def keyval(self, table: FieldPath) -> None:
        parts = self.key()
        self.skip(newlines=False)
        self.expect("=")
        self.skip(newlines=False)
        path = table
        for name, offset in parts:
            path = (*path, name)
            self.record(path, offset)
        self.value(path)

    def value(self, path: FieldPath) -> None:
        text, i = self.text, self.i
        if text.startswith('"""', i) or text.startswith("'''", i):
            self.multiline_string(text[i])
        elif text[i] == '"':
            self.basic_string()
        elif text[i] == "'":
            self.literal_string()
        elif text[i] == "[":
            self.array(path)
        elif text[i] == "{":
            self.inline_table(path)
        else:
            while self.i < self.end and text[self.i] not in _SCALAR_END:
                self.i += 1

    def array(self, path: FieldPath) -> None:
        self.i += 1
        item = 0
        while True:
            self.skip(newlines=True)
            if self.text[self.i] == "]":
                self.i += 1
                return
            before = self.i
            self.record((*path, item), self.i)
            self.value((*path, item))
            self.skip(newlines=True)
            if self.text[self.i] == ",":
                self.i += 1
            elif self.i == before:
                raise _Surprise("array")
            item += 1

    def inline_table(self, path: FieldPath) -> None:
        self.i += 1
        while True:
            self.skip(newlines=True)
            if self.text[self.i] == "}":
                self.i += 1
                return
            self.keyval(path)
            self.skip(newlines=True)
            if self.text[self.i] == ",":
                self.i += 1

    def basic_string(self) -> None:
        i = self.i + 1
        text = self.text
        while text[i] != '"':
            i += 2 if text[i] == "\\" else 1
        self.i = i + 1

    def literal_string(self) -> None:
        close = self.text.find("'", self.i + 1)
        if close < 0:
            raise _Surprise("string")
        self.i = close + 1

    def multiline_string(self, quote: str) -> None:
        delimiter = quote * 3
        i = self.i + 3
        text = self.text
        while not text.startswith(delimiter, i):
            if i >= self.end:
                raise _Surprise("string")
            i += 2 if quote == '"' and text[i] == "\\" else 1
        i += 3
        # Up to two more quotes may close the content: """a"""" is 'a"'.
        for _ in range(2):
            if i < self.end and text[i] == quote:
                i += 1
        self.i = i


def _decode(raw: str) -> str:
    """Decode a quoted key with escapes the way TOML does."""
    try:
        value = tomllib.loads(f"k = {raw}")["k"]
    except tomllib.TOMLDecodeError:
        return raw[1:-1]
    return str(value)
