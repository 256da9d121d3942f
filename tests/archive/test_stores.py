"""Stores chosen by URL scheme, each carrying its lock mode and saying what it can do."""

import pytest

from archive.errors import StoreError
from archive.local_store import LocalStore
from archive.s3_store import S3Store
from archive.stores import StoreOptions, open_store, register, schemes


def test_a_file_url_opens_the_local_store_in_the_configured_mode(tmp_path) -> None:
    store = open_store(f"file://{tmp_path}/store", StoreOptions(lock_mode="GOVERNANCE"))
    assert isinstance(store, LocalStore) and store.lock_mode == "GOVERNANCE"
    assert not store.capabilities.presigned_urls and not store.capabilities.server_receipt


def test_an_s3_url_opens_the_s3_store_in_the_configured_mode() -> None:
    store = open_store(
        "s3://127.0.0.1:9/evidence?secure=false",
        StoreOptions(lock_mode="GOVERNANCE", access_key="a", secret_key="b", part_size=8 << 20),
    )
    assert isinstance(store, S3Store) and store.lock_mode == "GOVERNANCE"
    assert store.part_size == 8 << 20 and store.bucket == "evidence"
    assert store.capabilities.presigned_urls and store.capabilities.server_receipt


def test_an_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(StoreError, match="unknown scheme 'ftp'") as info:
        open_store("ftp://host/x", StoreOptions(lock_mode="COMPLIANCE"))
    assert "file://" in str(info.value) and "s3://" in str(info.value)


def test_another_store_registers_its_scheme(tmp_path) -> None:
    made = []

    def factory(url, options):
        made.append((url, options.lock_mode))
        return LocalStore(tmp_path, lock_mode=options.lock_mode)

    register("test-memory", factory)
    assert "test-memory" in schemes()
    store = open_store("test-memory://x", StoreOptions(lock_mode="GOVERNANCE"))
    assert made == [("test-memory://x", "GOVERNANCE")] and store.lock_mode == "GOVERNANCE"


def test_every_lock_a_local_store_sets_is_in_its_mode(tmp_path) -> None:
    import io
    from datetime import UTC, datetime, timedelta

    store = LocalStore(tmp_path, lock_mode="GOVERNANCE")
    store.ensure_ready()
    until = datetime.now(UTC) + timedelta(days=1)
    put = store.put("cases/K/events/000001.json", io.BytesIO(b"{}"), retain_until=until)
    assert store.stat(put.key).retention.mode == "GOVERNANCE"
    unlocked = store.put("cases/K/events/000002.json", io.BytesIO(b"{}"))
    assert store.extend_retention(unlocked.key, unlocked.version, until).mode == "GOVERNANCE"
