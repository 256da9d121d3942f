"""S3 details that need no server."""

from datetime import UTC, datetime

import pytest

from archive.errors import StoreError
from archive.s3_store import S3Store, parse_s3_time, s3_time


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-28T03:42:08.000000000Z",  # RGW: nine digits
        "2026-11-28T03:42:08.000Z",
        "2026-11-28T03:42:08Z",
        "2026-11-28T03:42:08+00:00",
    ],
)
def test_retain_until_dates_in_every_spelling(text: str) -> None:
    assert parse_s3_time(text) == datetime(2026, 11, 28, 3, 42, 8, tzinfo=UTC)


def test_fractions_are_cut_not_rounded_and_dates_written_in_milliseconds() -> None:
    assert parse_s3_time("2026-11-28T03:42:08.123456789Z").microsecond == 123456
    assert s3_time(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"


def test_url_parsing_and_checks() -> None:
    store = S3Store.from_url(
        "s3://127.0.0.1:7480/evidence?secure=false&region=cn-north-1", "a", "b", lock_mode="GOVERNANCE"
    )
    assert store.bucket == "evidence" and store.url == "s3://127.0.0.1:7480/evidence"
    assert not store.client._base_url.is_https
    with pytest.raises(StoreError, match="EVIDENCE_S3_ACCESS_KEY"):
        S3Store.from_url("s3://h:1/b", "", "", lock_mode="COMPLIANCE")
    with pytest.raises(StoreError, match="part size"):
        S3Store("h:1", "b", "a", "s", part_size=1024, lock_mode="COMPLIANCE")


def test_metadata_must_be_ascii() -> None:
    import io

    store = S3Store("127.0.0.1:9", "b", "a", "s", secure=False, lock_mode="COMPLIANCE")
    with pytest.raises(StoreError, match="not ASCII"):
        store.put("originals/x.mp4", io.BytesIO(b"x"), metadata={"name": "吴晓"})
