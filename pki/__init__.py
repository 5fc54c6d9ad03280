"""Accord's PKI: federation CA, P-256 certificates with SPIFFE identities, mTLS.

The command group (`cli`, `EXIT_CODES`, ...) is loaded on first access, so that
servers importing ``pki`` for TLS do not import typer, click and rich.
"""

from typing import TYPE_CHECKING, Any

from pki._ca import CaPaths as CaPaths
from pki._ca import ca_federation as ca_federation
from pki._ca import init_ca as init_ca
from pki._check import Purpose as Purpose
from pki._check import check_certificate as check_certificate
from pki._csr import CsrPaths as CsrPaths
from pki._csr import make_csr as make_csr
from pki._csr import sign_csr as sign_csr
from pki._errors import AlreadyExists as AlreadyExists
from pki._errors import CertificateExpired as CertificateExpired
from pki._errors import CertificateFileError as CertificateFileError
from pki._errors import CertificateNotYetValid as CertificateNotYetValid
from pki._errors import CertificateProblem as CertificateProblem
from pki._errors import FederationMismatch as FederationMismatch
from pki._errors import InvalidCsr as InvalidCsr
from pki._errors import InvalidHost as InvalidHost
from pki._errors import InvalidIdentity as InvalidIdentity
from pki._errors import PkiError as PkiError
from pki._errors import WrongCa as WrongCa
from pki._errors import WrongPurpose as WrongPurpose
from pki._files import load_certificate as load_certificate
from pki._identity import ROLES as ROLES
from pki._identity import Identity as Identity
from pki._identity import Role as Role
from pki._identity import identity_from_pem as identity_from_pem
from pki._identity import identity_of as identity_of
from pki._issue import LeafPaths as LeafPaths
from pki._issue import issue as issue
from pki._tls import TlsFiles as TlsFiles
from pki._tls import TlsMaterial as TlsMaterial
from pki._tls import channel_credentials as channel_credentials
from pki._tls import peer_identity as peer_identity
from pki._tls import server_credentials as server_credentials

if TYPE_CHECKING:
    from pki._cli import EXIT_ALREADY_EXISTS as EXIT_ALREADY_EXISTS
    from pki._cli import EXIT_CODES as EXIT_CODES
    from pki._cli import EXIT_PKI_ERROR as EXIT_PKI_ERROR
    from pki._cli import cli as cli

_CLI_NAMES = frozenset({"EXIT_ALREADY_EXISTS", "EXIT_CODES", "EXIT_PKI_ERROR", "cli"})


def __getattr__(name: str) -> Any:
    """Load the names of the command group on first access."""
    if name in _CLI_NAMES:
        from pki import _cli

        return getattr(_cli, name)
    raise AttributeError(f"module 'pki' has no attribute {name!r}")


__all__ = [
    "EXIT_ALREADY_EXISTS",
    "EXIT_CODES",
    "EXIT_PKI_ERROR",
    "ROLES",
    "AlreadyExists",
    "CaPaths",
    "CertificateExpired",
    "CertificateFileError",
    "CertificateNotYetValid",
    "CertificateProblem",
    "CsrPaths",
    "FederationMismatch",
    "Identity",
    "InvalidCsr",
    "InvalidHost",
    "InvalidIdentity",
    "LeafPaths",
    "PkiError",
    "Purpose",
    "Role",
    "TlsFiles",
    "TlsMaterial",
    "WrongCa",
    "WrongPurpose",
    "ca_federation",
    "channel_credentials",
    "check_certificate",
    "cli",
    "identity_from_pem",
    "identity_of",
    "init_ca",
    "issue",
    "load_certificate",
    "make_csr",
    "peer_identity",
    "server_credentials",
    "sign_csr",
]
