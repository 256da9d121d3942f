import io
import os
import stat
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

from archive import encryption
from archive.encryption import (
    ALGORITHMS,
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZES,
    TAG_SIZE,
    DecryptionFailed,
    EncryptingReader,
    EncryptionKeyError,
    Keyring,
    create_kek,
    decrypt_range,
    decrypt_stream,
    encrypted_size,
    generate_kek,
    kek_id,
    load_kek,
    plain_size_of,
    read_header,
)
from catalog.errors import CheckFailed, InvalidInput

C = 4096
SIZES = [0, 1, C - 1, C, C + 1, 3 * C + C // 2]
OID = "evidence/2024/BWC-000123.mp4"
KEK = generate_kek()
# Version 2 objects keep their wraps apart: every wrap made here is filed by object id, as the
# catalog's copies are, and the key rings below find them there.
WRAPS: dict[str, list[bytes]] = {}
KEYS = Keyring.of(KEK, wraps=WRAPS)
FORMAT = {
    "version": encryption.FORMAT_VERSION
}  # what _encrypt writes; the `version` fixture runs a test over both


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def version(request: pytest.FixtureRequest) -> Iterator[int]:
    FORMAT["version"] = request.param
    yield request.param
    FORMAT["version"] = encryption.FORMAT_VERSION


@pytest.fixture
def v1() -> Iterator[None]:
    """Objects as the first format wrote them (the wrapped data key inside the header)."""
    FORMAT["version"] = 1
    yield
    FORMAT["version"] = encryption.FORMAT_VERSION


def _ring(kek: bytes | Keyring) -> Keyring:
    return kek if isinstance(kek, Keyring) else Keyring.of(kek, wraps=WRAPS)


def _plain(n: int) -> bytes:
    return os.urandom(n)


def _encrypt(
    plain: bytes, algorithm: str = "AES-256-GCM", chunk_size: int = C, kek: bytes = KEK, object_id: str = OID
) -> bytes:
    reader = EncryptingReader(
        io.BytesIO(plain), kek, object_id, algorithm, chunk_size, version=FORMAT["version"]
    )
    if reader.wrap is not None:
        WRAPS.setdefault(object_id, []).append(reader.wrap)
    return reader.read()


def _decrypt(cipher: bytes, kek: bytes | Keyring = KEK, object_id: str = OID) -> bytes:
    return b"".join(decrypt_stream(io.BytesIO(cipher), _ring(kek), object_id))


def _reader_at(cipher: bytes, log: list[tuple[int, int]] | None = None) -> Callable[[int, int], bytes]:
    def read_at(offset: int, size: int) -> bytes:
        if log is not None:
            log.append((offset, size))
        return cipher[offset : offset + size]

    return read_at


def _range(
    cipher: bytes, start: int, length: int | None, kek: bytes | Keyring = KEK, object_id: str = OID
) -> bytes:
    return b"".join(decrypt_range(_reader_at(cipher), len(cipher), _ring(kek), object_id, start, length))


def _chunks(cipher: bytes, chunk_size: int = C) -> tuple[bytes, list[bytes]]:
    """Split an object into its header and sealed chunks."""
    h = read_header(cipher).header_size
    stride = chunk_size + TAG_SIZE
    body = cipher[h:]
    return cipher[:h], [body[i : i + stride] for i in range(0, len(body), stride)]


class Generated(io.RawIOBase):
    """A long plaintext made on the fly, so the test itself holds almost nothing."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.left = size
        self.block = bytes(range(256)) * 256

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        view = memoryview(b)
        n = min(len(view), self.left, len(self.block))
        view[:n] = self.block[:n]
        self.left -= n
        return n


class Trickle:
    """A plaintext source with only read(), handing out a few bytes at a time."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        piece = self.data[self.pos : self.pos + min(n, 100)]
        self.pos += len(piece)
        return piece


# --- round trips -------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("size", SIZES)
def test_round_trip_and_exact_size(algorithm: str, size: int, version: int) -> None:
    plain = _plain(size)
    cipher = _encrypt(plain, algorithm)
    assert len(cipher) == encrypted_size(size, C, algorithm, version)
    header = read_header(cipher)
    assert (header.algorithm, header.chunk_size, header.version) == (algorithm, C, version)
    assert header.kek_id == (kek_id(KEK) if version == 1 else "")
    assert header.header_size == encryption.header_size(algorithm, version)
    assert plain_size_of(len(cipher), header) == size
    assert _decrypt(cipher) == plain
    assert _range(cipher, 0, None) == plain


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_round_trip_with_default_chunk_size(algorithm: str, version: int) -> None:
    plain = _plain(5 << 20)
    cipher = _encrypt(plain, algorithm, DEFAULT_CHUNK_SIZE)
    assert read_header(cipher).chunk_size == DEFAULT_CHUNK_SIZE
    assert len(cipher) == encrypted_size(len(plain), algorithm=algorithm, version=version)
    assert _decrypt(cipher) == plain


def test_encrypted_size_counts_one_tag_per_chunk() -> None:
    assert encrypted_size(0, version=1) == 70 + 16
    assert encrypted_size(0, 16, "SM4-GCM", 1) == 54 + 16
    assert encrypted_size(1 << 20, version=1) == 70 + (1 << 20) + 16
    assert encrypted_size((1 << 20) + 1, version=1) == 70 + (1 << 20) + 1 + 32
    assert encrypted_size(10, 3, version=1) == 70 + 10 + 4 * 16
    # version 2: one 54-byte header for both algorithms
    assert encrypted_size(0) == encrypted_size(0, 16, "SM4-GCM") == 54 + 16
    assert encrypted_size((1 << 20) + 1) == 54 + (1 << 20) + 1 + 32


def test_a_source_with_only_short_reads_is_fine(version: int) -> None:
    plain = _plain(3 * C + 5)
    reader = EncryptingReader(Trickle(plain), KEK, OID, chunk_size=C, version=version)
    WRAPS.setdefault(OID, []).extend([reader.wrap] if reader.wrap else [])
    assert _decrypt(reader.read()) == plain


def test_two_encryptions_of_the_same_plaintext_differ(version: int) -> None:
    plain = _plain(2 * C)
    first, second = _encrypt(plain), _encrypt(plain)
    assert first != second
    h1, h2 = read_header(first), read_header(second)
    assert h1.nonce_prefix != h2.nonce_prefix
    assert (h1.wrapped_key != h2.wrapped_key) if version == 1 else (h1.commitment != h2.commitment)
    assert _chunks(first)[1][0] != _chunks(second)[1][0]


# --- the reader as a stream ----------------------------------------------------


@pytest.fixture
def fixed_randomness(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the data key and nonce prefix repeatable so two encryptions can be compared."""
    monkeypatch.setattr(encryption.secrets, "token_bytes", lambda n: bytes(range(n)))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("step", [1, 7, 65537])
def test_odd_read_sizes_give_the_same_bytes(fixed_randomness: None, algorithm: str, step: int) -> None:
    plain = _plain(3 * C + 123)
    whole = _encrypt(plain, algorithm)
    reader = EncryptingReader(io.BytesIO(plain), KEK, OID, algorithm, C)
    parts = []
    while piece := reader.read(step):
        assert len(piece) <= step
        parts.append(piece)
    assert b"".join(parts) == whole
    assert reader.tell() == len(whole)
    assert reader.read(10) == b""


def test_readinto_and_buffered_wrapping_give_the_same_bytes(fixed_randomness: None) -> None:
    plain = _plain(2 * C + 9)
    whole = _encrypt(plain)
    reader = EncryptingReader(io.BytesIO(plain), KEK, OID, chunk_size=C)
    out, buf = bytearray(), bytearray(1000)
    while n := reader.readinto(buf):
        out += buf[:n]
    assert bytes(out) == whole
    buffered = io.BufferedReader(EncryptingReader(io.BytesIO(plain), KEK, OID, chunk_size=C))
    assert buffered.read() == whole


# --- tampering -------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_every_flipped_byte_is_caught(algorithm: str, mask: int, version: int) -> None:
    plain = _plain(3 * 32 + 5)
    cipher = _encrypt(plain, algorithm, chunk_size=32)
    for pos in range(len(cipher)):
        bad = bytearray(cipher)
        bad[pos] ^= mask
        with pytest.raises((DecryptionFailed, EncryptionKeyError)):
            _decrypt(bytes(bad))
        with pytest.raises((DecryptionFailed, EncryptionKeyError)):
            _range(bytes(bad), 0, None)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_flipped_bytes_name_what_failed(algorithm: str, v1: None) -> None:
    plain = _plain(3 * C + C // 2)
    cipher = _encrypt(plain, algorithm)
    h = HEADER_SIZES[algorithm]
    cases = {
        0: DecryptionFailed,  # magic
        8: DecryptionFailed,  # version
        12: DecryptionFailed,  # chunk size
        14: EncryptionKeyError,  # KEK id
        30: DecryptionFailed,  # wrapped data key
        h - 1: DecryptionFailed,  # nonce prefix
        h: DecryptionFailed,  # first chunk body
        h + C + TAG_SIZE - 1: DecryptionFailed,  # first chunk tag
        len(cipher) - 30: DecryptionFailed,  # last chunk body
        len(cipher) - 1: DecryptionFailed,  # last chunk tag
    }
    for pos, error in cases.items():
        bad = bytearray(cipher)
        bad[pos] ^= 0x04
        with pytest.raises(error):
            _decrypt(bytes(bad))
    bad = bytearray(cipher)
    bad[h + 2 * (C + TAG_SIZE) + 5] ^= 1
    with pytest.raises(DecryptionFailed, match="chunk 2") as caught:
        _decrypt(bytes(bad))
    assert caught.value.details["chunk"] == 2
    assert isinstance(caught.value, CheckFailed) and caught.value.exit_code == 1


def test_good_chunks_before_a_bad_one_are_yielded_then_it_fails(version: int) -> None:
    plain = _plain(3 * C)
    bad = bytearray(_encrypt(plain))
    bad[-1] ^= 1
    chunks = decrypt_stream(io.BytesIO(bytes(bad)), KEYS, OID)
    assert next(chunks) == plain[:C]
    assert next(chunks) == plain[C : 2 * C]
    with pytest.raises(DecryptionFailed, match="chunk 2"):
        next(chunks)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("size", [3 * C + C // 2, 4 * C])
def test_structural_attacks_are_caught(algorithm: str, size: int, version: int) -> None:
    plain = _plain(size)
    cipher = _encrypt(plain, algorithm)
    other = _encrypt(plain, algorithm)  # same KEK, same object id, same plaintext
    header, chunks = _chunks(cipher)
    other_header, other_chunks = _chunks(other)
    attacks = {
        "swapped": header + chunks[0] + chunks[2] + chunks[1] + chunks[3],
        "dropped middle": header + chunks[0] + chunks[2] + chunks[3],
        "truncated at boundary": header + b"".join(chunks[:3]),
        "truncated to header": header,
        "truncated mid tag": cipher[:-5],
        "one byte appended": cipher + b"\0",
        "tag appended": cipher + b"\0" * TAG_SIZE,
        "chunk repeated": cipher + chunks[3],
        "chunk from another object": header + chunks[0] + other_chunks[1] + chunks[2] + chunks[3],
        "header from another object": other_header + b"".join(chunks),
        "last chunk from another object": header + b"".join(chunks[:3]) + other_chunks[3],
    }
    for name, bad in attacks.items():
        with pytest.raises(DecryptionFailed):
            _decrypt(bad)
            pytest.fail(name)
        with pytest.raises(DecryptionFailed):
            _range(bad, 0, None)
            pytest.fail(name)
    assert _decrypt(cipher) == plain and _decrypt(other) == plain


def test_truncation_at_a_boundary_is_caught_by_a_range_read_of_the_end(version: int) -> None:
    plain = _plain(4 * C)
    header, chunks = _chunks(_encrypt(plain))
    cut = header + b"".join(chunks[:3])
    assert _range(cut, 0, C) == plain[:C]  # the flag is only seen where the end is read
    with pytest.raises(DecryptionFailed, match="chunk 2"):
        _range(cut, 2 * C, None)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_object_id_is_caught(algorithm: str, version: int) -> None:
    cipher = _encrypt(_plain(2 * C), algorithm)
    # Version 2: whatever wrap is offered for the other id is refused before any chunk.
    ring = Keyring.of(KEK, wraps=lambda _oid: WRAPS[OID])
    with pytest.raises(DecryptionFailed, match="chunk 0" if version == 1 else "belongs to another object"):
        _decrypt(cipher, ring, object_id=OID + "x")
    with pytest.raises(DecryptionFailed):
        _range(cipher, C, 10, ring, object_id="evidence/2024/BWC-000124.mp4")


def test_wrong_kek_is_a_key_error_naming_both_ids(version: int) -> None:
    cipher = _encrypt(_plain(C))
    other = generate_kek()
    for attempt in (
        lambda: decrypt_stream(io.BytesIO(cipher), _ring(other), OID),
        lambda: decrypt_range(_reader_at(cipher), len(cipher), _ring(other), OID, 0, None),
    ):
        with pytest.raises(EncryptionKeyError) as caught:
            attempt()
        assert kek_id(KEK) in str(caught.value) and kek_id(other) in str(caught.value)


def test_not_an_encrypted_object(version: int) -> None:
    with pytest.raises(DecryptionFailed, match="no header"):
        _decrypt(b"\x00\x00\x00 ftypisom" + b"\0" * 100)
    with pytest.raises(DecryptionFailed):
        _decrypt(b"")


# --- ranges --------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_range_equals_slicing(algorithm: str, version: int) -> None:
    size = 3 * C + C // 2
    plain = _plain(size)
    cipher = _encrypt(plain, algorithm)
    starts = [0, 1, C - 1, C, C + 1, 2 * C - 1, 2 * C, 3 * C, size - 1, size]
    lengths = [0, 1, 2, C - 1, C, C + 1, 2 * C + 3, size, size + 100, None]
    for start in starts:
        for length in lengths:
            want = plain[start:] if length is None else plain[start : start + length]
            assert _range(cipher, start, length) == want, (start, length)


def test_range_reads_only_the_chunks_it_needs(version: int) -> None:
    plain = _plain(10 * C)
    cipher = _encrypt(plain)
    h, stride = encryption.header_size("AES-256-GCM", version), C + TAG_SIZE
    for start, length, chunks in [
        (0, 1, [0]),
        (C - 1, 2, [0, 1]),
        (5 * C, C, [5]),
        (5 * C + 1, C, [5, 6]),
        (10 * C - 1, None, [9]),
        (3 * C, 10, [3]),
    ]:
        log: list[tuple[int, int]] = []
        got = b"".join(decrypt_range(_reader_at(cipher, log), len(cipher), KEYS, OID, start, length))
        assert got == plain[start : None if length is None else start + length]
        assert log[0][0] == 0 and log[0][1] <= encryption.MAX_HEADER_SIZE
        assert log[1:] == [(h + i * stride, stride) for i in chunks]


def test_range_with_default_chunks_reads_little(version: int) -> None:
    plain = _plain(5 << 20)
    cipher = _encrypt(plain, chunk_size=DEFAULT_CHUNK_SIZE)
    log: list[tuple[int, int]] = []
    start = (3 << 20) - 100
    got = b"".join(decrypt_range(_reader_at(cipher, log), len(cipher), KEYS, OID, start, 200))
    assert got == plain[start : start + 200]
    assert len(log) == 3 and sum(size for _, size in log[1:]) == 2 * (DEFAULT_CHUNK_SIZE + TAG_SIZE)


def test_range_limits(version: int) -> None:
    plain = _plain(C + 10)
    cipher = _encrypt(plain)
    log: list[tuple[int, int]] = []
    assert list(decrypt_range(_reader_at(cipher, log), len(cipher), KEYS, OID, C + 10, None)) == []
    assert len(log) == 1  # the header only
    with pytest.raises(InvalidInput, match="beyond the end"):
        decrypt_range(_reader_at(cipher), len(cipher), KEYS, OID, C + 11, 1)
    with pytest.raises(InvalidInput):
        decrypt_range(_reader_at(cipher), len(cipher), KEYS, OID, -1, 1)
    assert _range(_encrypt(b""), 0, None) == b""


def test_impossible_stored_sizes_are_refused(version: int) -> None:
    header = read_header(_encrypt(b"", chunk_size=C))
    h = header.header_size
    assert plain_size_of(h + 16, header) == 0
    assert plain_size_of(h + C + 16, header) == C
    assert plain_size_of(h + C + 16 + 17, header) == C + 1
    for bad in [h, h + 15, h + C + 16 + 16, h + C + 16 + 5]:
        with pytest.raises(DecryptionFailed):
            plain_size_of(bad, header)


def test_short_read_at_is_caught(version: int) -> None:
    cipher = _encrypt(_plain(2 * C))

    def short(offset: int, size: int) -> bytes:
        return cipher[offset : offset + size - (1 if offset else 0)]

    with pytest.raises(DecryptionFailed, match="chunk 0"):
        b"".join(decrypt_range(short, len(cipher), KEYS, OID, 0, None))


# --- memory ------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_memory_stays_bounded_for_a_long_stream(algorithm: str) -> None:
    size = 64 << 20
    tracemalloc.start()
    try:
        reader = EncryptingReader(Generated(size), KEK, OID, algorithm)
        total = 0
        while piece := reader.read(1 << 16):
            total += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == encrypted_size(size, algorithm=algorithm)
    assert peak < 3 * DEFAULT_CHUNK_SIZE


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_memory_stays_bounded_when_decrypting_a_stream(algorithm: str) -> None:
    size = 64 << 20
    tracemalloc.start()
    try:
        total = 0
        source = EncryptingReader(Generated(size), KEK, OID, algorithm)
        assert source.wrap is not None
        for chunk in decrypt_stream(source, Keyring.of(KEK, wraps={OID: [source.wrap]}), OID):
            total += len(chunk)
            del chunk
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    assert peak < 5 * DEFAULT_CHUNK_SIZE  # a chunk of plaintext and ciphertext on each side


# --- the documented format ------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_format_is_as_documented(algorithm: str, v1: None) -> None:
    """Decrypt with nothing but the module docstring's layout and standard primitives."""
    plain = _plain(2 * C + 7)
    cipher = _encrypt(plain, algorithm)
    assert cipher[:8] == b"EVA-ENC\n" and cipher[8] == 1
    assert cipher[9] == {"AES-256-GCM": 1, "SM4-GCM": 2}[algorithm]
    (chunk_size,) = struct.unpack(">I", cipher[10:14])
    assert chunk_size == C and cipher[14:22] == bytes.fromhex(kek_id(KEK))
    w = {"AES-256-GCM": 40, "SM4-GCM": 24}[algorithm]
    h = 30 + w
    data_key = aes_key_unwrap(KEK, cipher[22 : 22 + w])
    prefix = cipher[22 + w : h]
    body, out, i = cipher[h:], b"", 0
    while body:
        sealed, body = body[: chunk_size + 16], body[chunk_size + 16 :]
        nonce = prefix + struct.pack(">I", i)
        aad = cipher[:h] + struct.pack(">IB", i, 0 if body else 1) + OID.encode()
        if algorithm == "AES-256-GCM":
            out += AESGCM(data_key).decrypt(nonce, sealed, aad)
        else:
            dec = Cipher(algorithms.SM4(data_key), modes.GCM(nonce, sealed[-16:])).decryptor()
            dec.authenticate_additional_data(aad)
            out += dec.update(sealed[:-16]) + dec.finalize()
        i += 1
    assert out == plain and len(data_key) == {"AES-256-GCM": 32, "SM4-GCM": 16}[algorithm]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidInput):
        EncryptingReader(io.BytesIO(b""), KEK, OID, algorithm="DES")
    with pytest.raises(InvalidInput):
        EncryptingReader(io.BytesIO(b""), KEK, OID, chunk_size=0)
    with pytest.raises(InvalidInput):
        EncryptingReader(io.BytesIO(b""), KEK, "")
    with pytest.raises(EncryptionKeyError):
        EncryptingReader(io.BytesIO(b""), KEK[:16], OID)
    with pytest.raises(InvalidInput):
        encrypted_size(-1)


# --- key files ---------------------------------------------------------------------------


def test_kek_id_is_16_hex_digits() -> None:
    ident = kek_id(KEK)
    assert len(ident) == 16 and int(ident, 16) >= 0 and ident != kek_id(generate_kek())
    assert len(generate_kek()) == 32


def test_create_kek_is_private_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "records.kek"
    kek = create_kek(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == kek.hex() + "\n"
    assert load_kek(path) == kek
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


def test_create_kek_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "records.kek"
    kek = create_kek(path)
    with pytest.raises(EncryptionKeyError, match="exists"):
        create_kek(path)
    assert load_kek(path) == kek
    assert list(tmp_path.iterdir()) == [path]


def test_missing_key_file_says_to_restore_it(tmp_path: Path) -> None:
    path = tmp_path / "records.kek"
    with pytest.raises(EncryptionKeyError) as caught:
        load_kek(path)
    assert caught.value.hint is not None and "restore the key file from its backup" in caught.value.hint
    assert not path.exists()  # never made silently


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o620])
def test_key_file_others_can_reach_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "records.kek"
    create_kek(path)
    path.chmod(mode)
    with pytest.raises(EncryptionKeyError, match="group or others"):
        load_kek(path)


def test_raw_and_hex_key_files_are_both_read(tmp_path: Path) -> None:
    kek = generate_kek()
    raw, text = tmp_path / "raw.kek", tmp_path / "hex.kek"
    for path, data in [(raw, kek), (text, kek.hex().upper().encode() + b"\r\n")]:
        path.write_bytes(data)
        path.chmod(0o600)
        assert load_kek(path) == kek


@pytest.mark.parametrize("data", [b"", b"\0" * 31, b"\0" * 33, b"zz" * 32 + b"\n", b"ab" * 31])
def test_key_file_of_the_wrong_size_is_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "records.kek"
    path.write_bytes(data)
    path.chmod(0o600)
    with pytest.raises(EncryptionKeyError, match="32-byte key"):
        load_kek(path)


def test_a_closed_reader_refuses_reads() -> None:
    reader = EncryptingReader(io.BytesIO(b"abc"), KEK, OID)
    reader.close()
    with pytest.raises(ValueError):
        reader.read(1)


# --- version 2: wraps apart from the object ------------------------------------------------


def _sealed(plain: bytes, algorithm: str = "AES-256-GCM", object_id: str = OID) -> tuple[bytes, bytes]:
    reader = EncryptingReader(io.BytesIO(plain), KEK, object_id, algorithm, C)
    assert reader.wrap is not None
    return reader.read(), reader.wrap


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_tampered_wrap_is_refused_clearly(algorithm: str) -> None:
    cipher, wrap = _sealed(_plain(C + 1), algorithm)
    for pos in range(len(wrap)):
        bad = bytearray(wrap)
        bad[pos] ^= 0x10
        with pytest.raises((DecryptionFailed, EncryptionKeyError)) as caught:
            _decrypt(cipher, Keyring.of(KEK, wraps={OID: [bytes(bad)]}))
        if pos >= 18:  # binding or key wrap: refused as a wrap, never as a chunk
            assert isinstance(caught.value, encryption.WrapRefused), pos
    for cut in (wrap[:-1], wrap + b"\0", b"", b"EVA-WRP\n"):
        with pytest.raises(encryption.WrapRefused):
            _decrypt(cipher, Keyring.of(KEK, wraps={OID: [cut]}))


def test_a_wrap_of_another_object_is_refused_even_with_its_fields_edited() -> None:
    cipher, _ = _sealed(_plain(100))
    other_cipher, other_wrap = _sealed(_plain(100), object_id=OID + ".other")
    with pytest.raises(encryption.WrapRefused, match="belongs to another object"):
        _decrypt(cipher, Keyring.of(KEK, wraps={OID: [other_wrap]}))
    # The clear binding copied from the right wrap: the inner copy no longer matches.
    forged = other_wrap[:18] + encryption.binding(read_header(cipher).raw, OID) + other_wrap[34:]
    with pytest.raises(encryption.WrapRefused, match="does not verify"):
        _decrypt(cipher, Keyring.of(KEK, wraps={OID: [forged]}))
    assert _decrypt(other_cipher, Keyring.of(KEK, wraps={OID + ".other": [other_wrap]}), OID + ".other")


def test_a_wrap_under_a_forged_key_fails_the_commitment() -> None:
    """Whoever holds the KEK could wrap any key; the header's commitment still refuses it."""
    cipher, _ = _sealed(_plain(100))
    header = read_header(cipher)
    forged = encryption.make_wrap(KEK, os.urandom(32), header, OID)
    with pytest.raises(encryption.WrapRefused, match="commit"):
        _decrypt(cipher, Keyring.of(KEK, wraps={OID: [forged]}))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_new_wrap_opens_v1_and_v2_objects_without_the_old_kek(algorithm: str) -> None:
    new = generate_kek()
    for version in (1, 2):
        plain = _plain(2 * C + 3)
        reader = EncryptingReader(io.BytesIO(plain), KEK, OID, algorithm, C, version=version)
        cipher = reader.read()
        header = read_header(cipher)
        old_wraps = [reader.wrap] if reader.wrap else []
        data_key = encryption.object_data_key(header, Keyring.of(KEK, wraps={OID: old_wraps}), OID)
        rewrapped = encryption.make_wrap(new, data_key, header, OID)
        assert encryption.parse_wrap(rewrapped).kek_id == kek_id(new)
        only_new = Keyring.of(new, wraps={OID: [*old_wraps, rewrapped]})
        assert _decrypt(cipher, only_new) == plain
        assert _range(cipher, C - 1, 3, only_new) == plain[C - 1 : C + 2]
        with pytest.raises(EncryptionKeyError, match=kek_id(KEK)):
            _decrypt(cipher, Keyring.of(new, wraps={OID: old_wraps}))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_v2_format_is_as_documented(algorithm: str) -> None:
    """Decrypt a version 2 object from its wrap object with nothing but the docstring."""
    import hashlib
    import hmac

    plain = _plain(2 * C + 7)
    cipher, wrap = _sealed(plain, algorithm)
    assert cipher[:8] == b"EVA-ENC\n" and cipher[8] == 2
    assert cipher[9] == {"AES-256-GCM": 1, "SM4-GCM": 2}[algorithm]
    (chunk_size,) = struct.unpack(">I", cipher[10:14])
    h = 54
    prefix, commit = cipher[14:22], cipher[22:54]
    key_size = {"AES-256-GCM": 32, "SM4-GCM": 16}[algorithm]
    assert wrap[:8] == b"EVA-WRP\n" and wrap[8] == 1 and wrap[9] == cipher[9]
    assert wrap[10:18] == bytes.fromhex(kek_id(KEK)) and len(wrap) == 34 + key_size + 24
    bound = hashlib.sha256(b"EVA-WRP binding\n" + cipher[:h] + OID.encode()).digest()[:16]
    assert wrap[18:34] == bound
    inner = aes_key_unwrap(KEK, wrap[34:])
    data_key, inner_bound = inner[:key_size], inner[key_size:]
    assert inner_bound == bound
    assert hmac.new(data_key, b"EVA-ENC v2 key commitment\n" + prefix, hashlib.sha256).digest() == commit
    body, out, i = cipher[h:], b"", 0
    while body:
        sealed, body = body[: chunk_size + 16], body[chunk_size + 16 :]
        nonce = prefix + struct.pack(">I", i)
        aad = cipher[:h] + struct.pack(">IB", i, 0 if body else 1) + OID.encode()
        if algorithm == "AES-256-GCM":
            out += AESGCM(data_key).decrypt(nonce, sealed, aad)
        else:
            dec = Cipher(algorithms.SM4(data_key), modes.GCM(nonce, sealed[-16:])).decryptor()
            dec.authenticate_additional_data(aad)
            out += dec.update(sealed[:-16]) + dec.finalize()
        i += 1
    assert out == plain
