"""Reading a policy file: every problem at once, located; and its digest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

import tomlconf
from policies._consistency import Parts, contradictions
from policies._errors import PolicyInvalid
from policies._model import CONTRADICTION, Policy


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy with the SHA-256 digest of the exact file bytes."""

    policy: Policy
    digest: str
    path: Path


def load_policy(path: Path) -> LoadedPolicy:
    """Load and validate the policy at ``path``.

    Raises
    ------
    tomlconf.ConfigFileMissing
        If the file cannot be read.
    PolicyInvalid
        Listing every problem, each with file, line, column and field path.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise tomlconf.ConfigFileMissing(
            [tomlconf.Problem(path, None, None, "", "file not found")]
        ) from None
    except OSError as exc:
        raise tomlconf.ConfigFileMissing(
            [tomlconf.Problem(path, None, None, "", f"cannot be read: {exc}")]
        ) from None
    return LoadedPolicy(parse_policy(raw, path), hashlib.sha256(raw).hexdigest(), path)


def parse_policy(content: bytes | str, path: Path = Path("<policy>")) -> Policy:
    """Parse and validate a policy's text; ``path`` only names it in problems.

    Raises
    ------
    PolicyInvalid
        Listing every problem found, in file order.
    """
    try:
        text = content.decode("utf-8") if isinstance(content, bytes) else content
    except UnicodeDecodeError as exc:
        raise PolicyInvalid(
            [tomlconf.Problem(path, None, None, "", f"cannot be read: {exc}")]
        ) from None
    try:
        data = tomlconf.parse_toml(path, text)
    except tomlconf.ConfigError as exc:
        raise PolicyInvalid(exc.problems) from None
    return validate_policy(path, text, data)


def validate_policy(path: Path, text: str, data: dict[str, Any]) -> Policy:
    """Validate parsed ``data`` (from ``text`` of ``path``) as a policy.

    Structural problems (types, unknown fields, bad dates) and contradictions between
    parts are reported together, each located at the key that causes it.

    Raises
    ------
    PolicyInvalid
        Listing every problem found, in file order.
    """
    try:
        return Policy.model_validate(data)
    except pydantic.ValidationError as exc:
        locator = tomlconf.Locator(path, text, fallback=(1, 1))
        problems = [
            locator.problem(tuple(err["loc"]), tomlconf.describe(err))
            for err in exc.errors(include_url=False)
            if err["type"] != CONTRADICTION
        ]
        problems += [
            locator.problem(issue.loc, issue.message, at=issue.at)
            for issue in contradictions(Parts.salvage(data))
        ]
        raise PolicyInvalid(tomlconf.sort_problems(problems)) from None
