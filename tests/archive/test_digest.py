import hashlib
import io

import pytest
from cryptography.hazmat.primitives import hashes

from archive.digest import Hasher, HashingReader, hash_file, iter_file, s3_etag

MIB = 1 << 20


def sm3(data: bytes) -> str:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize().hex()


def test_sm3_known_answer() -> None:
    # GB/T 32905-2016 example 1.
    hasher = Hasher(sm3=True)
    hasher.update(b"abc")
    assert hasher.digests().sm3 == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


@pytest.mark.parametrize("size", [0, 1, 5 * MIB - 1, 5 * MIB, 5 * MIB + 1, 12 * MIB])
def test_digests_and_s3_etag_for_any_size(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    hasher = Hasher(sm3=True, part_size=5 * MIB)
    for i in range(0, len(data), 777_777):  # uneven feeding must not matter
        hasher.update(data[i : i + 777_777])
    d = hasher.digests()
    assert (d.size, d.sha256, d.sm3) == (size, hashlib.sha256(data).hexdigest(), sm3(data))
    parts = [hashlib.md5(data[i : i + 5 * MIB]).digest() for i in range(0, max(size, 1), 5 * MIB)]
    assert d.etag == s3_etag(parts)
    if size <= 5 * MIB:
        assert d.etag == hashlib.md5(data).hexdigest()
    else:
        assert d.etag.endswith(f"-{len(parts)}")


def test_hashing_reader_hashes_what_passes(tmp_path) -> None:
    data = b"evidence" * 100_000
    hasher = Hasher()
    reader = io.BufferedReader(HashingReader(io.BytesIO(data), hasher))
    assert reader.read() == data
    assert hasher.digests().sha256 == hashlib.sha256(data).hexdigest()


def test_hash_file_and_ranges(tmp_path) -> None:
    path = tmp_path / "f"
    data = bytes(range(256)) * 9000
    path.write_bytes(data)
    assert hash_file(path).sha256 == hashlib.sha256(data).hexdigest()
    assert b"".join(iter_file(path, start=1000, length=70_000, size=4096)) == data[1000:71_000]
    assert b"".join(iter_file(path, start=len(data) - 5)) == data[-5:]
