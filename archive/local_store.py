"""The local WORM directory store (the embedded default).

Layout under the root::

    objects/{key}        the bytes, read-only (0444), written once
    meta/{key}.json      version, size, digests, metadata, retention, legal hold
    tmp/                 uploads in progress (removed on success or failure)
    url-secret           key of the short-lived read URLs (0600)

An upload goes to ``tmp/``, is fsynced, re-read from disk and checked, then
hard-linked to its final name (``link`` never overwrites, so a key is written
once even with two writers), and the directory is fsynced. A process killed at
any point leaves either no object or a complete one, plus at most a stray
temporary file. Retention and holds are records in ``meta/``: deletes before
retain-until or under hold are refused through this interface. (Unlike S3
Object Lock this cannot stop someone with root on the machine; production
deployments use an S3 store with Object Lock.)
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

from catalog.canonical import format_instant, parse_instant

from .digest import READ_SIZE, Digests, Hasher, hash_file, iter_file
from .errors import ObjectExists, ObjectLocked, ObjectMissing, ReceiptMismatch, StoreError
from .layout import check_key
from .store import ObjectInfo, PutResult, Retention


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class LocalStore:
    """A WORM directory; see the module docstring."""

    def __init__(self, root: Path, *, clock=_utcnow, reread_from_disk: bool = True) -> None:
        self.root = Path(root)
        self.url = f"file://{self.root}"
        self._objects = self.root / "objects"
        self._meta = self.root / "meta"
        self._tmp = self.root / "tmp"
        self._clock = clock
        self._reread_from_disk = reread_from_disk

    # --- set-up -----------------------------------------------------------
    def ensure_ready(self) -> None:
        for folder in (self._objects, self._meta, self._tmp):
            folder.mkdir(parents=True, exist_ok=True)
        secret = self.root / "url-secret"
        if not secret.exists():
            fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))

    def _paths(self, key: str) -> tuple[Path, Path]:
        check_key(key)
        return self._objects / key, self._meta / f"{key}.json"

    def _load_meta(self, key: str) -> dict[str, Any]:
        obj, meta = self._paths(key)
        try:
            return json.loads(meta.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if obj.exists():
                # Object without its record (a crash between the two writes):
                # nothing is known about its lock, so treat it as locked.
                st = obj.stat()
                return {"version": None, "size": st.st_size, "incomplete": True,
                        "created": format_instant(datetime.fromtimestamp(st.st_mtime, timezone.utc))}
            raise ObjectMissing(f"no object at {key}") from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serializes record updates (retention, hold, delete) between processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # --- writing ----------------------------------------------------------
    def put(self, key: str, stream: BinaryIO, *, content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None, retention: Retention | None = None,
            legal_hold: bool = False, check: Callable[[Digests], None] | None = None,
            sm3: bool = False) -> PutResult:
        obj, meta = self._paths(key)
        if obj.exists() or meta.exists():
            raise ObjectExists(f"an object exists at {key} already", hint="objects are written once")
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"{uuid.uuid4().hex}.part"
        hasher = Hasher(sm3=sm3)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb", buffering=0) as f:
                buffer = bytearray(READ_SIZE)
                view = memoryview(buffer)
                while n := stream.readinto(buffer):
                    hasher.update(view[:n])
                    f.write(view[:n])
                os.fsync(f.fileno())
                if self._reread_from_disk:
                    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            sent = hasher.digests()
            if check is not None:
                check(sent)
            stored = hash_file(tmp, sm3=sm3)  # proof of receipt: read back what is on disk
            if (stored.size, stored.sha256) != (sent.size, sent.sha256):
                raise ReceiptMismatch(f"{key}: the disk returned other bytes than were written "
                                      f"(sha256 {stored.sha256[:16]}… != {sent.sha256[:16]}…)",
                                      hint="check the disk; nothing was stored")
            os.chmod(tmp, 0o444)
            obj.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(tmp, obj)
            except FileExistsError:
                raise ObjectExists(f"an object exists at {key} already") from None
            _fsync_dir(obj.parent)
        finally:
            tmp.unlink(missing_ok=True)
        version = sent.sha256[:16]
        record = {"key": key, "version": version, "size": sent.size, "sha256": sent.sha256,
                  "sm3": sent.sm3, "content_type": content_type, "metadata": metadata or {},
                  "retention": _retention_json(retention), "legal_hold": legal_hold,
                  "created": format_instant(self._clock())}
        _write_atomic(meta, json.dumps(record, ensure_ascii=False, sort_keys=True).encode())
        return PutResult(key, version, sent)

    # --- reading ----------------------------------------------------------
    def _check_version(self, key: str, version: str | None) -> dict[str, Any]:
        record = self._load_meta(key)
        if version is not None and record.get("version") not in (None, version):
            raise ObjectMissing(f"no version {version} of {key}")
        return record

    def read(self, key: str, version: str | None = None, *, start: int = 0,
             length: int | None = None) -> Iterator[bytes]:
        self._check_version(key, version)
        obj, _ = self._paths(key)
        if not obj.exists():
            raise ObjectMissing(f"no object at {key} (its record exists)")
        return iter_file(obj, start=start, length=length)

    def stat(self, key: str, version: str | None = None) -> ObjectInfo:
        record = self._check_version(key, version)
        obj, _ = self._paths(key)
        try:
            st = obj.stat()
        except FileNotFoundError:
            raise ObjectMissing(f"no object at {key} (its record exists)") from None
        return ObjectInfo(key=key, version=record.get("version"), size=st.st_size,
                          etag=None, last_modified=datetime.fromtimestamp(st.st_mtime, timezone.utc),
                          content_type=record.get("content_type"),
                          metadata=dict(record.get("metadata") or {}),
                          retention=_retention_from(record.get("retention")),
                          legal_hold=bool(record.get("legal_hold")))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self._objects
        if not base.exists():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                key = path.relative_to(base).as_posix()
                if not key.startswith(prefix):
                    continue
                st = path.stat()
                yield ObjectInfo(key=key, version=None, size=st.st_size, etag=None,
                                 last_modified=datetime.fromtimestamp(st.st_mtime, timezone.utc))

    # --- locks --------------------------------------------------------------
    def _update(self, key: str, version: str | None, change) -> dict[str, Any]:
        with self._locked():
            record = self._check_version(key, version)
            if record.get("incomplete"):
                raise ObjectLocked(f"{key} has no retention record; it cannot be changed",
                                   hint="run `evidence verify` to reconcile it")
            change(record)
            _write_atomic(self._paths(key)[1],
                          json.dumps(record, ensure_ascii=False, sort_keys=True).encode())
            return record

    def extend_retention(self, key: str, version: str | None, until: datetime) -> Retention:
        def change(record: dict[str, Any]) -> None:
            current = _retention_from(record.get("retention"))
            if current and until < current.until:
                raise ObjectLocked(f"{key} is retained until {format_instant(current.until)}; "
                                   "retention can be extended, never shortened")
            mode = current.mode if current else "COMPLIANCE"
            record["retention"] = _retention_json(Retention(mode, max(until, current.until)
                                                            if current else until))
        return _retention_from(self._update(key, version, change)["retention"])  # type: ignore[return-value]

    def set_legal_hold(self, key: str, version: str | None, on: bool) -> None:
        self._update(key, version, lambda record: record.__setitem__("legal_hold", on))

    def delete(self, key: str, version: str | None) -> None:
        obj, meta = self._paths(key)
        with self._locked():
            record = self._check_version(key, version)
            retention = _retention_from(record.get("retention"))
            if record.get("incomplete"):
                raise ObjectLocked(f"{key} has no retention record; refusing to delete it")
            if record.get("legal_hold"):
                raise ObjectLocked(f"{key} is under legal hold")
            if retention and retention.until > self._clock():
                raise ObjectLocked(f"{key} is retained until {format_instant(retention.until)}")
            # Object first: a crash in between leaves a record without bytes
            # (reported missing), never bytes without their lock record.
            obj.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            _fsync_dir(obj.parent)

    # --- playback URLs ------------------------------------------------------
    def _secret(self) -> bytes:
        try:
            return (self.root / "url-secret").read_bytes()
        except FileNotFoundError:
            raise StoreError(f"store {self.root} is not initialized", hint="run `evidence init`") from None

    def read_url(self, key: str, version: str | None, expires: timedelta) -> str:
        """``local:KEY?version=V&expires=EPOCH&sig=HMAC``: checked by ``resolve_read_url``."""
        self._check_version(key, version)
        until = int(time.time() + expires.total_seconds())
        payload = f"{key}\n{version or ''}\n{until}".encode()
        sig = base64.urlsafe_b64encode(hmac.new(self._secret(), payload, hashlib.sha256).digest())
        return f"local:{key}?version={version or ''}&expires={until}&sig={sig.decode().rstrip('=')}"

    def resolve_read_url(self, url: str) -> tuple[str, str | None]:
        """(key, version) of a URL made by ``read_url``; refuses expired or forged ones."""
        try:
            body = url.removeprefix("local:")
            key, _, query = body.partition("?")
            fields = dict(part.split("=", 1) for part in query.split("&"))
            version, until, sig = fields["version"], int(fields["expires"]), fields["sig"]
        except (ValueError, KeyError):
            raise ObjectLocked("malformed read URL") from None
        payload = f"{key}\n{version}\n{until}".encode()
        good = base64.urlsafe_b64encode(hmac.new(self._secret(), payload, hashlib.sha256).digest())
        if not hmac.compare_digest(good.decode().rstrip("="), sig):
            raise ObjectLocked("read URL signature is not valid")
        if until < time.time():
            raise ObjectLocked("read URL has expired")
        return key, version or None


def _retention_json(retention: Retention | None) -> dict[str, str] | None:
    return None if retention is None else {"mode": retention.mode,
                                           "until": format_instant(retention.until)}


def _retention_from(data: dict[str, str] | None) -> Retention | None:
    return None if not data else Retention(data["mode"], parse_instant(data["until"]))  # type: ignore[arg-type]
