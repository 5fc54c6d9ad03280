"""Opaque keyset page tokens for listing records and checkpoints (AIP-158).

A token carries the last key of the previous page and a fingerprint of the query
it belongs to, so it cannot be replayed with other filters. Tokens are not
secret, only opaque: they are URL-safe base64 of ``v1:<kind>:<key>:<fingerprint>``.
"""

from __future__ import annotations

import base64
import binascii
import re

from ._logerrors import InvalidPageToken

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "decode_token",
    "encode_token",
    "page_size",
]

DEFAULT_PAGE_SIZE = 100
"""Page size when the caller asks for none (0 or less)."""

MAX_PAGE_SIZE = 1000
"""Largest page; larger requests are cut to it."""

_TOKEN = re.compile(r"v1:([a-z]):(-1|0|[1-9][0-9]{0,18}):([0-9a-f]{16})")


def page_size(requested: int) -> int:
    """Return the page size to use for a request.

    Parameters
    ----------
    requested : int
        The caller's ``page_size``.

    Returns
    -------
    int
        :data:`DEFAULT_PAGE_SIZE` for 0 or less, at most :data:`MAX_PAGE_SIZE`.
    """
    if requested <= 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def encode_token(kind: str, after: int, fingerprint: str) -> str:
    """Return the token of the page that starts after key ``after``.

    Parameters
    ----------
    kind : str
        One lowercase letter naming the listing (``r`` records, ``c`` checkpoints).
    after : int
        The last key of the current page.
    fingerprint : str
        16 hex digits identifying the query (filters).

    Returns
    -------
    str
        The opaque token.
    """
    text = f"v1:{kind}:{after}:{fingerprint}"
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def decode_token(token: str, kind: str, fingerprint: str) -> int:
    """Return the key a page token starts after; ``-1`` for the empty token.

    Parameters
    ----------
    token : str
        A token from :func:`encode_token`, or ``""`` for the first page.
    kind : str
        The listing the token must belong to.
    fingerprint : str
        The fingerprint of the current query.

    Returns
    -------
    int
        The last key of the previous page.

    Raises
    ------
    InvalidPageToken
        If the token is malformed, or was issued for another listing or filter.
    """
    if not token:
        return -1
    try:
        padded = token + "=" * (-len(token) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (UnicodeError, binascii.Error, ValueError):
        raise InvalidPageToken("page_token is not a token this log issued") from None
    match = _TOKEN.fullmatch(text)
    if match is None or match.group(1) != kind:
        raise InvalidPageToken("page_token is not a token this log issued")
    if match.group(3) != fingerprint:
        raise InvalidPageToken(
            "page_token was issued for other filters; repeat the first request's "
            "filters, or start again without a token"
        )
    return int(match.group(2))
