import hashlib
import os
import threading
from datetime import timedelta

import pytest

from archive import encryption
from archive.digest import Hasher, SM3Hash, hash_file
from archive.errors import ObjectMissing
from archive.files import put_file
from archive.reading import READ_AHEAD, StoredHash, hash_stored, plain_size, playback_url, read_plain
from catalog.errors import Refused

MIB = 1 << 20


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "v.mp4"
    path.write_bytes(b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(100_000)))
    return path


def test_encrypted_records_read_back_whole_and_in_ranges(store, video) -> None:
    kek = encryption.Keyring.in_memory(encryption.generate_kek())
    data = video.read_bytes()
    r = put_file(
        store,
        "originals/2020/11/05/E-1.mp4",
        video,
        hash_file(video),
        content_type="video/mp4",
        metadata={},
        retain_until=None,
        label="E-1",
        encrypt=(kek, "SM4-GCM"),
    )
    assert b"".join(store.read(r.key)) != data
    assert plain_size(store, r.key, r.version, True) == len(data)
    assert b"".join(read_plain(store, r.key, r.version, encrypted=True, kek=kek)) == data
    for start, length in [(0, 10), (MIB - 5, 10), (2 * MIB + 7, 300_000), (len(data) - 1, 1)]:
        got = b"".join(
            read_plain(store, r.key, r.version, encrypted=True, kek=kek, start=start, length=length)
        )
        assert got == data[start : start + length]
    with pytest.raises(encryption.EncryptionKeyError):
        b"".join(read_plain(store, r.key, r.version, encrypted=True, kek=encryption.generate_kek()))


def test_protected_records_get_no_url_and_urls_are_short(store, video) -> None:
    r = put_file(
        store,
        "derivatives/E-2/proxy-aaaaaaaaaaaa.mp4",
        video,
        hash_file(video),
        content_type="video/mp4",
        metadata={},
        retain_until=None,
        label="E-2",
    )
    assert playback_url(store, r.key, r.version, encrypted=False)
    with pytest.raises(Refused, match="never handed out"):
        playback_url(store, r.key, r.version, encrypted=True)
    with pytest.raises(Refused, match="15 minutes"):
        playback_url(store, r.key, r.version, encrypted=False, expires=timedelta(hours=1))
    assert (
        b"".join(read_plain(store, r.key, r.version, encrypted=False, kek=None, start=5, length=5))
        == video.read_bytes()[5:10]
    )


# --- hash_stored: what fixity, replay and export see ----------------------------------------


def _sm3(data: bytes) -> str:
    h = SM3Hash()
    h.update(data)
    return h.hexdigest()


def _put(store, key, path, kek=None):
    return put_file(
        store,
        key,
        path,
        hash_file(path),
        content_type="video/mp4",
        metadata={},
        retain_until=None,
        label=key,
        encrypt=(kek, "AES-256-GCM") if kek else None,
    )


@pytest.mark.parametrize("protected", [False, True])
def test_hash_stored_gives_the_plaintext_digests_and_size(local_store, video, protected) -> None:
    kek = encryption.Keyring.in_memory(encryption.generate_kek()) if protected else None
    data = video.read_bytes()
    assert len(data) > 2 * MIB  # several chunks: hashed in the thread
    r = _put(local_store, "originals/2020/11/05/H-1.mp4", video, kek)
    got = hash_stored(local_store, r.key, r.version, encrypted=protected, kek=kek, sm3=True)
    assert got == StoredHash(len(data), hashlib.sha256(data).hexdigest(), _sm3(data))
    assert got.problem is None and got.verdict(got.sha256, len(data)) == "ok"
    assert got.verdict(got.sha256, len(data) + 1) == "mismatch"
    assert got.verdict("0" * 64) == "mismatch"
    assert hash_stored(local_store, r.key, r.version, encrypted=protected, kek=kek).sm3 is None


def test_a_small_object_and_an_empty_one(local_store, tmp_path) -> None:
    for name, data in [("small", b"a few bytes"), ("empty", b"")]:
        path = tmp_path / f"{name}.bin"
        path.write_bytes(data)
        r = _put(local_store, f"documents/2020/11/05/{name}.bin", path)
        seen: list[bytes] = []
        got = hash_stored(
            local_store, r.key, r.version, encrypted=False, kek=None, sm3=True, sink=seen.append
        )
        assert (got.size, got.sha256, got.sm3) == (len(data), hashlib.sha256(data).hexdigest(), _sm3(data))
        assert b"".join(seen) == data


def test_the_sink_receives_exactly_the_plaintext_in_order(local_store, video) -> None:
    kek = encryption.Keyring.in_memory(encryption.generate_kek())
    r = _put(local_store, "originals/2020/11/05/H-2.mp4", video, kek)
    seen: list[bytes] = []
    got = hash_stored(local_store, r.key, r.version, encrypted=True, kek=kek, sink=seen.append)
    assert len(seen) > 1 and b"".join(seen) == video.read_bytes()
    assert got.size == sum(map(len, seen))


def test_a_missing_object_is_a_result(local_store, video) -> None:
    got = hash_stored(local_store, "originals/2020/11/05/NONE.mp4", None, encrypted=False, kek=None)
    assert (got.problem, got.sha256, got.size) == ("missing", None, 0)
    assert isinstance(got.error, ObjectMissing) and got.reason
    assert got.verdict("0" * 64) == "missing"
    r = _put(local_store, "originals/2020/11/05/H-3.mp4", video)
    (local_store.root / "objects" / r.key).unlink()  # its record stays
    assert hash_stored(local_store, r.key, r.version, encrypted=False, kek=None).problem == "missing"


def test_a_tampered_protected_object_is_undecryptable(local_store, video) -> None:
    kek = encryption.Keyring.in_memory(encryption.generate_kek())
    r = _put(local_store, "originals/2020/11/05/H-4.mp4", video, kek)
    path = local_store.root / "objects" / r.key
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # a chunk in the middle: the ones before it read fine
    path.write_bytes(bytes(data))
    seen: list[bytes] = []
    got = hash_stored(local_store, r.key, r.version, encrypted=True, kek=kek, sink=seen.append)
    assert (got.problem, got.sha256) == ("undecryptable", None)
    assert isinstance(got.error, encryption.DecryptionFailed) and "chunk" in got.reason
    assert 0 < got.size < len(video.read_bytes()) and got.size == sum(map(len, seen))
    assert got.verdict("0" * 64) == "mismatch"


def test_a_wrong_key_or_no_key_is_raised_not_reported(local_store, video) -> None:
    r = _put(
        local_store,
        "originals/2020/11/05/H-5.mp4",
        video,
        encryption.Keyring.in_memory(encryption.generate_kek()),
    )
    with pytest.raises(encryption.EncryptionKeyError):
        hash_stored(local_store, r.key, r.version, encrypted=True, kek=encryption.generate_kek())
    with pytest.raises(encryption.EncryptionKeyError):
        hash_stored(local_store, r.key, r.version, encrypted=True, kek=None)


def test_an_error_in_the_hashing_thread_is_raised_in_the_caller(local_store, video, monkeypatch) -> None:
    r = _put(local_store, "originals/2020/11/05/H-6.mp4", video)
    update = Hasher.update
    threads: set[str] = set()

    def failing(self, data) -> None:
        threads.add(threading.current_thread().name)
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("hashing broke")
        update(self, data)

    monkeypatch.setattr(Hasher, "update", failing)
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="hashing broke"):
        hash_stored(local_store, r.key, r.version, encrypted=False, kek=None)
    assert "hash" in threads and threading.active_count() == before  # the thread is gone too


def test_an_error_in_the_sink_stops_the_read(local_store, video) -> None:
    r = _put(local_store, "originals/2020/11/05/H-7.mp4", video)
    calls = 0

    def full(chunk: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(28, "No space left on device")

    before = threading.active_count()
    with pytest.raises(OSError, match="No space"):
        hash_stored(local_store, r.key, r.version, encrypted=False, kek=None, sink=full)
    assert calls == 2 and threading.active_count() == before


def test_reads_run_at_most_a_few_chunks_ahead_of_the_hashing(local_store, tmp_path, monkeypatch) -> None:
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(12 * MIB))  # 12 chunks of the local store
    r = _put(local_store, "originals/2020/11/05/H-8.mp4", big)
    release = threading.Event()
    read = hashed = 0
    most = 0
    update = Hasher.update

    def slow(self, data) -> None:
        nonlocal hashed
        if threading.current_thread() is not threading.main_thread():
            release.wait(5)  # held until the reader has run as far ahead as it may
        update(self, data)
        hashed += 1

    def sink(chunk: bytes) -> None:
        nonlocal read, most
        read += 1
        most = max(most, read - hashed)
        if read - hashed >= READ_AHEAD:
            release.set()

    monkeypatch.setattr(Hasher, "update", slow)
    got = hash_stored(local_store, r.key, r.version, encrypted=False, kek=None, sink=sink)
    assert got.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    assert read == 12 and most == READ_AHEAD  # ran ahead as far as allowed, never further
