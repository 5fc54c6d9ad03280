"""Map a field path of a parsed TOML document back to the line that declares it."""

from __future__ import annotations

import re
from collections.abc import Sequence

FieldPath = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")


def _split_key(key: str) -> list[str]:
    return [p.strip("\"'") for p in _PART.findall(key)]


def line_index(text: str) -> dict[FieldPath, int]:
    """Return the 1-based line of every table header and key in ``text``.

    Arrays of tables get their element index in the path (``("datasets", 1, "id")``).
    Keys inside inline tables or multi-line values are located at their parent key.
    """
    index: dict[FieldPath, int] = {}
    array_counts: dict[FieldPath, int] = {}
    table: FieldPath = ()
    depth = 0  # open brackets/braces of a multi-line value
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if (
            depth == 0
            and (header := _HEADER.match(line))
            and not stripped.startswith("[=")
        ):
            parts = _split_key(header.group(2))
            path = _resolve(tuple(parts), array_counts)
            if header.group(1) == "[[":
                count = array_counts.get(path, -1) + 1
                array_counts[path] = count
                path = (*path, count)
            table = path
            index.setdefault(table, lineno)
            continue
        if depth == 0 and (key := _KEY.match(line)):
            path = (*table, *_split_key(key.group(1)))
            index.setdefault(path, lineno)
            rest = line[key.end() :]
        else:
            rest = line
        depth = max(0, depth + _bracket_balance(rest))
    return index


def _resolve(parts: tuple[str, ...], array_counts: dict[FieldPath, int]) -> FieldPath:
    """Insert the current element index after every array-of-tables prefix."""
    resolved: list[str | int] = []
    for i, part in enumerate(parts):
        resolved.append(part)
        key = tuple(resolved)
        if key in array_counts and i < len(parts) - 1:
            resolved.append(array_counts[key])
    return tuple(resolved)


def _bracket_balance(fragment: str) -> int:
    """Open minus closed brackets outside strings and comments."""
    balance = 0
    quote: str | None = None
    for ch in fragment:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            balance += 1
        elif ch in "]}":
            balance -= 1
    return balance


def locate(index: dict[FieldPath, int], path: Sequence[str | int]) -> int | None:
    """Return the line of the longest prefix of ``path`` found in ``index``."""
    for end in range(len(path), 0, -1):
        line = index.get(tuple(path[:end]))
        if line is not None:
            return line
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
