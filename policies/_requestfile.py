"""REQUEST files for ``accord policy explain``: a request as JSON (or a TOML table)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
from pydantic import Field, model_validator

import pki
import tomlconf
from policies._errors import RequestInvalid
from policies._request import AccessRequest, PrivacyLoss, Requester
from policies._types import Action, Positive, Strict


class RequesterSpec(Strict):
    """A requester given by its parts (for identities that are not SPIFFE URIs)."""

    uri: str = Field(min_length=1, description="The identity URI.")
    agency: str = Field(default="", description="The requester's agency.")
    role: str = Field(default="", description="The requester's role.")


class PrivacySpec(Strict):
    """The loss a request asks to spend: exactly one of epsilon (pure DP) and rho."""

    epsilon: Positive | None = Field(default=None, description="Pure DP epsilon.")
    rho: Positive | None = Field(default=None, description="zCDP rho.")

    @model_validator(mode="after")
    def _one(self) -> PrivacySpec:
        if (self.epsilon is None) == (self.rho is None):
            raise ValueError("expected exactly one of epsilon and rho")
        return self


class RequestFile(Strict):
    """A request as ``accord policy explain`` reads it; see docs/policy.md."""

    requester: str | RequesterSpec = Field(
        description=(
            "spiffe://<federation>/agency/<agency>/<role>/<name>, or a table with "
            "uri, agency and role."
        )
    )
    dataset: str = Field(min_length=1)
    actions: list[Action] = Field(min_length=1)
    columns: list[str] = Field(default_factory=list)
    value_columns: list[str] = Field(default_factory=list)
    group_by: list[str] = Field(default_factory=list)
    purpose: str = ""
    legal_basis: str = ""
    justification: str = ""
    on_behalf_of: str = ""
    privacy: PrivacySpec | None = None
    secure_aggregation: bool = False
    participants: int | None = Field(default=None, ge=1)
    app: str = ""
    app_digest: str = ""
    round: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _identity(self) -> RequestFile:
        if isinstance(self.requester, str):
            try:
                pki.Identity.parse(self.requester)
            except pki.InvalidIdentity as exc:
                raise ValueError(f"requester: {exc}") from None
        return self

    def to_request(self) -> AccessRequest:
        """Return the ``AccessRequest`` this file describes."""
        if isinstance(self.requester, str):
            identity = pki.Identity.parse(self.requester)
            requester = Requester(identity.uri, identity.agency, identity.role)
        else:
            spec = self.requester
            requester = Requester(spec.uri, spec.agency, spec.role)
        privacy = (
            None
            if self.privacy is None
            else PrivacyLoss(epsilon=self.privacy.epsilon, rho=self.privacy.rho)
        )
        return AccessRequest(
            requester=requester,
            dataset=self.dataset,
            actions=frozenset(self.actions),
            columns=frozenset(self.columns),
            group_by=tuple(self.group_by),
            purpose=self.purpose,
            legal_basis=self.legal_basis,
            justification=self.justification,
            on_behalf_of=self.on_behalf_of,
            value_columns=frozenset(self.value_columns),
            privacy=privacy,
            secure_aggregation=self.secure_aggregation,
            participants=self.participants,
            app=self.app,
            app_digest=self.app_digest,
            round=self.round,
        )


def _problems(path: Path, exc: pydantic.ValidationError) -> list[tomlconf.Problem]:
    return [
        tomlconf.Problem(
            path, None, None, tomlconf.dotted(tuple(err["loc"])), tomlconf.describe(err)
        )
        for err in exc.errors(include_url=False)
    ]


def request_from_data(data: Any, path: Path = Path("<request>")) -> AccessRequest:
    """Validate parsed request ``data`` (a table) and return the request.

    Raises
    ------
    RequestInvalid
        Listing every problem, each with its field path.
    """
    try:
        return RequestFile.model_validate(data).to_request()
    except pydantic.ValidationError as exc:
        raise RequestInvalid(_problems(path, exc)) from None


def load_request(path: Path) -> AccessRequest:
    """Read a REQUEST.json file.

    Raises
    ------
    RequestInvalid
        If it cannot be read, is not JSON (with line and column), or does not
        describe a request (every problem, with its field path).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestInvalid(
            [tomlconf.Problem(path, None, None, "", f"cannot be read: {exc}")]
        ) from None
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestInvalid(
            [
                tomlconf.Problem(
                    path, exc.lineno, exc.colno, "", f"invalid JSON: {exc.msg}"
                )
            ]
        ) from None
    try:
        return RequestFile.model_validate_json(text).to_request()
    except pydantic.ValidationError as exc:
        raise RequestInvalid(_problems(path, exc)) from None
