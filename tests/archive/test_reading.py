import hashlib
from datetime import timedelta

import pytest

from archive import encryption
from archive.digest import hash_file
from archive.files import put_file
from archive.reading import plain_size, playback_url, read_plain
from catalog.errors import Refused

MIB = 1 << 20


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "v.mp4"
    path.write_bytes(b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(100_000)))
    return path


def test_encrypted_records_read_back_whole_and_in_ranges(store, video) -> None:
    kek = encryption.generate_kek()
    data = video.read_bytes()
    r = put_file(store, "originals/2020/11/05/E-1.mp4", video, hash_file(video),
                 content_type="video/mp4", metadata={}, retain_until=None, label="E-1",
                 encrypt=(kek, "SM4-GCM"))
    assert b"".join(store.read(r.key)) != data
    assert plain_size(store, r.key, r.version, True) == len(data)
    assert b"".join(read_plain(store, r.key, r.version, encrypted=True, kek=kek)) == data
    for start, length in [(0, 10), (MIB - 5, 10), (2 * MIB + 7, 300_000), (len(data) - 1, 1)]:
        got = b"".join(read_plain(store, r.key, r.version, encrypted=True, kek=kek,
                                  start=start, length=length))
        assert got == data[start:start + length]
    with pytest.raises(encryption.EncryptionKeyError):
        b"".join(read_plain(store, r.key, r.version, encrypted=True, kek=encryption.generate_kek()))


def test_protected_records_get_no_url_and_urls_are_short(store, video) -> None:
    r = put_file(store, "derivatives/E-2/proxy-aaaaaaaaaaaa.mp4", video, hash_file(video),
                 content_type="video/mp4", metadata={}, retain_until=None, label="E-2")
    assert playback_url(store, r.key, r.version, encrypted=False)
    with pytest.raises(Refused, match="never handed out"):
        playback_url(store, r.key, r.version, encrypted=True)
    with pytest.raises(Refused, match="15 minutes"):
        playback_url(store, r.key, r.version, encrypted=False, expires=timedelta(hours=1))
    assert b"".join(read_plain(store, r.key, r.version, encrypted=False, kek=None,
                               start=5, length=5)) == video.read_bytes()[5:10]
