"""The local WORM directory store (the embedded default).

Layout under the root::

    objects/{key}        the bytes, read-only (0444), written once
    meta/{key}.json      version, size, digests, metadata, retention, legal hold
    tmp/                 uploads in progress and staged originals (removed on success or
                         failure; left by a killed process, removed a day later)
    url-secret           key of the short-lived read URLs (0600)

An upload goes to ``tmp/``, hashed as it is written (whole blocks with O_DIRECT
where the file system takes it), is read back from disk and hashed again (range
by range while later bytes are still being written, the rest after the final
fsync), checked, then hard-linked to its final name (``link`` never overwrites,
so a key is written once even with two writers), and the directory is fsynced. A process killed at
any point leaves either no object or a complete one, plus at most a stray
temporary file. Retention and holds are records in ``meta/``: deletes before
retain-until or under hold are refused through this interface. (Unlike S3
Object Lock this cannot stop someone with root on the machine; production
deployments use an S3 store with Object Lock.)
"""

from __future__ import annotations

import base64
import errno
import fcntl
import hashlib
import hmac
import io
import json
import mmap
import os
import queue
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from catalog.canonical import format_instant, parse_instant

from .digest import READ_SIZE, Digests, Hasher, HashThread, iter_file
from .errors import (
    ObjectExists,
    ObjectLocked,
    ObjectMissing,
    ReceiptMismatch,
    StoreError,
)
from .layout import check_key
from .store import BinaryStream, Capabilities, LockMode, ObjectInfo, PutResult, Retention

STAGED_SUFFIX = ".part"
STAGED_MAX_AGE = timedelta(days=1)


@dataclass(frozen=True)
class Staged:
    """Bytes in a store's temporary file, read back from disk and found as written."""

    path: Path
    digests: Digests


def _utcnow() -> datetime:
    return datetime.now(UTC)


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


_CHUNK = 8 << 20  # bytes per read and write
_BUFFERS = 3  # write buffers: one being filled, the others being hashed
_READ_BACK_EVERY = 32 << 20  # read back from disk while the rest is being written
_ALIGN = 1 << 20  # read-back ranges end on whole pages (whole MiB)
_BLOCK = 4096  # O_DIRECT alignment of lengths and offsets


def _set_direct(fd: int, on: bool) -> bool:
    """Turn O_DIRECT on or off for ``fd``; False where the file system does not take it."""
    if not hasattr(os, "O_DIRECT"):
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT if on else flags & ~os.O_DIRECT)
    except OSError:
        return False
    return on


def _fill(stream: BinaryStream, view: memoryview) -> int:
    """Read until ``view`` is full or the stream ends; the number of bytes read."""
    filled = 0
    while filled < len(view):
        n = stream.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled


def _append(fd: int, view: memoryview, direct: bool) -> bool:
    """Write all of ``view``; with ``direct``, whole blocks go straight to the disk (O_DIRECT)
    and a last piece smaller than a block goes through the page cache. Returns whether
    O_DIRECT is still on (it is turned off for good at the first piece it cannot take)."""
    while view:
        if direct:
            aligned = len(view) - len(view) % _BLOCK
            n = 0
            if aligned:
                try:
                    n = os.write(fd, view[:aligned])
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
            if n % _BLOCK or not n:
                direct = _set_direct(fd, False)
        else:
            n = os.write(fd, view)
        view = view[n:]
    return direct


class _ReadBack:
    """Proof of receipt: reads back from disk what was written to ``fd`` and hashes it.

    Every ``_READ_BACK_EVERY`` bytes written, a thread drops the range from the page cache
    (``POSIX_FADV_DONTNEED``; after an ``fdatasync`` when the range went through the page
    cache, so that its pages are clean and can be dropped) and reads it again, with O_DIRECT
    where the file system takes it, so the bytes hashed come from the disk while later bytes
    are still being written; a second thread hashes them. ``finish`` (called after the final
    ``fsync``) does the same for the rest, reading to the end of the file. With
    ``evict=False`` nothing is flushed or dropped here and the bytes may come from the page
    cache. A small object (no thread started) is read back at once by ``finish``.
    """

    def __init__(self, fd: int, path: Path, *, sm3: bool, evict: bool) -> None:
        self.hasher = Hasher(sm3=sm3)
        self._fd = fd
        self._path = path
        self._evict = evict
        self._done = 0  # bytes read back so far
        self._asked = 0  # bytes handed to the thread
        self._reader: io.FileIO | None = None
        self._hashing: HashThread[mmap.mmap] | None = None
        self._pool: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._buffers = 0
        self._direct = False
        self._work: queue.SimpleQueue[tuple[int, bool] | None] = queue.SimpleQueue()  # for the thread
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def written(self, total: int, *, cached: bool) -> None:
        """``total`` bytes are in the file (``cached``: some through the page cache, not
        O_DIRECT): read back the whole MiBs not read yet."""
        end = total - total % _ALIGN
        if end - self._asked < _READ_BACK_EVERY:
            return
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="local-store-read-back", daemon=True)
            self._thread.start()
        self._asked = end
        self._work.put((end, cached))

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            if self._error is None:
                try:
                    self._read_back(item[0], flush=item[1])
                except BaseException as exc:  # noqa: BLE001 - reported by finish()
                    self._error = exc

    def _read_back(self, end: int | None, *, flush: bool) -> None:
        """Read back from ``self._done`` to ``end`` (None: to the end of the file)."""
        start = self._done
        if self._evict:
            if flush:
                os.fdatasync(self._fd)
            os.posix_fadvise(self._fd, start, 0 if end is None else end - start, os.POSIX_FADV_DONTNEED)
        if self._reader is None:
            self._reader = open(self._path, "rb", buffering=0)  # closed in _close
        if self._hashing is None and end is None:  # a small object: all of it here, at once
            block = bytearray(READ_SIZE)
            view = memoryview(block)
            while n := self._reader.readinto(block):
                self.hasher.update(view[:n])
                self._done += n
            return
        if self._hashing is None:
            # With O_DIRECT the bytes come from the disk, never from the page cache. Without
            # it, read just the ranges asked for: pages read ahead past ``end`` would have to
            # be dropped and read again with the next range.
            self._direct = _set_direct(self._reader.fileno(), True)
            os.posix_fadvise(self._reader.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
            self._hashing = HashThread(self.hasher, self._pool)
        self._reader.seek(start)
        while end is None or self._done < end:
            if self._buffers == _BUFFERS or not self._pool.empty():
                buffer = self._hashing.take()
            else:  # page-aligned, as O_DIRECT needs
                buffer, self._buffers = mmap.mmap(-1, _CHUNK), self._buffers + 1
            view = memoryview(buffer)
            want = len(buffer) if end is None else min(len(buffer), end - self._done)
            try:
                n = self._reader.readinto(view[:want])
            except OSError as exc:
                if not (self._direct and exc.errno == errno.EINVAL):
                    raise
                self._direct = _set_direct(self._reader.fileno(), False)
                n = self._reader.readinto(view[:want])
            if not n:
                self._pool.put(buffer)
                if end is None:
                    break
                raise ReceiptMismatch(
                    f"{self._path}: the file on disk ended after {self._done} bytes, {end} were written"
                )
            self._hashing.feed(buffer, n)
            self._done += n
        if self._evict:  # what was read back is not needed in memory either
            os.posix_fadvise(self._fd, start, 0 if end is None else end - start, os.POSIX_FADV_DONTNEED)

    def _stop(self) -> None:
        if self._thread is not None:
            self._work.put(None)
            self._thread.join()
            self._thread = None

    def _close(self) -> None:
        if self._hashing is not None:
            self._hashing.abort()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def finish(self) -> Digests:
        """After the final ``fsync``: read back the rest, to the end of the file."""
        try:
            self._stop()
            if self._error is not None:
                raise self._error
            self._read_back(None, flush=False)
            if self._hashing is not None:
                self._hashing.finish()
            return self.hasher.digests()
        finally:
            self._close()

    def abort(self) -> None:
        self._stop()
        self._close()


class LocalStore:
    """A WORM directory; see the module docstring."""

    capabilities = Capabilities(staging=True)

    def __init__(
        self,
        root: Path,
        *,
        lock_mode: LockMode,
        clock: Callable[[], datetime] = _utcnow,
        reread_from_disk: bool = True,
    ) -> None:
        self.root = Path(root)
        self.url = f"file://{self.root}"
        self.lock_mode: LockMode = lock_mode
        self._objects = self.root / "objects"
        self._meta = self.root / "meta"
        self._tmp = self.root / "tmp"
        self._clock = clock
        self._reread_from_disk = reread_from_disk

    # --- set-up -----------------------------------------------------------
    def ensure_ready(self) -> None:
        for folder in (self._objects, self._meta, self._tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self.clean_staged()
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
            # Written by this store: always an object.
            return cast(dict[str, Any], json.loads(meta.read_text(encoding="utf-8")))
        except FileNotFoundError:
            if obj.exists():
                # Object without its record (a crash between the two writes):
                # nothing is known about its lock, so treat it as locked.
                st = obj.stat()
                return {
                    "version": None,
                    "size": st.st_size,
                    "incomplete": True,
                    "created": format_instant(datetime.fromtimestamp(st.st_mtime, UTC)),
                }
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
    def put(
        self,
        key: str,
        stream: BinaryStream,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        retain_until: datetime | None = None,
        legal_hold: bool = False,
        check: Callable[[Digests], None] | None = None,
        sm3: bool = False,
    ) -> PutResult:
        obj, meta = self._paths(key)
        if obj.exists() or meta.exists():
            raise ObjectExists(f"an object exists at {key} already", hint="objects are written once")
        staged = self.stage(stream, check=check, sm3=sm3)
        try:
            return self.commit_staged(
                staged,
                key,
                content_type=content_type,
                metadata=metadata,
                retain_until=retain_until,
                legal_hold=legal_hold,
            )
        finally:
            self.discard(staged)

    def stage(
        self, stream: BinaryStream, *, check: Callable[[Digests], None] | None = None, sm3: bool = False
    ) -> Staged:
        """Write the stream to a temporary file of the store, hashed as it is written and read
        back from disk: nothing is stored until ``commit_staged`` gives it a key, and
        ``discard`` removes it. The ingest stages an original before it knows whether the
        content is archived already, so the station copy is read once, not twice."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"{uuid.uuid4().hex}{STAGED_SUFFIX}"
        ok = False
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                sent, stored = self._write(fd, tmp, stream, check, sm3)
            finally:
                os.close(fd)
            if (stored.size, stored.sha256) != (sent.size, sent.sha256):
                raise ReceiptMismatch(
                    f"the disk returned other bytes than were written "
                    f"(sha256 {stored.sha256[:16]}… != {sent.sha256[:16]}…)",
                    hint="check the disk; nothing was stored",
                )
            os.chmod(tmp, 0o444)
            ok = True
            return Staged(tmp, sent)
        finally:
            if not ok:
                tmp.unlink(missing_ok=True)

    def commit_staged(
        self,
        staged: Staged,
        key: str,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        retain_until: datetime | None = None,
        legal_hold: bool = False,
    ) -> PutResult:
        """Store staged bytes under ``key`` (written once: an existing key is refused)."""
        obj, meta = self._paths(key)
        retention = Retention(self.lock_mode, retain_until) if retain_until else None
        if obj.exists() or meta.exists():
            raise ObjectExists(f"an object exists at {key} already", hint="objects are written once")
        obj.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(staged.path, obj)
        except FileExistsError:
            raise ObjectExists(f"an object exists at {key} already") from None
        _fsync_dir(obj.parent)
        self.discard(staged)
        sent = staged.digests
        version = sent.sha256[:16]
        record = {
            "key": key,
            "version": version,
            "size": sent.size,
            "sha256": sent.sha256,
            "sm3": sent.sm3,
            "content_type": content_type,
            "metadata": metadata or {},
            "retention": _retention_json(retention),
            "legal_hold": legal_hold,
            "created": format_instant(self._clock()),
        }
        _write_atomic(meta, json.dumps(record, ensure_ascii=False, sort_keys=True).encode())
        return PutResult(key, version, sent)

    def discard(self, staged: Staged) -> None:
        """Remove staged bytes (after ``commit_staged`` only the temporary name goes)."""
        staged.path.unlink(missing_ok=True)

    def clean_staged(self, older_than: timedelta = STAGED_MAX_AGE) -> int:
        """Remove temporary files left by processes killed while writing or holding them: a
        file untouched for ``older_than`` belongs to no live upload (an upload writes it to the
        end at once, and a staged original waits at most for one catalog decision)."""
        removed, limit = 0, time.time() - older_than.total_seconds()
        for entry in self._tmp.glob(f"*{STAGED_SUFFIX}") if self._tmp.is_dir() else ():
            try:
                if entry.lstat().st_mtime < limit:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def _write(
        self, fd: int, tmp: Path, stream: BinaryStream, check: Callable[[Digests], None] | None, sm3: bool
    ) -> tuple[Digests, Digests]:
        """Write the stream to ``fd``; return the digests of the bytes sent and of the bytes
        read back from disk.

        Whole blocks are written with O_DIRECT where the file system takes it (no copy into
        the page cache), the bytes are hashed in a thread beside the writes, and the file is
        read back from disk in another one while later bytes are still being written (see
        ``_ReadBack``); hashlib and the system calls release the GIL, so the work spreads over
        the cores. An object that fits in one buffer is handled without threads.
        """
        hasher = Hasher(sm3=sm3)
        back = _ReadBack(fd, tmp, sm3=sm3, evict=self._reread_from_disk)
        direct = _set_direct(fd, True)
        pool: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        hashing: HashThread[mmap.mmap] | None = None
        buffers, written, ok = 0, 0, False
        try:
            while True:
                if hashing is not None and (buffers == _BUFFERS or not pool.empty()):
                    buffer = hashing.take()
                else:  # page-aligned, as O_DIRECT needs
                    buffer, buffers = mmap.mmap(-1, _CHUNK), buffers + 1
                view = memoryview(buffer)
                n = _fill(stream, view)
                if n == _CHUNK and hashing is None:
                    hashing = HashThread(hasher, pool)
                if hashing is None:
                    hasher.update(view[:n])
                elif n:
                    # Hashed there while written here; the buffer comes back to the pool
                    # once hashed and is filled again only after this write has returned.
                    hashing.feed(buffer, n)
                direct = _append(fd, view[:n], direct)
                written += n
                back.written(written, cached=not direct)
                if n < _CHUNK:
                    break
            if hashing is not None:
                hashing.finish()
            sent = hasher.digests()
            if check is not None:
                check(sent)
            os.fsync(fd)
            stored = back.finish()
            ok = True
            return sent, stored
        finally:
            if not ok:
                if hashing is not None:
                    hashing.abort()
                back.abort()

    # --- reading ----------------------------------------------------------
    def _check_version(self, key: str, version: str | None) -> dict[str, Any]:
        record = self._load_meta(key)
        if version is not None and record.get("version") not in (None, version):
            raise ObjectMissing(f"no version {version} of {key}")
        return record

    def read(
        self, key: str, version: str | None = None, *, start: int = 0, length: int | None = None
    ) -> Iterator[bytes]:
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
        return ObjectInfo(
            key=key,
            version=record.get("version"),
            size=st.st_size,
            etag=None,
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
            content_type=record.get("content_type"),
            metadata=dict(record.get("metadata") or {}),
            retention=_retention_from(record.get("retention")),
            legal_hold=bool(record.get("legal_hold")),
        )

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
                yield ObjectInfo(
                    key=key,
                    version=None,
                    size=st.st_size,
                    etag=None,
                    last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
                )

    # --- locks --------------------------------------------------------------
    def _update(
        self, key: str, version: str | None, change: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        with self._locked():
            record = self._check_version(key, version)
            if record.get("incomplete"):
                raise ObjectLocked(
                    f"{key} has no retention record; it cannot be changed",
                    hint="run `evidence verify` to reconcile it",
                )
            change(record)
            _write_atomic(
                self._paths(key)[1], json.dumps(record, ensure_ascii=False, sort_keys=True).encode()
            )
            return record

    def extend_retention(self, key: str, version: str | None, until: datetime) -> Retention:
        def change(record: dict[str, Any]) -> None:
            current = _retention_from(record.get("retention"))
            if current and until < current.until:
                raise ObjectLocked(
                    f"{key} is retained until {format_instant(current.until)}; "
                    "retention can be extended, never shortened"
                )
            mode = current.mode if current else self.lock_mode
            record["retention"] = _retention_json(
                Retention(mode, max(until, current.until) if current else until)
            )

        retention = _retention_from(self._update(key, version, change)["retention"])
        assert retention is not None, "change() always sets a retention"
        return retention

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
    return None if retention is None else {"mode": retention.mode, "until": format_instant(retention.until)}


def _retention_from(data: dict[str, str] | None) -> Retention | None:
    # The mode is one this store wrote (its lock_mode, kept on extension).
    return None if not data else Retention(cast(LockMode, data["mode"]), parse_instant(data["until"]))
