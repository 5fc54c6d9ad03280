"""Reading a policy file and computing its digest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import tomlconf
from policies._model import Policy


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
    tomlconf.ConfigError
        Listing every problem with file, line and field.
    """
    text, data = tomlconf.read_toml(path)
    policy = tomlconf.validate(path, text, data, Policy)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return LoadedPolicy(policy, digest, path)
