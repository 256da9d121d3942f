"""Least privilege, proven on a real Ceph RGW with the policies shipped in config/policies."""

import io
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from archive.errors import ObjectLocked, StoreError
from config.policies_rgw import apply_bucket_policy, bucket_policy
from tests.conftest import s3_store_for

pytestmark = pytest.mark.s3
MIB = 1 << 20


@pytest.fixture
def roles(rgw):
    bucket = f"p-{uuid.uuid4().hex[:12]}"
    admin = s3_store_for(rgw, "admin", bucket)
    admin.ensure_ready()
    apply_bucket_policy(
        admin.client,
        bucket,
        bucket_policy(
            bucket, {"station": "station", "curator": "curator", "reader": "reader", "worker": "worker"}
        ),
    )
    return {role: s3_store_for(rgw, role, bucket) for role in ("station", "curator", "reader", "worker")}


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def test_station_puts_with_locks_but_cannot_read_list_or_delete(roles) -> None:
    station, reader = roles["station"], roles["reader"]
    small = station.put("originals/2020/11/05/S-1.mp4", io.BytesIO(b"small"), retain_until=soon(3600))
    big_data = b"b" * (11 * MIB)
    big = station.put(
        "originals/2020/11/05/S-2.mp4", io.BytesIO(big_data), retain_until=soon(3600), legal_hold=True
    )
    for attempt in (
        lambda: station.stat(small.key),
        lambda: b"".join(station.read(small.key)),
        lambda: list(station.list("originals/")),
    ):
        with pytest.raises(StoreError):
            attempt()
    for version in (small, big):
        with pytest.raises(ObjectLocked, match="AccessDenied"):
            station.delete(version.key, version.version)
    # What the station stored is readable by the reader, and the multipart
    # upload carries its lock (RGW ignores lock headers on multipart uploads;
    # the store sets them on the completed version).
    info = reader.stat(big.key, big.version)
    assert info.retention and info.retention.mode == "COMPLIANCE" and info.legal_hold
    assert info.etag == big.digests.etag
    assert b"".join(reader.read(big.key, big.version)) == big_data


def test_reader_reads_but_cannot_write_or_delete(roles) -> None:
    put = roles["station"].put("derivatives/S-3/proxy-aaaaaaaaaaaa.mp4", io.BytesIO(b"proxy"))
    reader = roles["reader"]
    assert b"".join(reader.read(put.key, put.version)) == b"proxy"
    assert [o.key for o in reader.list("derivatives/")] == [put.key]
    with pytest.raises(StoreError):
        reader.put("derivatives/S-3/other-bbbbbbbbbbbb.mp4", io.BytesIO(b"x"))
    with pytest.raises(ObjectLocked):
        reader.delete(put.key, put.version)
    with pytest.raises(ObjectLocked):
        reader.set_legal_hold(put.key, put.version, True)


def test_curator_extends_holds_and_deletes_only_what_expired(roles) -> None:
    station, curator = roles["station"], roles["curator"]
    put = station.put("originals/2020/11/05/S-4.mp4", io.BytesIO(b"evidence"), retain_until=soon(2))
    until = curator.extend_retention(put.key, put.version, soon(4)).until
    with pytest.raises(ObjectLocked):
        curator.extend_retention(put.key, put.version, until - timedelta(seconds=1))
    curator.set_legal_hold(put.key, put.version, True)
    with pytest.raises(ObjectLocked):
        curator.delete(put.key, put.version)
    curator.set_legal_hold(put.key, put.version, False)
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 1.5)
    curator.delete(put.key, put.version)


def test_worker_reads_originals_and_puts_derivatives_but_never_deletes(roles) -> None:
    station, worker = roles["station"], roles["worker"]
    original = station.put("originals/2020/11/05/W-1.mp4", io.BytesIO(b"evidence"), retain_until=soon(3600))
    assert b"".join(worker.read(original.key, original.version)) == b"evidence"
    # A derivative follows its original's lock; a large one goes up in parts.
    big = b"p" * (11 * MIB)
    proxy = worker.put("derivatives/W-1/proxy-aaaaaaaaaaaa.mp4", io.BytesIO(big), retain_until=soon(3600))
    info = roles["reader"].stat(proxy.key, proxy.version)
    assert info.retention and info.retention.mode == "COMPLIANCE" and info.size == len(big)
    assert worker.stat(proxy.key, proxy.version).size == len(big)
    unlocked = worker.put("derivatives/W-1/poster-bbbbbbbbbbbb.jpg", io.BytesIO(b"jpeg"))
    # An encrypted derivative's key wrap goes first, beside it under keys/wraps/derivatives/.
    wrap = worker.put("keys/wraps/derivatives/W-1/poster-bbbbbbbbbbbb.jpg/0123456789abcdef", io.BytesIO(b"w"))
    assert wrap.version
    for key in (
        "originals/2020/11/05/W-2.mp4",
        "custody/segments/x.jsonl",
        "tombstones/W-1.json",
        "keys/wraps/originals/2020/11/05/W-1.mp4/0123456789abcdef",  # an original's wraps: not its own
    ):
        with pytest.raises(StoreError, match="AccessDenied"):
            worker.put(key, io.BytesIO(b"forged"))
    for version in (original, proxy, unlocked):  # not even its own unlocked derivative
        with pytest.raises(ObjectLocked, match="AccessDenied"):
            worker.delete(version.key, version.version)
    with pytest.raises(StoreError):
        list(worker.list("originals/"))
    with pytest.raises(ObjectLocked):
        worker.set_legal_hold(unlocked.key, unlocked.version, True)
    assert b"".join(roles["curator"].read(unlocked.key, unlocked.version)) == b"jpeg"


def test_read_back_setting_reads_what_was_put(rgw, roles) -> None:
    """With read_back the store re-reads every put: a station credential (no read) fails it."""
    station = s3_store_for(rgw, "station", roles["station"].bucket, read_back=True)
    with pytest.raises(StoreError, match="AccessDenied"):
        station.put("originals/2020/11/05/R-1.mp4", io.BytesIO(b"r" * (7 * MIB)))
    curator = s3_store_for(rgw, "curator", roles["station"].bucket, read_back=True)
    assert curator.put("originals/2020/11/05/R-2.mp4", io.BytesIO(b"r" * (7 * MIB))).digests.size == 7 * MIB
