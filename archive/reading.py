"""Reading evidence back: plaintext streams and byte ranges, digests, playback URLs.

Protected (encrypted) records are decrypted here, by the server, chunk by
chunk (each chunk authenticated before a byte of it is released), and are
never handed out as presigned URLs. ``hash_stored`` is the one way the
fixity sweep, the case replay and the export hash what storage holds.
"""

from __future__ import annotations

import io
import itertools
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from catalog.errors import EvidenceError, Refused

from . import encryption
from .digest import Hasher, HashThread
from .encryption import Keys
from .errors import ObjectMissing
from .store import ObjectStore

MAX_URL_LIFETIME = timedelta(minutes=15)
# Chunks read ahead of the hashing at most (store chunks are about 1 MiB): memory stays flat.
READ_AHEAD = 4


class StoreStream(io.RawIOBase):
    """A store object as a sequential, read-only file."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._pending = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
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
    header = encryption.read_header(
        b"".join(store.read(key, version, start=0, length=encryption.MAX_HEADER_SIZE))
    )
    return encryption.plain_size_of(stored, header)


def read_plain(
    store: ObjectStore,
    key: str,
    version: str | None,
    *,
    encrypted: bool,
    kek: Keys | None,
    start: int = 0,
    length: int | None = None,
) -> Iterator[bytes]:
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


def playback_url(
    store: ObjectStore,
    key: str,
    version: str | None,
    *,
    encrypted: bool,
    expires: timedelta = timedelta(minutes=5),
) -> str:
    """A short-lived, version-pinned URL; refused for encrypted records."""
    if encrypted:
        raise Refused(
            f"{key} is protected: it is decrypted and streamed by the server, never handed out as a URL"
        )
    if expires > MAX_URL_LIFETIME:
        raise Refused(f"read URLs live {int(MAX_URL_LIFETIME.total_seconds() // 60)} minutes at most")
    return store.read_url(key, version, expires)


@dataclass(frozen=True)
class StoredHash:
    """What re-reading a stored object found: its plaintext's digests, or why there are none.

    ``problem`` is ``"missing"`` (no object, or not that version) or ``"undecryptable"`` (the
    ciphertext fails authentication: altered, truncated or another object's); then the
    digests are None, ``size`` counts the plaintext read before the failure and ``error``
    is the store's or the decryption's error.
    """

    size: int
    sha256: str | None
    sm3: str | None = None
    problem: Literal["missing", "undecryptable"] | None = None
    error: EvidenceError | None = field(default=None, compare=False)

    @property
    def reason(self) -> str:
        """Why there are no digests (the error's message), or ""."""
        return self.error.message if self.error is not None else ""

    def verdict(self, sha256: str | None, size: int | None = None) -> Literal["ok", "missing", "mismatch"]:
        """Compared with the catalog's digest (and size, when given).

        An undecryptable object is a mismatch: its stored bytes are not those archived.
        """
        if self.problem == "missing":
            return "missing"
        if self.problem is not None or self.sha256 != sha256 or (size is not None and size != self.size):
            return "mismatch"
        return "ok"


def hash_stored(
    store: ObjectStore,
    key: str,
    version: str | None,
    *,
    encrypted: bool,
    kek: Keys | None,
    sm3: bool = False,
    sink: Callable[[bytes], None] | None = None,
) -> StoredHash:
    """Read a stored object whole and hash its plaintext (decrypted when ``encrypted``).

    Each chunk is hashed in a thread while the next is read from the store (hashlib and
    cryptography release the GIL on large updates), at most ``READ_AHEAD`` chunks ahead.
    ``sink``, when given, receives every plaintext chunk in order, in the caller's thread,
    while the chunk before is hashed: the export writes and hashes in one pass. A missing
    or undecryptable object is a result, not an error; anything else (the store down, no
    key loaded, the sink or the hashing failing) is raised here.
    """
    hasher = Hasher(sm3=sm3)
    chunks: Iterator[bytes] | None = None
    try:
        chunks = read_plain(store, key, version, encrypted=encrypted, kek=kek)
        _pump(chunks, hasher, sink)
    except ObjectMissing as exc:
        return StoredHash(hasher.size, None, problem="missing", error=exc)
    except encryption.DecryptionFailed as exc:
        return StoredHash(hasher.size, None, problem="undecryptable", error=exc)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # on a failure, give the store's connection back now, not at collection
    d = hasher.digests()
    return StoredHash(d.size, d.sha256, d.sm3)


def _pump(chunks: Iterator[bytes], hasher: Hasher, sink: Callable[[bytes], None] | None) -> None:
    first = next(chunks, None)
    if first is None:
        return
    # The first chunk is hashed here: most objects (manifests, documents) are one chunk, and
    # a thread would cost them more than it saves.
    hasher.update(first)
    if sink is not None:
        sink(first)
    chunk = next(chunks, None)
    if chunk is None:
        return
    hashed: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    hashing = HashThread(hasher, hashed)
    ahead = 0
    try:
        for piece in itertools.chain((chunk,), chunks):
            # Hashed later, in the thread: it must not change meanwhile.
            chunk = piece if isinstance(piece, bytes) else bytes(piece)
            if ahead < READ_AHEAD:
                ahead += 1
            else:
                hashing.take()  # wait until one is hashed
            hashing.feed(chunk, len(chunk))
            if sink is not None:
                sink(chunk)
        hashing.finish()
    finally:
        hashing.abort()
