"""One contract, two stores: the local WORM directory and a real S3 server (Ceph RGW).

Object lock is proven on the server's real clock, so retention periods here
are a few seconds long.
"""

import hashlib
import io
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from archive.digest import Digests, expect
from archive.errors import ContentChanged, ObjectLocked, ObjectMissing, StoreError

MIB = 1 << 20


def now() -> datetime:
    return datetime.now(UTC)


def payload(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 4096  # 128 KiB
    return (block * (size // len(block) + 1))[:size]


def put(store, key: str, data: bytes, **kw):
    return store.put(key, io.BytesIO(data), **kw)


@pytest.mark.parametrize("size", [0, 1000, 5 * MIB, 12 * MIB + 17])
def test_put_read_stat_round_trip(store, size: int) -> None:
    data = payload(size)
    result = put(
        store,
        "originals/2020/11/05/A-1.mp4",
        data,
        content_type="video/mp4",
        metadata={"sha256": hashlib.sha256(data).hexdigest()},
        sm3=True,
    )
    assert result.digests.size == size
    assert result.digests.sha256 == hashlib.sha256(data).hexdigest()
    assert result.digests.sm3 and len(result.digests.sm3) == 64
    assert b"".join(store.read(result.key, result.version)) == data
    info = store.stat(result.key, result.version)
    assert (info.size, info.version, info.content_type) == (size, result.version, "video/mp4")
    assert info.metadata["sha256"] == hashlib.sha256(data).hexdigest()
    if info.etag:  # S3: the ETag the server keeps is the one computed while sending
        assert info.etag == result.digests.etag


def test_byte_ranges(store) -> None:
    data = payload(6 * MIB + 3)
    r = put(store, "derivatives/A-1/proxy-000000000000.mp4", data)
    for start, length in [(0, 1), (5, 100), (5 * MIB - 2, 10), (6 * MIB, 3), (6 * MIB + 2, 1)]:
        assert (
            b"".join(store.read(r.key, r.version, start=start, length=length)) == data[start : start + length]
        )
    assert b"".join(store.read(r.key, r.version, start=6 * MIB)) == data[6 * MIB :]


def test_a_source_that_changed_since_hashing_is_not_stored(store) -> None:
    data = payload(7 * MIB)
    expected = Digests(len(data), hashlib.sha256(data).hexdigest())
    changed = data[:-1] + b"\x00"
    with pytest.raises(ContentChanged):
        put(store, "originals/2020/11/05/A-2.mp4", changed, check=expect(expected, "A-2"))
    with pytest.raises(ObjectMissing):
        store.stat("originals/2020/11/05/A-2.mp4")
    assert put(store, "originals/2020/11/05/A-2.mp4", data, check=expect(expected, "A-2")).digests == Digests(
        len(data), expected.sha256, None, put_etag(store, data)
    )


def put_etag(store, data: bytes) -> str | None:
    from archive.digest import Hasher

    part = getattr(store, "part_size", None)
    if part is None:
        return None
    h = Hasher(part_size=part)
    h.update(data)
    return h.digests().etag


def test_missing_objects(store) -> None:
    with pytest.raises(ObjectMissing):
        store.stat("originals/none.mp4")
    with pytest.raises(ObjectMissing):
        b"".join(store.read("originals/none.mp4"))


def test_list_by_prefix(store) -> None:
    for key in [
        "cases/K-1/events/000001.json",
        "cases/K-1/events/000002.json",
        "cases/K-2/events/000001.json",
    ]:
        put(store, key, key.encode())
    assert [o.key for o in store.list("cases/K-1/")] == [
        "cases/K-1/events/000001.json",
        "cases/K-1/events/000002.json",
    ]
    assert len(list(store.list("cases/"))) == 3


def test_retention_refuses_delete_and_shortening_then_expires(store) -> None:
    until = now() + timedelta(seconds=4)
    r = put(store, "originals/2020/11/05/A-3.mp4", b"locked", retain_until=until)
    info = store.stat(r.key, r.version)
    assert info.retention.mode == "COMPLIANCE"
    assert abs((info.retention.until - until).total_seconds()) < 1
    with pytest.raises(ObjectLocked):
        store.delete(r.key, r.version)
    with pytest.raises(ObjectLocked):
        store.extend_retention(r.key, r.version, until - timedelta(seconds=2))
    later = until + timedelta(seconds=2)
    assert abs((store.extend_retention(r.key, r.version, later).until - later).total_seconds()) < 0.01
    time.sleep(max(0.0, (later - now()).total_seconds()) + 1.5)
    store.delete(r.key, r.version)
    with pytest.raises(ObjectMissing):
        store.stat(r.key, r.version)


def test_legal_hold_blocks_delete_until_released(store) -> None:
    r = put(store, "originals/2020/11/05/A-4.mp4", b"held", legal_hold=True)
    assert store.stat(r.key, r.version).legal_hold
    with pytest.raises(ObjectLocked):
        store.delete(r.key, r.version)
    store.set_legal_hold(r.key, r.version, False)
    assert not store.stat(r.key, r.version).legal_hold
    store.set_legal_hold(r.key, r.version, True)
    with pytest.raises(ObjectLocked):
        store.delete(r.key, r.version)
    store.set_legal_hold(r.key, r.version, False)
    store.delete(r.key, r.version)
    with pytest.raises(ObjectMissing):
        store.stat(r.key, r.version)


def test_unsafe_keys_never_reach_the_store(store) -> None:
    for key in ["../escape", "originals/../../x", "/abs", "原件.mp4"]:
        with pytest.raises(StoreError):
            put(store, key, b"x")


def test_read_url_is_version_pinned_and_short_lived(store) -> None:
    r = put(store, "derivatives/A-5/proxy-aaaaaaaaaaaa.mp4", b"proxy bytes")
    url = store.read_url(r.key, r.version, timedelta(minutes=2))
    if url.startswith("http"):
        assert "versionId=" in url and "X-Amz-Expires=120" in url
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == b"proxy bytes"
    else:
        assert store.resolve_read_url(url) == (r.key, r.version)
        with pytest.raises(ObjectLocked):
            store.resolve_read_url(url.replace("version=", "version=x"))
        expired = store.read_url(r.key, r.version, timedelta(seconds=-1))
        with pytest.raises(ObjectLocked, match="expired"):
            store.resolve_read_url(expired)


def test_large_objects_carry_their_lock_and_hold(store) -> None:
    r = put(
        store,
        "originals/2020/11/05/A-6.mp4",
        payload(11 * MIB),
        retain_until=now() + timedelta(hours=1),
        legal_hold=True,
    )
    info = store.stat(r.key, r.version)
    assert info.retention and info.retention.mode == "COMPLIANCE" and info.legal_hold
    with pytest.raises(ObjectLocked):
        store.delete(r.key, r.version)


def test_the_permanent_lock_horizon_is_kept_exactly(store) -> None:
    """RGW 16 wraps dates past 2038 into the past: the horizon must stay below that."""
    from archive.retention import lock_until

    until = lock_until(now(), None, now=now())
    r = put(store, "custody/checkpoints/00000001.json", b"{}", retain_until=until)
    assert abs((store.stat(r.key, r.version).retention.until - until).total_seconds()) < 1
