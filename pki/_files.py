"""Reading and writing PKI files: exclusive creation, keys 0600, precise errors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from pki._errors import AlreadyExists, CertificateFileError, InvalidIdentity

KEY_MODE: Final = 0o600
PUBLIC_MODE: Final = 0o644
CA_CERT: Final = "ca.crt"
CA_KEY: Final = "ca.key"


@dataclass(frozen=True)
class NewFile:
    """A file to create: where, what, and with which permission bits."""

    path: Path
    data: bytes
    mode: int = PUBLIC_MODE


def read_bytes(path: Path, what: str) -> bytes:
    """Read a whole file, naming it and what it should hold in any error.

    Parameters
    ----------
    path
        The file.
    what
        What it holds, for the message (e.g. ``"certificate"``).

    Returns
    -------
    bytes
        The file's content.

    Raises
    ------
    CertificateFileError
        If the file is missing or unreadable.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertificateFileError(f"{what} file {path} does not exist") from None
    except OSError as exc:
        raise CertificateFileError(
            f"cannot read {what} file {path}: {exc.strerror or exc}"
        ) from None


def load_certificate(path: Path) -> x509.Certificate:
    """Load a PEM X.509 certificate from a file.

    Parameters
    ----------
    path
        The ``.crt`` file.

    Returns
    -------
    x509.Certificate
        The first certificate in the file.

    Raises
    ------
    CertificateFileError
        If the file is missing, unreadable or not a PEM certificate.
    """
    return parse_certificate(read_bytes(path, "certificate"), path)


def parse_certificate(data: bytes, path: Path) -> x509.Certificate:
    """Parse the PEM certificate read from ``path``.

    Raises
    ------
    CertificateFileError
        If ``data`` is not a PEM X.509 certificate; the message names ``path``.
    """
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CertificateFileError(
            f"certificate file {path} does not hold a PEM X.509 certificate"
        ) from None


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Load an unencrypted PEM ECDSA P-256 private key from a file.

    Parameters
    ----------
    path
        The ``.key`` file.

    Returns
    -------
    ec.EllipticCurvePrivateKey
        The key.

    Raises
    ------
    CertificateFileError
        If the file is missing, unreadable, encrypted, not PEM, or not a P-256 key.
    """
    return parse_private_key(read_bytes(path, "private key"), path)


def parse_private_key(data: bytes, path: Path) -> ec.EllipticCurvePrivateKey:
    """Parse the unencrypted PEM ECDSA P-256 private key read from ``path``.

    Raises
    ------
    CertificateFileError
        If ``data`` is encrypted, not a PEM key, or not P-256; the message names
        ``path``.
    """
    try:
        key: PrivateKeyTypes = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CertificateFileError(
            f"private key file {path} is encrypted; expected an unencrypted PEM key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateFileError(
            f"private key file {path} does not hold a PEM private key"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise CertificateFileError(
            f"private key file {path} holds a {key_description(key)} key; "
            "expected ECDSA P-256"
        )
    return key


def key_description(key: object) -> str:
    """Describe a key's type for messages, e.g. ``ECDSA secp384r1`` or ``RSA-2048``."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    return type(key).__name__


def leaf_file(directory: Path, name: str, suffix: str) -> Path:
    """Return ``<directory>/<name><suffix>``, the file of a member's key, CSR or cert.

    Raises
    ------
    InvalidIdentity
        If ``name`` is ``ca``, whose files are the federation CA's.
    """
    if name == "ca":
        raise InvalidIdentity(
            "name 'ca' is reserved: ca.crt and ca.key are the federation CA's files"
        )
    return directory / f"{name}{suffix}"


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Serialize a private key as unencrypted PEM PKCS#8."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_dir(path: Path) -> None:
    """Create a directory and its parents if needed.

    Raises
    ------
    CertificateFileError
        If the directory cannot be created (e.g. a file is in the way).
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CertificateFileError(
            f"cannot create directory {path}: {exc.strerror or exc}"
        ) from None


def write_new_files(files: Sequence[NewFile]) -> None:
    """Create every file, or none: never overwrite, keys created with their mode.

    Each file is opened with ``O_CREAT | O_EXCL`` and its final mode, so a private
    key is never readable by others, not even for an instant. If one file cannot be
    written, the files written before it are removed.

    Parameters
    ----------
    files
        The files to create, in order.

    Raises
    ------
    AlreadyExists
        If any of the files exists; nothing is written.
    CertificateFileError
        If a file cannot be written; nothing is left behind.
    """
    for new in files:
        if os.path.lexists(new.path):
            raise _already_exists(new.path)
    written: list[Path] = []
    try:
        for new in files:
            _write_exclusive(new)
            written.append(new.path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _write_exclusive(new: NewFile) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(new.path, flags, new.mode)
    except FileExistsError:
        raise _already_exists(new.path) from None
    except OSError as exc:
        raise CertificateFileError(
            f"cannot create {new.path}: {exc.strerror or exc}"
        ) from None
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(new.data)
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as exc:
        new.path.unlink(missing_ok=True)
        raise CertificateFileError(
            f"cannot write {new.path}: {exc.strerror or exc}"
        ) from None


def _already_exists(path: Path) -> AlreadyExists:
    return AlreadyExists(
        f"refusing to overwrite existing file {path}; "
        "move it away or choose another output directory"
    )
