"""Identities of federation members as SPIFFE URIs, and reading them from certs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, cast, get_args

from cryptography import x509

from pki._errors import InvalidIdentity

Role: TypeAlias = Literal["node", "coordinator", "officer"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)

_SCHEME: Final = "spiffe://"
_LABEL: Final = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")
_LABEL_RULE: Final = (
    "expected 1-63 characters from a-z, 0-9, '-' and '.', "
    "starting with a letter or digit"
)


def check_label(field: str, value: str) -> str:
    """Return ``value`` if it is a valid federation, agency or member name.

    Parameters
    ----------
    field
        What the value is (``"federation"``, ``"agency"``, ``"name"``), for the message.
    value
        The value to check.

    Returns
    -------
    str
        ``value`` unchanged.

    Raises
    ------
    InvalidIdentity
        If ``value`` is not 1-63 characters of ``a-z``, ``0-9``, ``-`` and ``.``
        starting with a letter or digit.
    """
    if _LABEL.fullmatch(str(value)) is None:
        raise InvalidIdentity(f"{field} {value!r} is invalid: {_LABEL_RULE}")
    return value


@dataclass(frozen=True)
class Identity:
    """A member of a federation: ``spiffe://<federation>/agency/<agency>/<role>/<name>``.

    Parameters
    ----------
    federation
        The federation (the SPIFFE trust domain).
    agency
        The agency the member belongs to.
    role
        ``"node"``, ``"coordinator"`` or ``"officer"``.
    name
        The member's name, unique within its agency and role.

    Raises
    ------
    InvalidIdentity
        If a field is malformed; the message names the field.
    """

    federation: str
    agency: str
    role: Role
    name: str

    def __post_init__(self) -> None:
        check_label("federation", self.federation)
        check_label("agency", self.agency)
        if self.role not in ROLES:
            raise InvalidIdentity(
                f"role {self.role!r} is invalid: expected one of {', '.join(ROLES)}"
            )
        check_label("name", self.name)

    @property
    def uri(self) -> str:
        """The SPIFFE URI of this identity."""
        return (
            f"{_SCHEME}{self.federation}/agency/{self.agency}/{self.role}/{self.name}"
        )

    @property
    def tls_name(self) -> str:
        """The DNS name a node's certificate carries for its identity.

        ``<name>.<agency>.<federation>.accord.invalid`` (RFC 6761 reserves
        ``.invalid``, so it never resolves): a coordinator dials a node's address but
        verifies this name, so only the named agency's node certificate is accepted.
        """
        return f"{self.name}.{self.agency}.{self.federation}.accord.invalid"

    @classmethod
    def parse(cls, uri: str) -> Identity:
        """Parse ``spiffe://<federation>/agency/<agency>/<role>/<name>``.

        Parameters
        ----------
        uri
            The URI, as found in a certificate's SAN.

        Returns
        -------
        Identity
            The identity the URI names.

        Raises
        ------
        InvalidIdentity
            If ``uri`` has another shape or a malformed field.
        """
        expected = f"expected {_SCHEME}<federation>/agency/<agency>/<role>/<name>"
        if not uri.startswith(_SCHEME):
            raise InvalidIdentity(f"identity URI {uri!r} is invalid: {expected}")
        parts = uri[len(_SCHEME) :].split("/")
        if len(parts) != 5 or parts[1] != "agency":
            raise InvalidIdentity(f"identity URI {uri!r} is invalid: {expected}")
        federation, _, agency, role, name = parts
        try:
            return cls(federation, agency, cast(Role, role), name)
        except InvalidIdentity as exc:
            raise InvalidIdentity(f"identity URI {uri!r}: {exc}") from None

    def __str__(self) -> str:
        return self.uri


def describe(cert: x509.Certificate) -> str:
    """Name a certificate in messages: its subject and serial number."""
    return f"'{cert.subject.rfc4514_string()}' (serial {cert.serial_number:x})"


def san_uris(cert: x509.Certificate) -> list[str]:
    """Return the URIs of a certificate's subject alternative names (maybe none)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return san.value.get_values_for_type(x509.UniformResourceIdentifier)


def identity_of(cert: x509.Certificate) -> Identity:
    """Return the identity in a certificate's single SAN URI.

    Parameters
    ----------
    cert
        A leaf certificate issued by ``pki``.

    Returns
    -------
    Identity
        The identity the certificate was issued to.

    Raises
    ------
    InvalidIdentity
        If the certificate has no or several URI SANs, or the URI is malformed.
    """
    uris = san_uris(cert)
    if len(uris) != 1:
        found = "none" if not uris else ", ".join(uris)
        raise InvalidIdentity(
            f"certificate {describe(cert)} carries no single identity: "
            f"expected one URI SAN, found {found}"
        )
    return Identity.parse(uris[0])


def identity_from_pem(pem: bytes) -> Identity:
    """Return the identity in a PEM certificate (as in a gRPC auth context).

    Parameters
    ----------
    pem
        One PEM-encoded X.509 certificate.

    Returns
    -------
    Identity
        The identity in the certificate's SAN URI.

    Raises
    ------
    InvalidIdentity
        If ``pem`` is not a PEM certificate or carries no single valid identity.
    """
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise InvalidIdentity(
            "cannot read an identity: the data is not a PEM X.509 certificate"
        ) from None
    return identity_of(cert)
