"""The S3 store (MinIO, Ceph RADOS Gateway, AWS S3) through the minio SDK.

Uploads are done part by part here rather than by ``put_object`` so that
receipt can be proven without read access: every part is sent with its
Content-MD5 (checked by the server, and required by AWS for object-lock
puts), the ETag the server answers for each part must equal that MD5, and
the bytes are hashed as they go, so a source that changed since it was first
hashed is caught *before* the upload is completed (an aborted upload leaves
nothing behind). Each part's MD5 is computed in the thread that uploads it, beside
the other parts in flight; the SHA-256 of the whole stream as it is read. Parts are
read into a fixed set of buffers: memory is about ``part_size × (parallel + 3)``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import S3Error
from minio.retention import Retention as MinioRetention

from .digest import Digests, Hasher, s3_etag
from .errors import (
    ObjectLocked,
    ObjectMissing,
    ReceiptMismatch,
    StoreError,
    StoreUnavailable,
)
from .layout import check_key
from .store import BinaryStream, Capabilities, LockMode, ObjectInfo, PutResult, Retention

MIB = 1 << 20

_P = ParamSpec("_P")
_T = TypeVar("_T")

_FRACTION = re.compile(r"\.(\d+)")


def parse_s3_time(text: str) -> datetime:
    """ISO 8601 from S3 headers; RGW sends 9 fractional digits, Python takes 6."""
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text.strip())
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def s3_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _read_full(stream: BinaryStream, size: int) -> bytes:
    """Exactly ``size`` bytes unless the stream ends first (short reads are retried)."""
    chunks, missing = [], size
    while missing:
        data = stream.read(missing)
        if not data:
            break
        chunks.append(data)
        missing -= len(data)
    return b"".join(chunks)


class _Parts:
    """Reads the parts after the first into ``count`` buffers used over and over, so memory
    stays at a fixed number of parts however long the stream, with no allocation per part.
    A buffer is handed back with ``release`` once its part is uploaded."""

    def __init__(self, stream: BinaryStream, size: int, count: int) -> None:
        self._stream = stream
        self._size = size
        self._count = count
        self._free: list[bytearray] = []

    def read(self) -> memoryview:
        """The next part: ``size`` bytes unless the stream ends first (short reads retried)."""
        if self._free:
            buffer = self._free.pop()
        elif self._count:
            buffer, self._count = bytearray(self._size), self._count - 1
        else:
            raise RuntimeError("every part buffer is in use")
        view = memoryview(buffer)
        filled = 0
        readinto = getattr(self._stream, "readinto", None)
        while filled < self._size:
            if readinto is not None:
                n = readinto(view[filled:])
            else:
                data = self._stream.read(self._size - filled)
                n = len(data)
                view[filled : filled + n] = data
            if not n:
                break
            filled += n
        return view[:filled]

    def release(self, part: bytes | memoryview) -> None:
        if isinstance(part, memoryview) and isinstance(part.obj, bytearray):
            self._free.append(part.obj)


class S3Store:
    """See the module docstring. One instance per credential (station, curator, reader)."""

    capabilities = Capabilities(presigned_urls=True, server_receipt=True, bucket_policy=True)

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        *,
        lock_mode: LockMode,
        secure: bool = True,
        region: str = "us-east-1",
        part_size: int = 16 * MIB,
        parallel: int = 3,
        read_back: bool = False,
        timeout: float = 60.0,
    ) -> None:
        if not 5 * MIB <= part_size <= 5 * 1024 * MIB:
            raise StoreError("S3 part size must be between 5 MiB and 5 GiB")
        self.url = f"s3://{endpoint}/{bucket}"
        # Where presigned URLs point: the pages' Content-Security-Policy allows media from here.
        self.origin = f"{'https' if secure else 'http'}://{endpoint}"
        self.lock_mode: LockMode = lock_mode
        self.bucket = bucket
        self.part_size = part_size
        self.parallel = max(1, parallel)
        self.read_back = read_back
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=timeout),
            maxsize=self.parallel + 2,
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        # The region is given so that no request is made just to look it up.
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )

    @classmethod
    def from_url(cls, url: str, access_key: str, secret_key: str, **kwargs: Any) -> S3Store:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        secure = query.get("secure", ["true"])[0].lower() not in ("false", "0", "no")
        region = query.get("region", ["us-east-1"])[0]
        if not access_key or not secret_key:
            raise StoreError(
                f"no credentials for {parts.scheme}://{parts.netloc}{parts.path}",
                hint="set EVIDENCE_S3_ACCESS_KEY and EVIDENCE_S3_SECRET_KEY",
            )
        return cls(
            parts.netloc,
            parts.path.strip("/"),
            access_key,
            secret_key,
            secure=secure,
            region=region,
            **kwargs,
        )

    # --- errors -------------------------------------------------------------
    def _call(self, what: str, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return fn(*args, **kwargs)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchVersion", "NoSuchObjectLockConfiguration"):
                raise ObjectMissing(f"{what}: {exc.code}") from exc
            raise StoreError(f"{what}: the store answered {exc.code}: {exc.message}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(
                f"{what}: cannot reach {self.url}: {exc}", hint="the work is left in place and retried"
            ) from exc

    # --- set-up -------------------------------------------------------------
    def ensure_ready(self) -> None:
        if not self._call("bucket check", self.client.bucket_exists, self.bucket):
            self._call("bucket creation", self.client.make_bucket, self.bucket, object_lock=True)
            return
        try:
            config = self._call("object lock check", self.client.get_object_lock_config, self.bucket)
        except ObjectMissing:
            config = None
        if config is None:
            raise StoreError(
                f"bucket {self.bucket} was created without object lock",
                hint="object lock can only be enabled at creation: use a new bucket",
            )

    # --- writing ------------------------------------------------------------
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
        check_key(key)
        retention = Retention(self.lock_mode, retain_until) if retain_until else None
        headers = {
            "Content-Type": content_type,
            # The uploader owns what it uploads: without this the bucket
            # owner (curator, reader) could not read a station's objects.
            "x-amz-acl": "bucket-owner-full-control",
        }
        for name, value in (metadata or {}).items():
            if not (name.isascii() and value.isascii()):
                raise StoreError(
                    f"metadata {name!r} of {key} is not ASCII",
                    hint="S3 headers carry ASCII only; keep other text in manifests",
                )
            headers[f"x-amz-meta-{name}"] = value
        if retention is not None:
            headers["x-amz-object-lock-mode"] = retention.mode
            headers["x-amz-object-lock-retain-until-date"] = s3_time(retention.until)
        if legal_hold:
            headers["x-amz-object-lock-legal-hold"] = "ON"

        # SHA-256 (and SM3) of the whole stream here; the MD5 of each part is computed in
        # the thread that uploads it, and the parts' MD5s make the ETag.
        hasher = Hasher(sm3=sm3)
        part_md5s: list[bytes] = []

        def sent_digests() -> Digests:
            return replace(hasher.digests(), etag=s3_etag(part_md5s))

        def check_sent() -> Digests:
            sent = sent_digests()
            if check is not None:
                check(sent)
            return sent

        first = _read_full(stream, self.part_size)
        hasher.update(first)
        # In use at most: the parts in flight, the one being submitted and the one read ahead.
        parts = _Parts(stream, self.part_size, self.parallel + 2)
        following = parts.read() if len(first) == self.part_size else b""
        if not following:
            part_md5s.append(hashlib.md5(first).digest())
            sent = check_sent()
            md5_hex, md5_b64 = part_md5s[0].hex(), base64.b64encode(part_md5s[0]).decode()
            result = self._call(
                f"put {key}",
                self.client._put_object,
                self.bucket,
                key,
                first,
                {**headers, "Content-MD5": md5_b64},
            )
            if result.etag and result.etag.strip('"') != md5_hex:
                raise ReceiptMismatch(
                    f"{key}: the store acknowledged ETag {result.etag}, the bytes sent have MD5 {md5_hex}"
                )
            version = result.version_id
        else:
            version = self._multipart(
                key, headers, parts, hasher, first, following, check_sent, retention, legal_hold, part_md5s
            )
            sent = sent_digests()
        if self.read_back:
            self._read_back(key, version, sent, sm3)
        return PutResult(key, version, sent)

    def _multipart(
        self,
        key: str,
        headers: dict[str, str],
        parts: _Parts,
        hasher: Hasher,
        first: bytes,
        following: bytes | memoryview,
        check_sent: Callable[[], Digests],
        retention: Retention | None,
        legal_hold: bool,
        part_md5s: list[bytes],
    ) -> str | None:
        from minio.datatypes import Part

        upload_id = self._call(
            f"start upload {key}", self.client._create_multipart_upload, self.bucket, key, dict(headers)
        )
        pending: list[tuple[int, bytes | memoryview, Future[tuple[bytes, str]]]] = []
        done: list[Part] = []

        def upload(number: int, data: bytes | memoryview) -> tuple[bytes, str]:
            # In the upload thread: the MD5 (Content-MD5) beside the other parts' uploads.
            md5 = hashlib.md5(data).digest()
            etag = self._call(
                f"upload {key} part {number}",
                self.client._upload_part,
                self.bucket,
                key,
                data,  # type: ignore[arg-type]  # minio says bytes; takes views
                {"Content-MD5": base64.b64encode(md5).decode()},
                upload_id,
                number,
            )
            return md5, etag

        def collect(limit: int) -> None:
            while len(pending) > limit:
                number, data, future = pending.pop(0)
                md5, etag = future.result()
                parts.release(data)
                etag = etag.strip('"')
                if etag != md5.hex():
                    raise ReceiptMismatch(
                        f"{key}: part {number} acknowledged with ETag {etag}, its bytes have MD5 {md5.hex()}"
                    )
                done.append(Part(number, etag))
                part_md5s.append(md5)

        try:
            with ThreadPoolExecutor(max_workers=self.parallel) as pool:
                data: bytes | memoryview
                ahead: bytes | memoryview
                number, data, ahead = 1, first, following
                while data:
                    pending.append((number, data, pool.submit(upload, number, data)))
                    collect(self.parallel)
                    number, data = number + 1, ahead
                    if data:
                        hasher.update(data)
                        ahead = parts.read() if len(data) == self.part_size else b""
                collect(0)
            sent = check_sent()
            result = self._call(
                f"complete upload {key}",
                self.client._complete_multipart_upload,
                self.bucket,
                key,
                upload_id,
                done,
            )
        except BaseException:
            try:
                self.client._abort_multipart_upload(self.bucket, key, upload_id)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise
        # Some servers (RGW with minio 7.2) return no ETag here; when one is
        # given it must be the composite of the parts we sent.
        if result.etag and result.etag.strip('"') != sent.etag:
            raise ReceiptMismatch(
                f"{key}: the store completed the upload as {result.etag}, the parts sent make {sent.etag}"
            )
        # Ceph RGW 16 ignores object-lock headers on multipart uploads: lock the
        # completed version explicitly (harmless where the headers did apply).
        if retention is not None:
            self._lock_call(
                f"lock {key}",
                self.client.set_object_retention,
                self.bucket,
                key,
                MinioRetention(COMPLIANCE if retention.mode == "COMPLIANCE" else GOVERNANCE, retention.until),
                version_id=result.version_id,
            )
        if legal_hold:
            self._lock_call(
                f"hold {key}",
                self.client.enable_object_legal_hold,
                self.bucket,
                key,
                version_id=result.version_id,
            )
        return result.version_id

    def _read_back(self, key: str, version: str | None, sent: Digests, sm3: bool) -> None:
        check = Hasher(sm3=sm3)
        for chunk in self.read(key, version):
            check.update(chunk)
        got = check.digests()
        if (got.size, got.sha256) != (sent.size, sent.sha256):
            raise ReceiptMismatch(
                f"{key}: reading back gave {got.size} bytes with sha256 "
                f"{got.sha256[:16]}…, {sent.size} bytes {sent.sha256[:16]}… were sent"
            )

    # --- reading ------------------------------------------------------------
    def read(
        self, key: str, version: str | None = None, *, start: int = 0, length: int | None = None
    ) -> Iterator[bytes]:
        check_key(key)
        response = self._call(
            f"get {key}",
            self.client.get_object,
            self.bucket,
            key,
            offset=start,
            length=length or 0,
            version_id=version,
        )

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.stream(MIB)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise StoreUnavailable(f"reading {key} was interrupted: {exc}") from exc
            finally:
                response.close()
                response.release_conn()

        return chunks()

    def stat(self, key: str, version: str | None = None) -> ObjectInfo:
        check_key(key)
        st = self._call(f"stat {key}", self.client.stat_object, self.bucket, key, version_id=version)
        headers = {k.lower(): v for k, v in (st.metadata or {}).items()}
        retention = None
        if headers.get("x-amz-object-lock-mode") and headers.get("x-amz-object-lock-retain-until-date"):
            # S3 has these two lock modes only.
            retention = Retention(
                cast(LockMode, headers["x-amz-object-lock-mode"].upper()),
                parse_s3_time(headers["x-amz-object-lock-retain-until-date"]),
            )
        user = {k[len("x-amz-meta-") :]: v for k, v in headers.items() if k.startswith("x-amz-meta-")}
        assert st.size is not None, "stat_object always gives a size (0 without Content-Length)"
        return ObjectInfo(
            key=key,
            version=st.version_id,
            size=st.size,
            etag=(st.etag or "").strip('"'),
            last_modified=st.last_modified,
            content_type=st.content_type,
            metadata=user,
            retention=retention,
            legal_hold=headers.get("x-amz-object-lock-legal-hold", "").upper() == "ON",
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        objects = self._call("list", self.client.list_objects, self.bucket, prefix=prefix, recursive=True)
        try:
            for obj in objects:
                yield ObjectInfo(
                    key=obj.object_name,
                    version=obj.version_id,
                    size=obj.size or 0,
                    etag=(obj.etag or "").strip('"'),
                    last_modified=obj.last_modified,
                )
        except S3Error as exc:
            raise StoreError(f"list {prefix!r}: the store answered {exc.code}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"list {prefix!r}: cannot reach {self.url}: {exc}") from exc

    # --- locks ----------------------------------------------------------------
    def extend_retention(self, key: str, version: str | None, until: datetime) -> Retention:
        current = self.stat(key, version).retention
        if current and until <= current.until:
            if until < current.until:
                raise ObjectLocked(
                    f"{key} is retained until {s3_time(current.until)}; "
                    "retention can be extended, never shortened"
                )
            return current
        mode = current.mode if current else self.lock_mode
        self._lock_call(
            f"extend retention of {key}",
            self.client.set_object_retention,
            self.bucket,
            key,
            MinioRetention(COMPLIANCE if mode == "COMPLIANCE" else GOVERNANCE, until),
            version_id=version,
        )
        kept = self.stat(key, version).retention
        if kept is None or abs((kept.until - until).total_seconds()) > 1:
            raise StoreError(
                f"{key}: the store was asked to retain until {s3_time(until)} but keeps "
                f"{s3_time(kept.until) if kept else 'no retention'}",
                hint="the server cannot hold dates this far ahead; lower the lock horizon",
            )
        return kept

    def set_legal_hold(self, key: str, version: str | None, on: bool) -> None:
        fn = self.client.enable_object_legal_hold if on else self.client.disable_object_legal_hold
        self._lock_call(
            f"{'set' if on else 'release'} legal hold on {key}", fn, self.bucket, key, version_id=version
        )

    def delete(self, key: str, version: str | None) -> None:
        # Without a version id S3 only adds a delete marker; always name one.
        version = version or self.stat(key).version
        self._lock_call(f"delete {key}", self.client.remove_object, self.bucket, key, version_id=version)

    def _lock_call(self, what: str, fn: Callable[_P, object], *args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            self._call(what, fn, *args, **kwargs)
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, S3Error) and cause.code in (
                "AccessDenied",
                "InvalidRequest",
                "ObjectLocked",
            ):
                raise ObjectLocked(
                    f"{what} refused by the store: {cause.code}: {cause.message}",
                    hint="the object is retained or held",
                ) from cause
            raise

    def read_url(self, key: str, version: str | None, expires: timedelta) -> str:
        check_key(key)
        return self._call(
            f"presign {key}",
            self.client.presigned_get_object,
            self.bucket,
            key,
            expires=expires,
            version_id=version,
        )
