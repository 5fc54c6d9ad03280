"""``federation.toml``: the coordinator's TLS files and the nodes it talks to."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

import tomlconf

_IDENT = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FederationSection(_Strict):
    """``[federation]``."""

    name: str = Field(pattern=_IDENT)


class CoordinatorSection(_Strict):
    """``[coordinator]``: this coordinator's certificate and defaults."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    deadline_seconds: float = Field(default=10.0, gt=0, le=3600)

    @field_validator("ca", "cert", "key")
    @classmethod
    def _paths(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else tomlconf.relative_to_file(value, info)

    @model_validator(mode="after")
    def _all_or_none(self) -> CoordinatorSection:
        given = [self.ca is not None, self.cert is not None, self.key is not None]
        if any(given) and not all(given):
            raise ValueError("ca, cert and key go together: give all three")
        return self


class NodeEntry(_Strict):
    """``[[nodes]]``: one agency node."""

    agency: str = Field(pattern=_IDENT)
    address: str = Field(pattern=r"^[^\s:]+:\d{1,5}$", description="host:port")
    name: str = Field(default="node", pattern=_IDENT)
    server_name: str | None = Field(
        default=None, description="TLS name to expect, when it differs from the host"
    )


class FederationConfig(_Strict):
    """A whole ``federation.toml``."""

    federation: FederationSection
    coordinator: CoordinatorSection = CoordinatorSection()
    nodes: list[NodeEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> FederationConfig:
        seen: set[tuple[str, str]] = set()
        for node in self.nodes:
            key = (node.agency, node.name)
            if key in seen:
                raise ValueError(f"node {node.agency}/{node.name} is listed twice")
            seen.add(key)
        return self


def load_federation(path: Path) -> FederationConfig:
    """Load ``federation.toml``; relative paths are relative to its folder.

    Raises
    ------
    tomlconf.ConfigError
        Every problem, with file, line and field.
    """
    return tomlconf.load(path, FederationConfig)
