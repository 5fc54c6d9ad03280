"""What a policy decides on: a request as the node sees it, and the decision."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Requester:
    """The authenticated requester, from its mTLS certificate."""

    uri: str
    agency: str
    role: str


@dataclass(frozen=True)
class AccessRequest:
    """One request to a node, reduced to what the policy needs."""

    requester: Requester
    dataset: str
    actions: frozenset[str]
    columns: frozenset[str] = frozenset()
    group_by: tuple[str, ...] = ()
    purpose: str = ""
    legal_basis: str = ""
    justification: str = ""
    on_behalf_of: str = ""


@dataclass(frozen=True)
class Decision:
    """The outcome of evaluating a policy.

    ``reason`` names the declared rule (or the default deny), never anything derived
    from data.
    """

    allowed: bool
    matched_rules: tuple[str, ...]
    reason: str
    policy_uid: str
    policy_digest: str
    unmet: tuple[str, ...] = field(default=())
