"""The custody signing key on disk (Ed25519, PEM, PKCS#8, file mode 0600)."""

from __future__ import annotations

import os
import secrets
import stat
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import insert_missing
from .errors import EvidenceError, InvalidInput, SchemaOutdated
from .models import CatalogKey


class KeyFileError(InvalidInput):
    """A key file is not the service account's own, is open to others, or is malformed."""


def read_key_file(
    path: Path,
    what: str,
    error: type[EvidenceError] | None = None,
    *,
    owners: tuple[int, ...] | None = None,
    forbidden_mode: int = 0o077,
) -> bytes:
    """The bytes of a key file, once it is checked: a regular file, owned by this account, with
    no access for group or others (a key others can read is a key others have).

    Checked on the open file, so the check and the read see the same file. Raises ``error``
    (default ``KeyFileError``) naming the file and what to do; FileNotFoundError passes through.
    ``owners`` and ``forbidden_mode`` widen the check for files another trusted party makes
    (systemd's credentials: owned by root, opened to the service through an ACL).
    """
    owners = owners if owners is not None else (os.geteuid(),)
    fail = error or KeyFileError
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:  # a symbolic link (O_NOFOLLOW), no permission, ...
        raise fail(
            f"{what} {path} cannot be opened: {exc.strerror}",
            hint="make it a regular file owned by the service account, mode 0600",
        ) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise fail(f"{what} {path} is not a regular file", hint="restore the key file from its backup")
        if info.st_uid not in owners:
            raise fail(
                f"{what} {path} belongs to uid {info.st_uid}, not to this account (uid {os.geteuid()})",
                hint=f"run the service as the file's owner, or `chown` it to the service account: {path}",
            )
        if info.st_mode & forbidden_mode:
            raise fail(
                f"{what} {path} is accessible by group or others (mode {stat.S_IMODE(info.st_mode):04o})",
                hint=f"run `chmod 600 {path}` and consider the key exposed",
            )
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            if sum(map(len, chunks)) > 65536:
                raise fail(f"{what} {path} is far too large for a key", hint="restore it from its backup")
        return b"".join(chunks)
    finally:
        os.close(fd)


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = read_key_file(path, "signing key")
    except FileNotFoundError:
        raise SchemaOutdated(
            f"signing key {path} does not exist", hint="run `evidence init` to create it"
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise KeyFileError(
            f"signing key {path} cannot be read: {exc}", hint="restore it from its backup"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"signing key {path} is not an Ed25519 key", hint="restore it from its backup")
    return key


def write_new_private_file(path: Path, data: bytes) -> bool:
    """Create ``path`` (mode 0600, parent 0700) with ``data``; False if it exists already.

    Written under a private name, fsynced, then hard-linked: link() fails if
    the name exists, so two `init`s at once never replace each other's key.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def replace_private_file(source: Path, target: Path) -> None:
    """Rename ``source`` over ``target`` (one step: a crash leaves one or the other), then
    flush the folder so the rename survives a power cut."""
    os.replace(source, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def ensure_signing_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """Load the key, creating it first if it does not exist. Returns (key, created)."""
    if path.exists():
        return load_signing_key(path), False
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    if not write_new_private_file(path, pem):
        return load_signing_key(path), False
    return key, True


def recorded_key_id(session: Session, purpose: str) -> str | None:
    """The id of the key this catalog's records were made with, if any."""
    row = session.get(CatalogKey, purpose)
    return row.key_id if row else None


def record_key_id(session: Session, purpose: str, key_id: str, now: datetime) -> str:
    """Record the key a purpose's records depend on, unless one is recorded already;
    returns the recorded id (another process may have recorded its key first)."""
    insert_missing(
        session, CatalogKey.__table__, {"purpose": purpose, "key_id": key_id, "created_at": now}, ["purpose"]
    )
    return session.execute(select(CatalogKey.key_id).where(CatalogKey.purpose == purpose)).scalar_one()


def set_key_id(session: Session, purpose: str, key_id: str, now: datetime) -> None:
    """Record ``key_id`` for ``purpose``, replacing the one recorded (a rotated key)."""
    row = session.get(CatalogKey, purpose, with_for_update=True)
    if row is None:
        session.add(CatalogKey(purpose=purpose, key_id=key_id, created_at=now))
    else:
        row.key_id, row.created_at = key_id, now
    session.flush()


def forget_key_id(session: Session, purpose: str) -> None:
    row = session.get(CatalogKey, purpose)
    if row is not None:
        session.delete(row)
        session.flush()
