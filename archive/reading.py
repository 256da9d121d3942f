"""Reading evidence back: plaintext streams and byte ranges, playback URLs.

Protected (encrypted) records are decrypted here, by the server, chunk by
chunk (each chunk authenticated before a byte of it is released), and are
never handed out as presigned URLs.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta

from catalog.errors import Refused

from . import encryption
from .store import ObjectStore

MAX_URL_LIFETIME = timedelta(minutes=15)


class StoreStream(io.RawIOBase):
    """A store object as a sequential, read-only file."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._pending = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def plain_size(store: ObjectStore, key: str, version: str | None, encrypted: bool) -> int:
    stored = store.stat(key, version).size
    if not encrypted:
        return stored
    header = encryption.read_header(b"".join(store.read(key, version, start=0,
                                                        length=encryption.MAX_HEADER_SIZE)))
    return encryption.plain_size_of(stored, header)


def read_plain(store: ObjectStore, key: str, version: str | None, *, encrypted: bool,
               kek: bytes | None, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    """The record's plaintext, or a byte range of it (for players that seek)."""
    if not encrypted:
        return store.read(key, version, start=start, length=length)
    if kek is None:
        raise encryption.EncryptionKeyError(f"{key} is encrypted and no key-encryption key is loaded")
    size = store.stat(key, version).size
    if start == 0 and length is None:
        return encryption.decrypt_stream(StoreStream(store.read(key, version)), kek, key)

    def read_at(offset: int, count: int) -> bytes:
        return b"".join(store.read(key, version, start=offset, length=count))
    return encryption.decrypt_range(read_at, size, kek, key, start, length)


def playback_url(store: ObjectStore, key: str, version: str | None, *, encrypted: bool,
                 expires: timedelta = timedelta(minutes=5)) -> str:
    """A short-lived, version-pinned URL; refused for encrypted records."""
    if encrypted:
        raise Refused(f"{key} is protected: it is decrypted and streamed by the server, "
                      "never handed out as a URL")
    if expires > MAX_URL_LIFETIME:
        raise Refused(f"read URLs live {int(MAX_URL_LIFETIME.total_seconds() // 60)} minutes at most")
    return store.read_url(key, version, expires)
