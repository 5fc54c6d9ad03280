"""The policy in readable form, and the versions the workbench has seen.

The node's policy file is read locally (the workbench runs where the agency keeps
it); its digest is the SHA-256 of its bytes, as the node computes it. Every
version read is copied into the state folder under its digest, so that later
pages can show an earlier version the log names, and the differences.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import policies
import tomlconf
from policies import Policy, describe_rule

__all__ = ["PolicyArchive", "PolicyText", "PolicyVersion", "policy_diff"]

_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class PolicyText:
    """A policy in readable parts.

    Attributes
    ----------
    header : list[str]
        Identity, validity, privacy unit, datasets.
    permissions, prohibitions : list[tuple[str, str, str]]
        ``(uid, description, what it allows or forbids)``.
    budgets : list[tuple[str, str, str]]
        ``(uid, description, limits)``.
    summary : list[str]
        :func:`policies.summarise`'s lines.
    """

    header: list[str]
    permissions: list[tuple[str, str, str]]
    prohibitions: list[tuple[str, str, str]]
    budgets: list[tuple[str, str, str]]
    summary: list[str]


@dataclass(frozen=True)
class PolicyVersion:
    """One version of the policy file.

    Attributes
    ----------
    digest : str
        SHA-256 of the file's bytes (hex).
    text : str
        The file's text.
    source : str
        Where it was read (the file, or the archived copy).
    readable : PolicyText or None
        The policy in readable parts, if it is valid.
    problems : list[str]
        Why it is not valid.
    """

    digest: str
    text: str
    source: str
    readable: PolicyText | None = None
    problems: list[str] = field(default_factory=list)


def _readable(policy: Policy) -> PolicyText:
    head = policy.policy
    unit = head.privacy_unit
    person = f"at most {unit.max_rows_per_person} row(s) per person"
    if unit.id_column:
        person += f" (identified by {unit.id_column})"
    header = [
        f"policy {head.uid} of agency {head.agency}, version {head.version}",
        "in force from "
        + (head.valid_from.isoformat() if head.valid_from else "always")
        + " until "
        + (head.valid_until.isoformat() if head.valid_until else "revoked"),
        f"default: {head.default}",
        f"privacy unit: {person}; epsilon shown at delta {head.delta:g}",
        "datasets: " + (", ".join(policy.datasets) or "none (every request is denied)"),
    ]
    summary = policies.summarise(policy)
    budget_lines = {line.split(":", 1)[0]: line for line in summary}
    return PolicyText(
        header=header,
        permissions=[
            (r.uid, r.description, describe_rule(r, delta=head.delta))
            for r in policy.permissions
        ],
        prohibitions=[
            (r.uid, r.description, describe_rule(r)) for r in policy.prohibitions
        ],
        budgets=[
            (
                b.uid,
                b.description,
                budget_lines.get(b.uid, "").split(": ", 1)[-1],
            )
            for b in policy.budgets
        ],
        summary=summary,
    )


def _version(raw: bytes, source: str) -> PolicyVersion:
    digest = hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8", errors="replace")
    try:
        policy = policies.parse_policy(raw, Path(source))
    except tomlconf.ConfigError as exc:
        return PolicyVersion(digest, text, source, None, [str(p) for p in exc.problems])
    return PolicyVersion(digest, text, source, _readable(policy))


class PolicyArchive:
    """Reads the policy file and keeps a copy of each version under its digest.

    Parameters
    ----------
    folder : Path, optional
        Where copies go (``<digest>.toml``); ``None`` keeps them in memory.
    """

    def __init__(self, folder: Path | None) -> None:
        self._folder = folder
        self._memory: dict[str, bytes] = {}
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def read(self, path: Path) -> PolicyVersion:
        """Read the policy file, archive it, and return it.

        Parameters
        ----------
        path : Path
            The node's policy file.

        Returns
        -------
        PolicyVersion
            The current version (``problems`` says if it cannot be read).
        """
        try:
            raw = path.read_bytes()
        except OSError as exc:
            return PolicyVersion("", "", str(path), None, [f"cannot read: {exc}"])
        version = _version(raw, str(path))
        self._keep(version.digest, raw)
        return version

    def _keep(self, digest: str, raw: bytes) -> None:
        if self._folder is None:
            self._memory.setdefault(digest, raw)
            return
        target = self._folder / f"{digest}.toml"
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(raw)
            tmp.replace(target)

    def get(self, digest: str) -> PolicyVersion | None:
        """Return an archived version, or ``None`` if it was never seen here."""
        if not _DIGEST.fullmatch(digest):
            return None
        if self._folder is None:
            raw = self._memory.get(digest)
            source = f"copy {digest[:12]}"
        else:
            path = self._folder / f"{digest}.toml"
            raw = path.read_bytes() if path.exists() else None
            source = str(path)
        if raw is None or hashlib.sha256(raw).hexdigest() != digest:
            return None
        return _version(raw, source)

    def has(self, digest: str) -> bool:
        """Return whether a copy of ``digest`` is kept."""
        if self._folder is None:
            return digest in self._memory
        return (
            _DIGEST.fullmatch(digest) is not None
            and (self._folder / f"{digest}.toml").exists()
        )


def policy_diff(old: PolicyVersion, new: PolicyVersion) -> list[str]:
    """Return a unified diff of two versions' texts.

    Parameters
    ----------
    old, new : PolicyVersion
        The versions.

    Returns
    -------
    list[str]
        The diff's lines (no trailing newlines).
    """
    return list(
        difflib.unified_diff(
            old.text.splitlines(),
            new.text.splitlines(),
            fromfile=old.digest[:12],
            tofile=new.digest[:12],
            lineterm="",
        )
    )
