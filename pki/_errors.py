"""The exception tree of ``pki``; every message is one line a user can act on.

::

    PkiError                  base of every error raised by ``pki``
    ├── AlreadyExists         a file to be written exists (nothing is overwritten)
    ├── InvalidIdentity       a name, role or SPIFFE URI is malformed, or a
    │                         certificate carries no usable identity
    ├── InvalidHost           a host is neither an IP address nor a DNS name
    ├── FederationMismatch    an identity or CSR is of another federation than the CA
    ├── InvalidCsr            a CSR is not PEM, is badly signed, has another key than
    │                         ECDSA P-256, or requests no or several URI SANs
    ├── CertificateFileError  a certificate, key or CSR file is missing, unreadable,
    │                         unwritable or not what it should be
    └── CertificateProblem    a certificate fails `check_certificate`
        ├── CertificateExpired      its validity ended before ``now``
        ├── CertificateNotYetValid  its validity starts after ``now``
        ├── WrongCa                 it is not signed by the federation CA
        └── WrongPurpose            its extended key usage lacks the purpose
"""

from __future__ import annotations


class PkiError(Exception):
    """Base of every error raised by ``pki``."""


class AlreadyExists(PkiError):
    """A file to be written exists already; ``pki`` never overwrites."""


class InvalidIdentity(PkiError):
    """A name, role or SPIFFE URI is malformed, or a certificate carries none."""


class InvalidHost(PkiError):
    """A host for a certificate is neither an IP address nor a valid DNS name."""


class FederationMismatch(PkiError):
    """An identity or a CSR names another federation than the CA's."""


class InvalidCsr(PkiError):
    """A certificate signing request cannot be signed."""


class CertificateFileError(PkiError):
    """A certificate, key or CSR file is missing, unreadable, unwritable or invalid."""


class CertificateProblem(PkiError):
    """A certificate fails a check; base of the specific problems."""


class CertificateExpired(CertificateProblem):
    """The certificate's validity ended before the time of the check."""


class CertificateNotYetValid(CertificateProblem):
    """The certificate's validity starts after the time of the check."""


class WrongCa(CertificateProblem):
    """The certificate is not signed by the federation CA."""


class WrongPurpose(CertificateProblem):
    """The certificate's extended key usage lacks the purpose asked for."""
