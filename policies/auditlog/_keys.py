"""The log's Ed25519 signing key on disk, and the origin naming convention.

One key per node signs its log's checkpoints. It is kept as PEM PKCS#8 in a file
of mode 0600, created on first use and never overwritten: replacing it would make
every checkpoint signed so far unverifiable with the key officers pinned.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from ._logerrors import LogKeyError
from ._note import encode_verifier_key

__all__ = ["load_or_create_log_key", "log_origin", "log_verifier_key"]


def log_origin(agency: str, federation: str) -> str:
    """Return the origin of an agency's decision log: ``audit.<agency>.<federation>``.

    Parameters
    ----------
    agency : str
        The agency (a PKI identity label).
    federation : str
        The federation (the SPIFFE trust domain).

    Returns
    -------
    str
        The origin, also the name of the log's signing key.
    """
    return f"audit.{agency}.{federation}"


def log_verifier_key(origin: str, signing_key: Ed25519PrivateKey) -> str:
    """Return the verifier key officers pin for a log.

    Parameters
    ----------
    origin : str
        The log's origin.
    signing_key : Ed25519PrivateKey
        The log's signing key.

    Returns
    -------
    str
        ``<origin>+<key ID>+<base64(0x01 || public key)>``.
    """
    return encode_verifier_key(origin, signing_key.public_key())


def load_or_create_log_key(path: Path) -> Ed25519PrivateKey:
    """Load the log's signing key, creating it (mode 0600) if the file is absent.

    Parameters
    ----------
    path : Path
        The PEM (PKCS#8, unencrypted) key file.

    Returns
    -------
    Ed25519PrivateKey
        The key.

    Raises
    ------
    LogKeyError
        If the file cannot be read or created, is not an Ed25519 private key in
        PEM, or can be read by the group or others.
    """
    path = Path(path)
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load(path)  # created meanwhile by another process: use theirs
    except OSError as exc:
        raise LogKeyError(
            f"cannot create log key file {path}: {exc.strerror or exc}"
        ) from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        _fsync_dir(path.parent)
    except OSError as exc:
        raise LogKeyError(
            f"cannot write log key file {path}: {exc.strerror or exc}"
        ) from None
    return key


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise LogKeyError(
            f"cannot read log key file {path}: {exc.strerror or exc}"
        ) from None
    if not stat.S_ISREG(mode):
        raise LogKeyError(f"log key file {path} is not a regular file")
    if mode & 0o077:
        raise LogKeyError(
            f"log key file {path} can be read by others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise LogKeyError(
            f"log key file {path} is not an unencrypted PEM private key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LogKeyError(
            f"log key file {path} holds a {type(key).__name__.removeprefix('_')}, "
            "not an Ed25519 key"
        )
    return key
