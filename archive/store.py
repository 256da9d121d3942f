"""The one object-store interface the rest of the code uses.

Two implementations: ``LocalStore`` (a WORM directory, the embedded default)
and ``S3Store`` (any S3 service with Object Lock, through the minio SDK).
Objects are written once and never overwritten; retention can only be
extended; a version under retention or legal hold cannot be deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from .digest import Digests

LockMode = Literal["COMPLIANCE", "GOVERNANCE"]


@dataclass(frozen=True)
class Retention:
    mode: LockMode
    until: datetime


@dataclass(frozen=True)
class Capabilities:
    """What a store can do beyond the common interface, so callers ask instead of guessing."""

    presigned_urls: bool = False
    """``read_url`` gives URLs a browser can fetch directly (S3); else media is streamed."""
    server_receipt: bool = False
    """The server proves receipt with its own checksums (per-part Content-MD5, ETag)."""
    bucket_policy: bool = False
    """Access is governed by a bucket policy the curator can set (``config.policies_rgw``)."""
    staging: bool = False
    """Bytes can be written first and given a key later, or thrown away (``stage``,
    ``commit_staged``, ``discard``: the local store); an S3 bucket with Object Lock keeps
    whatever was put, so there the content is hashed before anything is stored."""


@dataclass(frozen=True)
class PutResult:
    key: str
    version: str | None
    digests: Digests  # of the bytes as stored (size, sha256, sm3, etag)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    version: str | None
    size: int
    etag: str | None
    last_modified: datetime | None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    retention: Retention | None = None
    legal_hold: bool = False


class BinaryStream(Protocol):
    """What ``put`` reads from: a file opened ``"rb"``, ``io.BytesIO``, a spooled temporary
    file, an ``io.RawIOBase`` reader such as ``archive.encryption.EncryptingReader``."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class ObjectStore(Protocol):
    """What every store offers. Keys are ASCII paths (see ``archive.layout``)."""

    url: str
    lock_mode: LockMode
    """The lock mode of every retention this store sets (from the settings, never per call)."""
    capabilities: Capabilities

    def ensure_ready(self) -> None:
        """Create the bucket (with object lock) or folder if needed; idempotent."""

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
        """Store a stream, hashing it on the way; prove receipt before returning.

        ``retain_until`` locks the new version until then, in the store's ``lock_mode``.

        ``check`` is called with the digests of the bytes sent once all are
        sent and before the object is committed (S3: before the multipart
        upload completes; local: before the file gets its name). If it raises
        (``ContentChanged`` from ``archive.digest.expect``), nothing is stored.
        """

    def read(
        self, key: str, version: str | None = None, *, start: int = 0, length: int | None = None
    ) -> Iterator[bytes]:
        """The object's bytes (or a byte range), streamed."""

    def stat(self, key: str, version: str | None = None) -> ObjectInfo: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Current objects under a prefix, in key order (no retention details)."""

    def extend_retention(self, key: str, version: str | None, until: datetime) -> Retention:
        """Move retain-until later (never earlier), in the store's ``lock_mode`` where the
        version had no lock; returns the retention now in force."""

    def set_legal_hold(self, key: str, version: str | None, on: bool) -> None: ...

    def delete(self, key: str, version: str | None) -> None:
        """Delete a version; ``ObjectLocked`` while retained or held."""

    def read_url(self, key: str, version: str | None, expires: timedelta) -> str:
        """A short-lived, version-pinned URL for playback."""
