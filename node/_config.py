"""``node.toml``: what a node serves, where its data lives, and how it is secured."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

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
_COLUMN = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"

ColumnKind = Literal["integer", "float", "category", "string", "boolean"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_resolve = tomlconf.relative_to_file


class NodeSection(_Strict):
    """``[node]``: identity and runtime settings."""

    agency: str = Field(pattern=_IDENT)
    name: str = Field(pattern=_IDENT, default="node")
    listen: str = Field(default="127.0.0.1:50051", pattern=r"^.+:\d{1,5}$")
    grace_seconds: float = Field(default=5.0, ge=0, le=300)
    max_workers: int = Field(default=8, ge=1, le=256)
    state_url: str = Field(
        default="sqlite:///node-state.db",
        validate_default=True,
        description="SQLAlchemy URL of the node's own state (budgets, decision log)",
    )

    work_dir: Path = Field(
        default=Path("work"),
        validate_default=True,
        description="Where the node keeps DuckDB working copies of its file datasets",
    )
    file_memory_mb: int = Field(
        default=128,
        ge=64,
        le=1_048_576,
        description="Most memory DuckDB may hold for file datasets, in MiB",
    )

    file_threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="DuckDB threads per query on file datasets (default: one per core)",
    )

    @field_validator("work_dir")
    @classmethod
    def _work_dir(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)

    @field_validator("state_url")
    @classmethod
    def _state_url(cls, value: str, info: ValidationInfo) -> str:
        prefix = "sqlite:///"
        if value.startswith(prefix) and not value.startswith(prefix + "/"):
            rel = value.removeprefix(prefix)
            if rel and rel != ":memory:":
                return prefix + str(_resolve(Path(rel), info))
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("expected a sqlite:/// or postgresql:// SQLAlchemy URL")
        return value


class TlsSection(_Strict):
    """``[tls]``: the node's certificate, key and the federation CA."""

    ca: Path
    cert: Path
    key: Path

    @field_validator("ca", "cert", "key")
    @classmethod
    def _paths(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)


class PolicySection(_Strict):
    """``[policy]``: the declared sharing policy file."""

    file: Path

    @field_validator("file")
    @classmethod
    def _path(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)


class AuditSection(_Strict):
    """``[audit]``: the node's tamper-evident decision log."""

    key: Path = Field(
        default=Path("audit-log.key"),
        validate_default=True,
        description="Ed25519 signing key of the log (created with mode 0600 if missing)",
    )
    checkpoint_every: int = Field(default=256, ge=1, le=100_000)
    checkpoint_interval_seconds: float = Field(default=10.0, gt=0, le=3600)

    @field_validator("key")
    @classmethod
    def _path(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)


class FileSource(_Strict):
    """A CSV or Parquet file, read with DuckDB."""

    kind: Literal["csv", "parquet"]
    path: Path
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    working_copy: bool = Field(
        default=True,
        description=(
            "Load the file into a DuckDB database under node.work_dir at start-up "
            "and whenever the file changes (fast queries, memory bounded by "
            "node.file_memory_mb); false reads the file in place at every query"
        ),
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)


class SqlSource(_Strict):
    """A table of a SQL database reached through SQLAlchemy (SQLite, PostgreSQL)."""

    kind: Literal["sql"]
    url: str = Field(description="SQLAlchemy URL, e.g. postgresql+psycopg://host/db")
    table: str = Field(pattern=_COLUMN)
    db_schema: str | None = Field(default=None, alias="schema", pattern=_COLUMN)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        prefix = "sqlite:///"
        if value.startswith(prefix) and not value.startswith(prefix + "/"):
            return prefix + str(_resolve(Path(value.removeprefix(prefix)), info))
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("expected a sqlite:/// or postgresql[+driver]:// URL")
        return value


Source = Annotated[FileSource | SqlSource, Field(discriminator="kind")]


class ColumnSpec(_Strict):
    """One declared column of a dataset."""

    type: ColumnKind
    description: str = ""
    categories: list[str] = Field(default_factory=list)
    bounds: tuple[float, float] | None = None
    nullable: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.type == "category" and not self.categories:
            raise ValueError(
                "a category column needs its public domain in `categories`"
            )
        if self.type != "category" and self.categories:
            raise ValueError("`categories` is only for columns of type category")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("`categories` lists a value twice")
        if self.bounds is not None:
            if self.type not in ("integer", "float"):
                raise ValueError("`bounds` is only for integer and float columns")
            if self.bounds[0] > self.bounds[1]:
                raise ValueError("`bounds` must be [lower, upper] with lower <= upper")
        return self


class DatasetSpec(_Strict):
    """``[[datasets]]``: one dataset, its source and its column schema."""

    id: str = Field(pattern=_IDENT)
    description: str = ""
    source: Source
    columns: dict[str, ColumnSpec] = Field(min_length=1)

    @field_validator("columns")
    @classmethod
    def _names(cls, value: dict[str, ColumnSpec]) -> dict[str, ColumnSpec]:
        for name in value:
            if not re.match(_COLUMN, name):
                raise ValueError(
                    f"column name {name!r}: expected letters, digits and _ (not first)"
                )
        return value


class NodeConfig(_Strict):
    """A whole ``node.toml``."""

    node: NodeSection
    tls: TlsSection | None = None
    policy: PolicySection
    audit: AuditSection = Field(default={}, validate_default=True)
    datasets: list[DatasetSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> NodeConfig:
        ids = [d.id for d in self.datasets]
        for ds in ids:
            if ids.count(ds) > 1:
                raise ValueError(f"dataset id {ds!r} is declared twice")
        return self


def load_node_config(path: Path) -> NodeConfig:
    """Load ``node.toml``; relative paths are relative to its folder.

    Raises
    ------
    tomlconf.ConfigError
        Every problem, with file, line and field.
    """
    return tomlconf.load(path, NodeConfig)
