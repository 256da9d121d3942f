"""A real gateway dying in the middle of an upload."""

import io

import pytest

from archive.errors import ObjectMissing, StoreUnavailable

pytestmark = pytest.mark.s3
MIB = 1 << 20


class KillsTheGatewayMidway(io.RawIOBase):
    """A 30 MiB source that kills the gateway once 12 MiB have been read."""

    def __init__(self, rgw) -> None:
        self.rgw, self.sent = rgw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.sent >= 30 * MIB:
            return 0
        n = min(len(buffer), 30 * MIB - self.sent, MIB)
        buffer[:n] = b"k" * n
        self.sent += n
        if self.sent == 12 * MIB:
            self.rgw.kill_gateway()
        return n


def test_an_upload_cut_by_a_dead_gateway_stores_nothing_and_can_be_retried(rgw, s3_store) -> None:
    key = "originals/2020/11/05/F-1.mp4"
    try:
        with pytest.raises(StoreUnavailable):
            s3_store.put(key, KillsTheGatewayMidway(rgw))
    finally:
        rgw.restart_gateway()
    with pytest.raises(ObjectMissing):
        s3_store.stat(key)
    result = s3_store.put(key, io.BytesIO(b"k" * (30 * MIB)))
    assert s3_store.stat(key, result.version).size == 30 * MIB


def test_an_absent_server_is_unavailable_not_a_crash() -> None:
    from archive.s3_store import S3Store
    from tests.servers.rgw import free_port

    store = S3Store(f"127.0.0.1:{free_port()}", "evidence", "ak", "sk", secure=False, lock_mode="COMPLIANCE")
    with pytest.raises(StoreUnavailable, match="cannot reach"):
        store.ensure_ready()
