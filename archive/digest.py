"""Digests computed while bytes stream past: SHA-256, optionally SM3, and MD5 per part.

The MD5 of each part is what S3 checks (Content-MD5) and what its ETag is
made of: a single put's ETag is the MD5 of the object, a multipart one is
MD5(concatenated part MD5s) followed by ``-N``. Computing it locally lets a
station prove receipt without read access.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cryptography.hazmat.primitives import hashes

from catalog import selftest

from .errors import ContentChanged

if TYPE_CHECKING:
    from .store import BinaryStream

READ_SIZE = 1 << 20
_CHUNK = 8 << 20  # reads of large files: few system calls, each hashed while the next is read
_BUFFERS = 3


class SM3Hash:
    """hashlib-like SM3 (GB/T 32905) over cryptography's, which hashlib does not offer."""

    name = "sm3"
    digest_size = 32

    def __init__(self) -> None:
        selftest.require(selftest.SM3)  # once per process: refuses a build without SM3
        self._h = hashes.Hash(hashes.SM3())

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)  # any buffer; large updates release the GIL, as hashlib's do

    def digest(self) -> bytes:
        return self._h.copy().finalize()  # like hashlib: callable more than once

    def hexdigest(self) -> str:
        return self.digest().hex()


def new_hash(alg: str) -> Any:
    """A hashlib-like object for ``alg``: a hashlib name (``sha256``, ``md5``…) or ``sm3``."""
    return SM3Hash() if alg.lower() == "sm3" else hashlib.new(alg)


@dataclass(frozen=True)
class Digests:
    size: int
    sha256: str
    sm3: str | None = None
    etag: str | None = None  # S3 ETag of the bytes under the part size used


class Hasher:
    """Feeds SHA-256 (+ SM3) and, when ``part_size`` is given, per-part MD5s."""

    def __init__(self, *, sm3: bool = False, part_size: int | None = None) -> None:
        self._sha256 = hashlib.sha256()
        self._sm3 = SM3Hash() if sm3 else None
        self._part_size = part_size
        self._part_md5 = hashlib.md5()
        self._part_fill = 0
        self.part_md5s: list[bytes] = []
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self._sha256.update(view)
        if self._sm3:
            self._sm3.update(view)
        self.size += len(view)
        if self._part_size is None:
            return
        while view:
            take = min(len(view), self._part_size - self._part_fill)
            self._part_md5.update(view[:take])
            self._part_fill += take
            view = view[take:]
            if self._part_fill == self._part_size:
                self._close_part()

    def _close_part(self) -> None:
        self.part_md5s.append(self._part_md5.digest())
        self._part_md5, self._part_fill = hashlib.md5(), 0

    def digests(self) -> Digests:
        etag = None
        if self._part_size is not None:
            parts = self.part_md5s + (
                [self._part_md5.digest()] if self._part_fill or not self.part_md5s else []
            )
            etag = s3_etag(parts)
        return Digests(
            self.size, self._sha256.hexdigest(), self._sm3.hexdigest() if self._sm3 else None, etag
        )


def s3_etag(part_md5s: list[bytes]) -> str:
    """The ETag S3 gives an object uploaded in these parts (one part: a plain put)."""
    if len(part_md5s) == 1:
        return part_md5s[0].hex()
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


class HashingReader(io.RawIOBase):
    """A read-only stream that hashes every byte read through it."""

    def __init__(self, source: BinaryStream, hasher: Hasher) -> None:
        self._source = source
        self.hasher = hasher

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._source.readinto(buffer) if hasattr(self._source, "readinto") else None
        if n is None:
            data = self._source.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        if n:
            self.hasher.update(memoryview(buffer)[:n])
        return n


def iter_file(
    path: Path, *, start: int = 0, length: int | None = None, size: int = READ_SIZE
) -> Iterator[bytes]:
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        left = length
        while left is None or left > 0:
            chunk = f.read(size if left is None else min(size, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


def hash_file(path: Path, *, sm3: bool = False, part_size: int | None = None) -> Digests:
    """Digests of a whole file, streamed (memory stays at a few read buffers).

    A large file is read in 8 MiB blocks, each hashed in a thread while the next is read
    (hashlib releases the GIL), so reading and hashing overlap.
    """
    hasher = Hasher(sm3=sm3, part_size=part_size)
    with open(path, "rb", buffering=0) as f:
        if os.fstat(f.fileno()).st_size <= _CHUNK:
            buffer = bytearray(READ_SIZE)
            view = memoryview(buffer)
            while n := f.readinto(buffer):
                hasher.update(view[:n])
        else:
            pool: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
            hashing = HashThread(hasher, pool)
            try:
                buffers = 0
                while True:
                    if buffers < _BUFFERS and pool.empty():
                        buffer, buffers = bytearray(_CHUNK), buffers + 1
                    else:
                        buffer = hashing.take()
                    n = f.readinto(buffer)
                    if not n:
                        break
                    hashing.feed(buffer, n)
                hashing.finish()
            finally:
                hashing.abort()
    return hasher.digests()


_Buffer = TypeVar("_Buffer", bytes, bytearray, mmap.mmap)


class HashThread(Generic[_Buffer]):
    """Feeds a ``Hasher``, in a thread of its own, with the buffers given to ``feed``.

    Buffers are hashed in the order given; each goes back to ``pool`` once hashed, where
    ``take`` finds it. hashlib releases the GIL on large updates, so the hashing runs beside
    the caller's reads and writes. An error in the thread is raised by the next ``feed``,
    ``take`` or ``finish``.
    """

    def __init__(self, hasher: Hasher, pool: queue.SimpleQueue[_Buffer]) -> None:
        self._hasher = hasher
        self._pool: queue.SimpleQueue[_Buffer] = pool
        self._work: queue.SimpleQueue[tuple[_Buffer, int] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = threading.Thread(target=self._run, name="hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            buffer, n = item
            try:
                if self._error is None:
                    self._hasher.update(memoryview(buffer)[:n])
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                self._error = exc
            finally:
                self._pool.put(buffer)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def feed(self, buffer: _Buffer, n: int) -> None:
        """Hash ``buffer[:n]``; the buffer must not change until it is back in the pool."""
        self._raise()
        self._work.put((buffer, n))

    def take(self) -> _Buffer:
        """The next buffer back from hashing (waits for one)."""
        buffer: _Buffer = self._pool.get()
        self._raise()
        return buffer

    def finish(self) -> None:
        """Wait until every buffer given is hashed."""
        self.abort()
        self._raise()

    def abort(self) -> None:
        """Stop the thread once the buffers already given are hashed (idempotent)."""
        if self._thread is not None:
            self._work.put(None)
            self._thread.join()
            self._thread = None


def expect(expected: Digests, what: str) -> Callable[[Digests], None]:
    """A store ``check`` that the bytes sent are those hashed before (size and SHA-256)."""

    def check(sent: Digests) -> None:
        if (expected.size, expected.sha256) != (sent.size, sent.sha256):
            raise ContentChanged(
                f"the bytes sent for {what} ({sent.size} bytes, sha256 {sent.sha256[:16]}…) are not "
                f"those hashed before ({expected.size} bytes, {expected.sha256[:16]}…)",
                hint="the source changed while it was being archived; it is left for a retry",
            )

    return check
