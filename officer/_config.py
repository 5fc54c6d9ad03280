"""``officer.toml``: which node to read, with which officer kit, and where to serve.

``accord officer serve --config`` also takes the node's own ``node.toml`` (run at the
node's host): the node's address (its ``listen``), the CA and the policy file then
come from it, and the officer's certificate and key from ``--cert`` and ``--key``.
Command-line flags override the file; the file overrides the defaults.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

import pki
import tomlconf
from policies.auditlog import MalformedNote, parse_verifier_key

__all__ = [
    "DEFAULT_LISTEN",
    "OfficerConfig",
    "Overrides",
    "Settings",
    "SettingsError",
    "WebTls",
    "is_loopback",
    "load_settings",
    "read_verifier_key",
]

DEFAULT_LISTEN = "127.0.0.1:8470"
_ADDRESS = r"^.+:\d{1,5}$"


_resolve = tomlconf.relative_to_file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSection(_Strict):
    """``[node]``: the node whose decision log the officer reads."""

    address: str | None = Field(default=None, pattern=_ADDRESS)
    server_name: str | None = Field(default=None, min_length=1)
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    policy_file: Path | None = None
    config: Path | None = None

    @field_validator("policy_file", "config")
    @classmethod
    def _paths(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _resolve(value, info)


class OfficerSection(_Strict):
    """``[officer]``: the officer's TLS kit (role ``officer``, the node's agency)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @field_validator("ca", "cert", "key")
    @classmethod
    def _paths(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _resolve(value, info)


class AuditSection(_Strict):
    """``[audit]``: the pinned log key, and witnesses whose cosignatures to check."""

    verifier_key: str | None = None
    witnesses: list[str] = Field(default_factory=list)

    @field_validator("verifier_key")
    @classmethod
    def _key(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        base = (info.context or {}).get("base_dir")
        return read_verifier_key(value, Path(base) if base is not None else None)

    @field_validator("witnesses")
    @classmethod
    def _witnesses(cls, value: list[str], info: ValidationInfo) -> list[str]:
        base = (info.context or {}).get("base_dir")
        return [read_verifier_key(v, Path(base) if base else None) for v in value]


class WebTlsSection(_Strict):
    """``[web.tls]``: the web server's certificate; clients need an officer's."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @field_validator("cert", "key", "client_ca")
    @classmethod
    def _paths(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _resolve(value, info)


class WebSection(_Strict):
    """``[web]``: where the workbench listens and keeps its local state."""

    listen: str = Field(default=DEFAULT_LISTEN, pattern=_ADDRESS)
    state_dir: Path = Field(default=Path("officer-state"), validate_default=True)
    page_size: int = Field(default=50, ge=10, le=500)
    allowed_hosts: list[str] = Field(default_factory=list)
    tls: WebTlsSection | None = None

    @field_validator("state_dir")
    @classmethod
    def _path(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)


class AlertsSection(_Strict):
    """``[alerts]``: when denials from one requester count as a burst."""

    denial_burst: int = Field(default=5, ge=2, le=10_000)
    denial_window_seconds: float = Field(default=600.0, gt=0, le=30 * 86_400)
    report_max_records: int = Field(default=2_000, ge=0, le=100_000)


class OfficerConfig(_Strict):
    """A whole ``officer.toml``."""

    node: NodeSection = Field(default_factory=NodeSection)
    officer: OfficerSection = Field(default_factory=OfficerSection)
    audit: AuditSection = Field(default_factory=AuditSection)
    web: WebSection = Field(default={}, validate_default=True)
    alerts: AlertsSection = Field(default_factory=AlertsSection)


class _NodeListen(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    listen: str = Field(default="127.0.0.1:50051", pattern=_ADDRESS)


class _NodeTls(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    ca: Path

    @field_validator("ca")
    @classmethod
    def _path(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)


class _NodePolicy(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    file: Path

    @field_validator("file")
    @classmethod
    def _path(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)


class _NodeToml(BaseModel):
    """The few fields of a ``node.toml`` the workbench reads (the rest is ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    node: _NodeListen = Field(default_factory=_NodeListen)
    tls: _NodeTls | None = None
    policy: _NodePolicy


class SettingsError(Exception):
    """A setting is missing or unusable.

    Parameters
    ----------
    message : str
        What is wrong and how to fix it.
    tls : bool
        Whether it concerns TLS (exit code 41) rather than configuration (40).
    """

    def __init__(self, message: str, *, tls: bool = False) -> None:
        super().__init__(message)
        self.tls = tls


def read_verifier_key(value: str, base: Path | None = None) -> str:
    """Return a verifier key given inline or as a file holding it.

    Parameters
    ----------
    value : str
        ``<origin>+<key ID>+<key>``, or a path (relative to ``base``).
    base : Path, optional
        Folder that relative paths are relative to.

    Returns
    -------
    str
        The verifier key, checked.

    Raises
    ------
    ValueError
        If ``value`` is neither a verifier key nor a readable file holding one.
    """
    text = value.strip()
    try:
        parse_verifier_key(text)
        return text
    except MalformedNote as inline:
        path = Path(text)
        if base is not None and not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise ValueError(
                f"not a verifier key ({inline}) nor a file holding one"
            ) from None
    try:
        text = path.read_text(encoding="utf-8").strip()
        parse_verifier_key(text)
    except (OSError, UnicodeDecodeError, MalformedNote) as exc:
        raise ValueError(f"{path}: not a verifier key: {exc}") from None
    return text


def is_loopback(address: str) -> bool:
    """Return whether ``HOST:PORT`` listens on a loopback interface only.

    Parameters
    ----------
    address : str
        The listen address.

    Returns
    -------
    bool
        ``True`` for ``localhost``, ``127.0.0.0/8`` and ``::1``.
    """
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebTls:
    """The web server's TLS files (clients must present an officer certificate)."""

    cert: Path
    key: Path
    client_ca: Path


@dataclass(frozen=True)
class Overrides:
    """Command-line values that take precedence over the file (``None``: unset)."""

    node: str | None = None
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    verifier_key: str | None = None
    listen: str | None = None
    state_dir: Path | None = None


@dataclass(frozen=True)
class Settings:
    """Everything the workbench needs, resolved from flags, file and defaults."""

    address: str
    tls: pki.TlsFiles
    state_dir: Path
    server_name: str | None = None
    timeout: float = 30.0
    policy_file: Path | None = None
    verifier_key: str | None = None
    witnesses: tuple[str, ...] = ()
    listen: str = DEFAULT_LISTEN
    page_size: int = 50
    allowed_hosts: tuple[str, ...] = ()
    web_tls: WebTls | None = None
    denial_burst: int = 5
    denial_window: timedelta = field(default=timedelta(minutes=10))
    report_max_records: int = 2_000

    def check_exposure(self) -> None:
        """Refuse a listen address beyond loopback without TLS.

        Raises
        ------
        SettingsError
            If ``listen`` is not loopback and ``web_tls`` is unset.
        """
        if self.web_tls is None and not is_loopback(self.listen):
            raise SettingsError(
                f"web.listen {self.listen} is not a loopback address: add [web.tls] "
                "(the web server's certificate; officers then need their officer "
                "certificate in the browser), or listen on 127.0.0.1",
                tls=True,
            )


def _local_address(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", "", "[::]", "::"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def _is_node_toml(data: dict[str, Any]) -> bool:
    return "datasets" in data or "policy" in data


def load_settings(path: Path, overrides: Overrides | None = None) -> Settings:
    """Read ``officer.toml`` (or a ``node.toml``) and apply the command-line overrides.

    Parameters
    ----------
    path : Path
        The configuration file.
    overrides : Overrides, optional
        Values given on the command line.

    Returns
    -------
    Settings
        The resolved settings.

    Raises
    ------
    tomlconf.ConfigError
        If the file is missing or invalid (every problem located).
    SettingsError
        If a required setting is still missing after the overrides.
    """
    flags = overrides or Overrides()
    text, data = tomlconf.read_toml(path)
    if _is_node_toml(data):
        node_file = tomlconf.validate(path, text, data, _NodeToml)
        config = OfficerConfig.model_validate({}, context={"base_dir": path.parent})
        listen = node_file.node.listen
        # A node on an ephemeral port: --node must say where it listens.
        address: str | None = None if listen.endswith(":0") else _local_address(listen)
        ca = node_file.tls.ca if node_file.tls else None
        policy_file: Path | None = node_file.policy.file
        cert = key = None
    else:
        config = tomlconf.validate(path, text, data, OfficerConfig)
        address = config.node.address
        ca, cert, key = config.officer.ca, config.officer.cert, config.officer.key
        policy_file = config.node.policy_file
        if config.node.config is not None:
            node_text, node_data = tomlconf.read_toml(config.node.config)
            node_file = tomlconf.validate(
                config.node.config, node_text, node_data, _NodeToml
            )
            if address is None and not node_file.node.listen.endswith(":0"):
                address = _local_address(node_file.node.listen)
            if policy_file is None:
                policy_file = node_file.policy.file
            if ca is None and node_file.tls is not None:
                ca = node_file.tls.ca
    address = flags.node or address
    ca, cert, key = flags.ca or ca, flags.cert or cert, flags.key or key
    missing = [
        name
        for name, value in (
            ("the node's address ([node] address or --node)", address),
            ("the federation CA ([officer] ca or --ca)", ca),
            ("the officer's certificate ([officer] cert or --cert)", cert),
            ("the officer's key ([officer] key or --key)", key),
        )
        if value is None
    ]
    if missing:
        raise SettingsError(f"{path}: missing {'; '.join(missing)}")
    assert address is not None and ca is not None and cert is not None
    assert key is not None
    verifier_key = config.audit.verifier_key
    if flags.verifier_key is not None:
        try:
            verifier_key = read_verifier_key(flags.verifier_key)
        except ValueError as exc:
            raise SettingsError(f"--verifier-key: {exc}") from None
    web = config.web
    web_tls = None
    if web.tls is not None:
        web_tls = WebTls(web.tls.cert, web.tls.key, web.tls.client_ca or ca)
    settings = Settings(
        address=address,
        tls=pki.TlsFiles(ca=ca, cert=cert, key=key),
        state_dir=flags.state_dir or web.state_dir,
        server_name=config.node.server_name,
        timeout=config.node.timeout_seconds,
        policy_file=policy_file,
        verifier_key=verifier_key,
        witnesses=tuple(config.audit.witnesses),
        listen=flags.listen or web.listen,
        page_size=web.page_size,
        allowed_hosts=tuple(web.allowed_hosts),
        web_tls=web_tls,
        denial_burst=config.alerts.denial_burst,
        denial_window=timedelta(seconds=config.alerts.denial_window_seconds),
        report_max_records=config.alerts.report_max_records,
    )
    return settings
