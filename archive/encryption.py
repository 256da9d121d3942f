"""Streaming envelope encryption for protected evidence records.

Records that hold state secrets, commercial secrets or personal privacy
(国家秘密、商业秘密、个人隐私) are stored encrypted and must stay readable for
decades, so the format is deliberately small, fixed and described here byte
by byte. A reader written from this text alone must be able to decrypt an
object; any change to the layout gets a new format version.

Keys
----
Every object gets a fresh random *data key* (32 bytes for AES-256-GCM, 16 for
SM4-GCM). It is wrapped by the archive's *key-encryption key* (KEK, 32 bytes)
with AES key wrap (RFC 3394 / NIST SP 800-38F, no padding: both data key
sizes are multiples of 8). Key wrap was chosen over AES-GCM because it needs
no nonce and has a fixed output size (data key + 8 bytes), and its built-in
integrity check reports a damaged wrapped key as such. The wrap does not bind
the object identity; the chunk associated data below does. SM4-GCM objects
too have their data key wrapped this way (AES-256 under the KEK); using
national algorithms for the wrap as well would be a new format version.

The KEK is identified by its *KEK id*: the first 8 bytes of SHA-256(KEK),
written as 16 lowercase hex digits. It is stored in the header so that the
wrong key gives a clear "wrong key" error rather than a failed tag.

The KEK file holds the 32 key bytes as 64 hex digits and a newline (friendly
to paper backup); a file of exactly 32 raw bytes is accepted too. It must not
be accessible by group or others (mode 0600).

Object layout (format version 1)
--------------------------------
All integers are unsigned big-endian. ``H`` is the header size.

Header::

    offset  size  field
    0       8     magic b"EVA-ENC\\n" (45 56 41 2D 45 4E 43 0A), never changes
    8       1     format version, 0x01
    9       1     algorithm id: 0x01 AES-256-GCM, 0x02 SM4-GCM
    10      4     chunk size C: plaintext bytes per chunk, 1 <= C <= 64 MiB
    14      8     KEK id (first 8 bytes of SHA-256 of the KEK)
    22      W     wrapped data key: AES key wrap of the data key under the KEK;
                  W = 40 for AES-256-GCM, 24 for SM4-GCM
    22+W    8     nonce prefix P, random per object

    H = 30 + W: 70 bytes for AES-256-GCM, 54 bytes for SM4-GCM.

Chunks follow the header directly, numbered i = 0, 1, ..., n-1::

    ciphertext (C bytes; the final chunk 0..C bytes) || tag (16 bytes)

The plaintext is cut into chunks of exactly C bytes; the last chunk holds the
rest (1..C bytes). The final chunk is empty only when the whole plaintext is
empty, so an empty plaintext is one empty final chunk and n = max(1,
ceil(plain_size / C)). Decoders reject any other empty chunk, so each
plaintext size has exactly one ciphertext size::

    cipher_size = H + plain_size + 16 * n

Each chunk is sealed with the object's algorithm (AES-256-GCM, or SM4 in GCM
mode) under the data key with:

* nonce (12 bytes) = P (8 bytes) || i (4 bytes). The data key is never used
  for another object, so these nonces are unique per key; the random prefix
  is a second safeguard should a data key ever repeat. The 4-byte index
  limits an object to 2**32 chunks (4 PiB at the default 1 MiB).
* associated data = header (all H bytes) || i (4 bytes) || final flag
  (1 byte: 0x01 for the last chunk, 0x00 otherwise) || object id (UTF-8,
  exactly as the caller gave it, no normalisation, to the end).

Binding the header authenticates it (every field, the wrapped key included)
with every chunk. Binding the index stops reordering and dropping, the final
flag stops truncation at a chunk boundary and appending, and the object id
(the storage key or archive number) stops chunks or whole objects being
swapped between objects encrypted under the same KEK.

Object layout (format version 2)
--------------------------------
Written for every new object. Version 1 put the wrapped data key inside the
header, so it was authenticated data for every chunk and could never be
replaced: a KEK could not be retired. In version 2 the header holds no wrap
and no KEK id; the data key is wrapped in separate *wrap objects* (below),
as many as there are KEKs, and the header commits to the data key instead.

Header::

    offset  size  field
    0       8     magic b"EVA-ENC\n", as in version 1
    8       1     format version, 0x02
    9       1     algorithm id: 0x01 AES-256-GCM, 0x02 SM4-GCM
    10      4     chunk size C: plaintext bytes per chunk, 1 <= C <= 64 MiB
    14      8     nonce prefix P, random per object
    22      32    key commitment K = HMAC-SHA256(key = data key,
                  message = b"EVA-ENC v2 key commitment\n" || P)

    H = 54 bytes for both algorithms.

Chunks, nonces, the final-chunk rule, the sizes and the associated data are
exactly as in version 1 (associated data = the whole H-byte header || i ||
final flag || object id), so every chunk binds the algorithm, the chunk
size, the nonce prefix, the object identity and the commitment to the data
key. The commitment makes the data key the only key that opens the object:
GCM alone would let a forged wrap hand out a second key under which crafted
chunks also verify. A reader checks K before opening any chunk.

Wrap objects (wrap format version 1)
------------------------------------
One per data key and KEK, stored under ``keys/wraps/{object id}/{KEK id}``
(the catalog pins each one's version and keeps a copy of its bytes; on the
local store, whose keys are written once, a second wrap for the same name,
left by a retried store of the object, goes to ``{KEK id}.{B in hex}``).
Version 1 objects get them too when a KEK is rotated; their own header keeps
its original wrap, which only the old KEK opens. A wrap is written before
its object, so an object never exists without one. All integers
big-endian::

    offset  size  field
    0       8     magic b"EVA-WRP\n" (45 56 41 2D 57 52 50 0A)
    8       1     wrap format version, 0x01
    9       1     algorithm id of the data key (as in the object header)
    10      8     KEK id of the KEK that made this wrap
    18      16    binding B = first 16 bytes of SHA-256(b"EVA-WRP binding\n" ||
                  the object's whole header (H bytes, either version) ||
                  object id (UTF-8))
    34      W     AES key wrap (RFC 3394) under the KEK of: data key || B;
                  W = 56 for AES-256-GCM (data key 32 bytes), 40 for SM4-GCM

    size = 34 + W: 90 bytes for AES-256-GCM, 74 bytes for SM4-GCM.

B in the clear lets anyone (without a key) see that a wrap is for another
object or another version of it; B inside the key wrap authenticates it, so
a wrap cannot be moved to another object by editing its clear fields. A
reader checks, in this order: magic and version, B against the object, the
KEK id among the loaded KEKs, the key wrap's integrity, the inner B, and
(version 2 objects) the commitment K.

What a KEK rotation does not cure: a version 1 object's header keeps the
wrap made under the KEK of its day for as long as the object exists, so
whoever holds that old KEK can still read it; and any wrap under the old KEK
that is still stored (or copied in the catalog) opens its object until it
is deleted. Rotation protects version 2 objects once the superseded wraps
are deleted.

Caveat for streaming readers: ``decrypt_stream`` yields each chunk once it is
verified, so a truncated or damaged object yields its good leading chunks
before failing. Treat the output as provisional until the iterator ends
(write to a temporary file and rename it, for example).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from catalog import selftest
from catalog.errors import CheckFailed, EvidenceError, InvalidInput
from catalog.keys import read_key_file, write_new_private_file

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

ALGORITHMS = ("AES-256-GCM", "SM4-GCM")
DEFAULT_CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 64 << 20
MAGIC = b"EVA-ENC\n"
FORMAT_VERSION = 2  # what new objects are written as
FORMAT_VERSIONS = (1, 2)  # what this program reads
WRAP_MAGIC = b"EVA-WRP\n"
WRAP_VERSION = 1
BINDING_SIZE = 16
COMMITMENT_SIZE = 32
_COMMITMENT_LABEL = b"EVA-ENC v2 key commitment\n"
_BINDING_LABEL = b"EVA-WRP binding\n"
KEK_SIZE = 32
TAG_SIZE = 16
NONCE_SIZE = 12
NONCE_PREFIX_SIZE = 8
MAX_CHUNKS = 1 << 32

_ALGORITHM_IDS = {"AES-256-GCM": 1, "SM4-GCM": 2}
_ALGORITHM_NAMES = {v: k for k, v in _ALGORITHM_IDS.items()}
_DATA_KEY_SIZES = {"AES-256-GCM": 32, "SM4-GCM": 16}
_PREFIX = struct.Struct(">8sBBI8s")  # magic, version, algorithm id, chunk size, KEK id
_CHUNK_INFO = struct.Struct(">IB")  # chunk index, final flag
HEADER_SIZES = {name: _PREFIX.size + (size + 8) + NONCE_PREFIX_SIZE for name, size in _DATA_KEY_SIZES.items()}
"""Version 1 header sizes by algorithm."""
_PREFIX_V2 = struct.Struct(">8sBBI8s32s")  # magic, version, algorithm id, chunk size, nonce prefix, K
HEADER_SIZE_V2 = _PREFIX_V2.size
MAX_HEADER_SIZE = max(*HEADER_SIZES.values(), HEADER_SIZE_V2)
_WRAP_PREFIX = struct.Struct(">8sBB8s16s")  # magic, version, algorithm id, KEK id, binding
WRAP_SIZES = {name: _WRAP_PREFIX.size + size + BINDING_SIZE + 8 for name, size in _DATA_KEY_SIZES.items()}


def header_size(algorithm: str, version: int = FORMAT_VERSION) -> int:
    return HEADER_SIZES[algorithm] if version == 1 else HEADER_SIZE_V2


class Readable(Protocol):
    """A binary stream to read from: ``read`` is enough, ``readinto`` is used where the stream
    has it. Files, ``io.BytesIO`` and ``io.RawIOBase`` readers all qualify."""

    def read(self, size: int = -1, /) -> bytes | None: ...


_RESTORE_HINT = "restore the key file from its backup; without it protected records cannot be read"


class EncryptionKeyError(EvidenceError):
    """The key-encryption key is missing, malformed, exposed or not the one an object needs."""


class DecryptionFailed(CheckFailed):
    """An encrypted object is damaged, truncated, reordered or belongs to another object."""


# --- keys -----------------------------------------------------------------


def generate_kek() -> bytes:
    """Return a fresh random 32-byte key-encryption key."""
    return secrets.token_bytes(KEK_SIZE)


def kek_id(kek: bytes) -> str:
    """Name a KEK without revealing it: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(kek).hexdigest()[:16]


def _parse_kek_file(data: bytes, path: Path) -> bytes:
    if len(data) == KEK_SIZE and not all(c in b"0123456789abcdefABCDEF" for c in data):
        return data  # raw key bytes; 32 hex digits instead are half a hex key, refused below
    try:
        key = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEK_SIZE:
        raise EncryptionKeyError(
            f"key file {path} does not hold a {KEK_SIZE}-byte key",
            hint=f"it must hold 64 hex digits (or 32 raw bytes); {_RESTORE_HINT}",
        )
    return key


def load_kek(path: Path) -> bytes:
    """Read the KEK, refusing a file others can read: an exposed KEK exposes every record.

    A missing file is an error, never a reason to make a new key: a new key
    could not open anything encrypted under the old one.
    """
    try:
        data = read_key_file(path, "key file", EncryptionKeyError)
    except FileNotFoundError:
        raise EncryptionKeyError(f"key file {path} does not exist", hint=_RESTORE_HINT) from None
    return _parse_kek_file(data, path)


def create_kek(path: Path) -> bytes:
    """Create a new KEK file (mode 0600, hex), never replacing an existing one.

    The key is written under a private temporary name, synced, then
    hard-linked to its final name: link() fails if the name exists, so a
    concurrent or mistaken second call cannot overwrite a key in use.
    """
    if path.exists():
        raise EncryptionKeyError(
            f"key file {path} exists already", hint="refusing to replace a key that may protect records"
        )
    kek = generate_kek()
    if not write_new_private_file(path, kek.hex().encode("ascii") + b"\n"):
        raise EncryptionKeyError(
            f"key file {path} exists already", hint="refusing to replace a key that may protect records"
        )
    return kek


def _check_kek(kek: bytes) -> None:
    if not isinstance(kek, (bytes, bytearray)) or len(kek) != KEK_SIZE:
        raise EncryptionKeyError(f"a key-encryption key must be {KEK_SIZE} bytes")


# --- header ---------------------------------------------------------------


@dataclass(frozen=True)
class EnvelopeHeader:
    """The parsed header; ``raw`` is its exact bytes, bound into every chunk."""

    version: int
    algorithm: str
    chunk_size: int
    kek_id: str  # version 1: the KEK of the wrap inside the header; version 2: ""
    wrapped_key: bytes  # version 1 only
    nonce_prefix: bytes
    raw: bytes
    commitment: bytes = b""  # version 2 only

    @property
    def header_size(self) -> int:
        return len(self.raw)


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in _ALGORITHM_IDS:
        raise InvalidInput(
            f"unknown encryption algorithm {algorithm!r}", hint=f"use one of {', '.join(ALGORITHMS)}"
        )


def _check_chunk_size(chunk_size: int) -> None:
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise InvalidInput(f"chunk size {chunk_size} is outside 1..{MAX_CHUNK_SIZE}")


def _header_size_from_prefix(first: bytes) -> int:
    """Header size from its first 10 bytes (magic, version, algorithm id)."""
    if len(first) < 10 or first[:8] != MAGIC:
        raise DecryptionFailed(
            "not an encrypted evidence object (no header)",
            hint="the object is damaged or was stored unencrypted",
        )
    if first[8] not in FORMAT_VERSIONS:
        raise DecryptionFailed(
            f"encrypted object has format version {first[8]}, this program reads versions 1 and 2",
            hint="the header is damaged, or a newer program wrote it",
        )
    name = _ALGORITHM_NAMES.get(first[9])
    if name is None:
        raise DecryptionFailed(
            f"encrypted object names unknown algorithm id {first[9]}", hint="the header is damaged"
        )
    return header_size(name, first[8])


def read_header(first_bytes: bytes) -> EnvelopeHeader:
    """Parse the header from the start of an object (at least ``MAX_HEADER_SIZE`` bytes
    or the whole object if shorter; extra bytes are ignored).

    Only the structure is checked here; the header's integrity is proven by
    the first chunk that verifies.
    """
    size = _header_size_from_prefix(first_bytes[:10])
    if len(first_bytes) < size:
        raise DecryptionFailed(f"encrypted object is shorter than its {size}-byte header")
    raw = bytes(first_bytes[:size])
    if raw[8] == 2:
        _magic, version, alg_id, chunk_size, prefix, commitment = _PREFIX_V2.unpack_from(raw)
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise DecryptionFailed(
                f"encrypted object header gives chunk size {chunk_size}", hint="the header is damaged"
            )
        return EnvelopeHeader(
            version=version,
            algorithm=_ALGORITHM_NAMES[alg_id],
            chunk_size=chunk_size,
            kek_id="",
            wrapped_key=b"",
            nonce_prefix=prefix,
            raw=raw,
            commitment=commitment,
        )
    _magic, version, alg_id, chunk_size, kid = _PREFIX.unpack_from(raw)
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise DecryptionFailed(
            f"encrypted object header gives chunk size {chunk_size}", hint="the header is damaged"
        )
    wrap_end = size - NONCE_PREFIX_SIZE
    return EnvelopeHeader(
        version=version,
        algorithm=_ALGORITHM_NAMES[alg_id],
        chunk_size=chunk_size,
        kek_id=kid.hex(),
        wrapped_key=raw[_PREFIX.size : wrap_end],
        nonce_prefix=raw[wrap_end:],
        raw=raw,
    )


def _chunk_count(plain_size: int, chunk_size: int) -> int:
    return max(1, -(-plain_size // chunk_size))


def encrypted_size(
    plain_size: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    algorithm: str = "AES-256-GCM",
    version: int = FORMAT_VERSION,
) -> int:
    """Exact size of the encrypted object, for Content-Length and quota checks."""
    _check_algorithm(algorithm)
    _check_chunk_size(chunk_size)
    if plain_size < 0:
        raise InvalidInput(f"plaintext size {plain_size} is negative")
    n = _chunk_count(plain_size, chunk_size)
    if n > MAX_CHUNKS:
        raise InvalidInput(f"{plain_size} bytes need more than {MAX_CHUNKS} chunks of {chunk_size}")
    return header_size(algorithm, version) + plain_size + TAG_SIZE * n


def plain_size_of(cipher_size: int, header: EnvelopeHeader) -> int:
    """Plaintext size of an object from its stored size (needed for Content-Range).

    Only canonical layouts are accepted; a size no encryption could produce
    means the object was cut or extended.
    """
    body = cipher_size - header.header_size
    stride = header.chunk_size + TAG_SIZE
    n = max(1, -(-body // stride))
    last = body - (n - 1) * stride
    if body < TAG_SIZE or last < TAG_SIZE or (last == TAG_SIZE and n > 1):
        raise DecryptionFailed(
            f"encrypted object size {cipher_size} is impossible for chunk size {header.chunk_size}",
            hint="the object is truncated or has bytes appended",
        )
    return body - TAG_SIZE * n


# --- sealing ---------------------------------------------------------------


class _ChunkCipher:
    """Seals and opens the chunks of one object under its data key."""

    def __init__(self, header: EnvelopeHeader, data_key: bytes, object_id: bytes) -> None:
        selftest.require(header.algorithm)  # once per process: refuses a missing or broken build
        self._header = header.raw
        self._prefix = header.nonce_prefix
        self._object_id = object_id
        self._sm4 = header.algorithm == "SM4-GCM"
        self._key = data_key
        self._aes = None if self._sm4 else AESGCM(data_key)

    def _nonce_aad(self, index: int, final: bool) -> tuple[bytes, bytes]:
        info = _CHUNK_INFO.pack(index, 1 if final else 0)
        return self._prefix + info[:4], self._header + info + self._object_id

    def seal(self, index: int, final: bool, data: memoryview) -> bytes | bytearray:
        """Return ciphertext || tag as one new buffer (one allocation, no joins)."""
        nonce, aad = self._nonce_aad(index, final)
        if self._aes is not None:
            return self._aes.encrypt(nonce, data, aad)
        enc = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        sealed = bytearray(len(data) + TAG_SIZE)
        enc.update_into(data, sealed)
        enc.finalize()
        sealed[len(data) :] = enc.tag
        return sealed

    def open(self, index: int, final: bool, sealed: bytes | memoryview) -> bytes:
        """Return the plaintext, or raise InvalidTag; nothing unverified is returned."""
        nonce, aad = self._nonce_aad(index, final)
        if self._aes is not None:
            return self._aes.decrypt(nonce, sealed, aad)
        sealed = memoryview(sealed)
        dec = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, bytes(sealed[-TAG_SIZE:]))).decryptor()
        dec.authenticate_additional_data(aad)
        body = dec.update(sealed[:-TAG_SIZE])
        dec.finalize()
        return body


def _object_id_bytes(object_id: str) -> bytes:
    if not isinstance(object_id, str) or not object_id:
        raise InvalidInput("an encrypted object needs a non-empty object id")
    try:
        return object_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"object id {object_id!r} is not valid text: {exc}") from exc


# --- wraps and key rings --------------------------------------------------------


class WrapRefused(DecryptionFailed):
    """A wrap object is damaged, is not a wrap, or belongs to another object."""


@dataclass(frozen=True)
class Wrap:
    """A parsed wrap object; ``raw`` is its exact bytes."""

    algorithm: str
    kek_id: str
    binding: bytes
    wrapped: bytes
    raw: bytes


def commitment(data_key: bytes, nonce_prefix: bytes) -> bytes:
    """The version 2 header's commitment to its data key."""
    return hmac.new(data_key, _COMMITMENT_LABEL + nonce_prefix, hashlib.sha256).digest()


def binding(header_raw: bytes, object_id: str) -> bytes:
    """What ties a wrap to one object: its whole header (random per object) and its id."""
    return hashlib.sha256(_BINDING_LABEL + header_raw + _object_id_bytes(object_id)).digest()[:BINDING_SIZE]


def make_wrap(kek: bytes, data_key: bytes, header: EnvelopeHeader, object_id: str) -> bytes:
    """A wrap object for ``data_key`` of the object (``header``, ``object_id``) under ``kek``."""
    _check_kek(kek)
    selftest.require(selftest.AES_KW)
    bound = binding(header.raw, object_id)
    return _WRAP_PREFIX.pack(
        WRAP_MAGIC, WRAP_VERSION, _ALGORITHM_IDS[header.algorithm], bytes.fromhex(kek_id(kek)), bound
    ) + aes_key_wrap(kek, data_key + bound)


def parse_wrap(raw: bytes, where: str = "wrap object") -> Wrap:
    """The fields of a wrap object; only its structure is checked here."""
    raw = bytes(raw)
    if len(raw) < _WRAP_PREFIX.size or raw[:8] != WRAP_MAGIC:
        raise WrapRefused(f"{where} is not a key wrap", hint="it is damaged or was replaced; restore it")
    _magic, version, alg_id, kid, bound = _WRAP_PREFIX.unpack_from(raw)
    name = _ALGORITHM_NAMES.get(alg_id)
    if version != WRAP_VERSION or name is None or len(raw) != WRAP_SIZES[name]:
        raise WrapRefused(
            f"{where} has wrap version {version}, algorithm id {alg_id} and {len(raw)} bytes",
            hint="it is damaged, or a newer program wrote it",
        )
    return Wrap(name, kid.hex(), bound, raw[_WRAP_PREFIX.size :], raw)


def check_wrap_belongs(
    wrap: Wrap, header: EnvelopeHeader, object_id: str, where: str = "wrap object"
) -> None:
    """Refuse a wrap made for another object (or another version of it); needs no key."""
    if wrap.binding != binding(header.raw, object_id) or wrap.algorithm != header.algorithm:
        raise WrapRefused(
            f"{where} (key {wrap.kek_id}) belongs to another object than {object_id!r}",
            hint="a wrap was copied or moved from another object; restore the right one",
            object_id=object_id,
        )


def unwrap(
    wrap: Wrap, kek: bytes, header: EnvelopeHeader, object_id: str, where: str = "wrap object"
) -> bytes:
    """The data key from ``wrap`` for the object, every check of the documented order made."""
    check_wrap_belongs(wrap, header, object_id, where)
    if wrap.kek_id != kek_id(kek):
        raise EncryptionKeyError(f"{where} was made with key {wrap.kek_id}, not with key {kek_id(kek)}")
    selftest.require(selftest.AES_KW)
    try:
        inner = aes_key_unwrap(kek, wrap.wrapped)
    except InvalidUnwrap:
        inner = b""
    size = _DATA_KEY_SIZES[header.algorithm]
    if len(inner) != size + BINDING_SIZE or not hmac.compare_digest(inner[size:], wrap.binding):
        raise WrapRefused(
            f"{where} for {object_id!r} does not verify under key {wrap.kek_id}",
            hint="the wrap is damaged or forged; restore it from storage or the catalog",
            object_id=object_id,
        )
    data_key = inner[:size]
    if header.version == 2 and not hmac.compare_digest(
        commitment(data_key, header.nonce_prefix), header.commitment
    ):
        raise WrapRefused(
            f"{where} for {object_id!r} gives a data key the object's header does not commit to",
            hint="the wrap or the header is forged or damaged",
            object_id=object_id,
        )
    return data_key


WrapLookup = Callable[[str], Iterable[bytes]]
"""Every wrap object known for an object id (the catalog's copies)."""


@dataclass(frozen=True)
class Keyring:
    """The loaded KEKs by id, the one that wraps new data keys, and where wraps are found.

    ``wraps`` maps an object id to the wrap objects known for it (a mapping or a callable);
    ``save`` stores a new object's first wrap, before its bytes are stored (without a place
    for the wrap a version 2 object could never be read again).
    """

    keks: Mapping[str, bytes]
    current: str
    wraps: WrapLookup | Mapping[str, Sequence[bytes]] | None = None
    save: Callable[[str, str, bytes], None] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, *keks: bytes, wraps: WrapLookup | Mapping[str, Sequence[bytes]] | None = None) -> Keyring:
        """A ring of ``keks``; the first wraps new data keys."""
        if not keks:
            raise EncryptionKeyError(
                "no key-encryption key is loaded", hint="check [encryption] in the settings"
            )
        for k in keks:
            _check_kek(k)
        return cls({kek_id(k): bytes(k) for k in keks}, kek_id(keks[0]), wraps)

    @classmethod
    def in_memory(cls, *keks: bytes) -> Keyring:
        """A ring keeping its wraps in a dict (tools and tests; the archive keeps them in
        storage and the catalog, ``archive.key_wraps``)."""
        kept: dict[str, list[bytes]] = {}
        ring = cls.of(*keks, wraps=kept)
        return cls(
            ring.keks, ring.current, kept, lambda oid, _kid, wrap: kept.setdefault(oid, []).append(wrap)
        )

    def kek(self) -> bytes:
        """The KEK that wraps new data keys."""
        if self.current not in self.keks:
            raise EncryptionKeyError(
                f"the current key-encryption key {self.current} is not loaded",
                hint=f"restore the key file whose id is {self.current}",
            )
        return self.keks[self.current]

    def known_wraps(self, object_id: str) -> list[bytes]:
        if self.wraps is None:
            return []
        if callable(self.wraps):
            return list(self.wraps(object_id))
        return list(self.wraps.get(object_id, ()))

    def data_key(self, header: EnvelopeHeader, object_id: str) -> bytes:
        """The object's data key: from a version 1 header's own wrap when its KEK is loaded,
        else from a wrap object under a loaded KEK. A wrap that is damaged or belongs to
        another object is refused (named in the error) unless a good one is found."""
        _object_id_bytes(object_id)  # an empty or invalid id is refused before any key is tried
        if header.version == 1 and header.kek_id in self.keks:
            selftest.require(selftest.AES_KW)
            try:
                return aes_key_unwrap(self.keks[header.kek_id], header.wrapped_key)
            except InvalidUnwrap:
                raise DecryptionFailed(
                    "the wrapped data key in the header does not verify", hint="the header is damaged"
                ) from None
        # Wraps made for an earlier attempt at storing the object (another header) are
        # normal and skipped; a wrap of this object that fails is the error to report.
        refused: list[WrapRefused] = []  # this object's wraps under a loaded KEK that fail
        damaged: list[WrapRefused] = []  # not wraps at all
        foreign: list[WrapRefused] = []  # bound to another object (or another attempt's header)
        other_keks: list[str] = []
        for raw in self.known_wraps(object_id):
            try:
                wrap = parse_wrap(raw)
            except WrapRefused as exc:
                damaged.append(exc)
                continue
            try:
                check_wrap_belongs(wrap, header, object_id)
            except WrapRefused as exc:
                foreign.append(exc)
                continue
            if wrap.kek_id not in self.keks:
                other_keks.append(wrap.kek_id)
                continue
            try:
                return unwrap(wrap, self.keks[wrap.kek_id], header, object_id)
            except WrapRefused as exc:
                refused.append(exc)
        if refused or damaged:
            raise (refused or damaged)[0]
        loaded = ", ".join(sorted(self.keks)) or "none"
        needed = sorted({*other_keks, *([header.kek_id] if header.version == 1 else [])})
        if needed:
            raise EncryptionKeyError(
                f"object {object_id!r} was encrypted under key {' or '.join(needed)}, "
                f"the loaded keys are {loaded}"
                + (f" ({len(foreign)} other wrap(s) belong to another object)" if foreign else ""),
                hint=f"load the key file whose id is {needed[0]} (or the header is damaged)",
            )
        if foreign:
            raise foreign[0]
        raise EncryptionKeyError(
            f"no key wrap is known for encrypted object {object_id!r} (loaded keys {loaded})",
            hint="restore its wrap objects (keys/wraps/...) and rebuild the catalog's copies",
        )


Keys = bytes | Keyring
"""A single KEK (its wraps nowhere but in version 1 headers) or a key ring."""


def as_keyring(keys: bytes | Keyring) -> Keyring:
    return keys if isinstance(keys, Keyring) else Keyring.of(keys)


def _open_envelope(header: EnvelopeHeader, keys: bytes | Keyring, object_id: str) -> _ChunkCipher:
    ring = as_keyring(keys)
    oid = _object_id_bytes(object_id)
    return _ChunkCipher(header, ring.data_key(header, object_id), oid)


def object_data_key(header: EnvelopeHeader, keys: bytes | Keyring, object_id: str) -> bytes:
    """The data key of an object (for writing it a new wrap); every check is made."""
    return as_keyring(keys).data_key(header, object_id)


def _chunk_failed(index: int, object_id: str) -> DecryptionFailed:
    return DecryptionFailed(
        f"chunk {index} of encrypted object {object_id!r} does not verify",
        hint="the object is damaged, truncated, reordered, or belongs to another object id",
        chunk=index,
    )


# --- encryption ------------------------------------------------------------


def _readinto_full(stream: Readable, view: memoryview) -> int:
    """Fill ``view`` from ``stream`` unless it ends first; short reads are not the end."""
    filled = 0
    readinto = getattr(stream, "readinto", None)
    while filled < len(view):
        if readinto is not None:
            got = readinto(view[filled:])
        else:
            piece = stream.read(len(view) - filled)
            got = len(piece) if piece is not None else None
            if piece:
                view[filled : filled + len(piece)] = piece
        if got is None:  # non-blocking stream with nothing yet: not supported
            raise InvalidInput("encryption needs a blocking input stream")
        if got == 0:
            break
        filled += got
    return filled


class EncryptingReader(io.RawIOBase):
    """A readable stream of the encrypted object, produced while the plaintext is read.

    It holds about one chunk of plaintext and one sealed chunk at a time, and
    learns where the plaintext ends by reading one byte ahead, so the size
    need not be known in advance (uploads of live streams work). The
    plaintext stream is not closed by this reader.
    """

    def __init__(
        self,
        plain: Readable,
        kek: bytes | Keyring,
        object_id: str,
        algorithm: str = "AES-256-GCM",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        version: int | None = None,
    ) -> None:
        super().__init__()
        version = FORMAT_VERSION if version is None else version
        _check_algorithm(algorithm)
        _check_chunk_size(chunk_size)
        kek = kek.kek() if isinstance(kek, Keyring) else kek
        _check_kek(kek)
        if version not in FORMAT_VERSIONS:
            raise InvalidInput(f"unknown encryption format version {version}")
        selftest.require(selftest.AES_KW, algorithm)
        oid = _object_id_bytes(object_id)
        data_key = secrets.token_bytes(_DATA_KEY_SIZES[algorithm])
        prefix = secrets.token_bytes(NONCE_PREFIX_SIZE)
        if version == 1:
            raw = (
                _PREFIX.pack(MAGIC, 1, _ALGORITHM_IDS[algorithm], chunk_size, bytes.fromhex(kek_id(kek)))
                + aes_key_wrap(kek, data_key)
                + prefix
            )
        else:
            raw = _PREFIX_V2.pack(
                MAGIC, 2, _ALGORITHM_IDS[algorithm], chunk_size, prefix, commitment(data_key, prefix)
            )
        self.header = read_header(raw)
        # Version 2: the only copy of the data key until the caller stores it (before the
        # object: an object whose wrap was never stored can never be read).
        self.wrap: bytes | None = make_wrap(kek, data_key, self.header, object_id) if version == 2 else None
        self.wrap_kek_id = kek_id(kek)
        self._cipher = _ChunkCipher(self.header, data_key, oid)
        self._plain = plain
        self._buf = bytearray(chunk_size)
        self._view = memoryview(self._buf)
        self._ahead = memoryview(bytearray(1))  # the read-ahead byte that tells the end
        self._carry = 0  # bytes already at the start of _buf (the read-ahead byte)
        self._index = 0
        self._done = False  # final chunk sealed
        self._out: bytes | bytearray = raw
        self._pos = 0
        self._produced = 0

    def readable(self) -> bool:
        return True

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def tell(self) -> int:
        """Bytes of ciphertext handed out so far (uploaders ask for it)."""
        return self._produced

    def _next_chunk(self) -> bool:
        """Seal the next chunk into ``_out``; False once the final chunk was produced."""
        if self._done:
            return False
        if self._index >= MAX_CHUNKS:
            raise InvalidInput(f"plaintext needs more than {MAX_CHUNKS} chunks")
        size = self._carry + _readinto_full(self._plain, self._view[self._carry :])
        final = size < len(self._buf) or _readinto_full(self._plain, self._ahead) == 0
        self._out = b""  # drop the spent chunk first: memory stays at about two chunks
        self._out, self._pos = self._cipher.seal(self._index, final, self._view[:size]), 0
        if not final:
            self._buf[0] = self._ahead[0]
            self._carry = 1
        self._index += 1
        self._done = final
        return True

    def readinto(self, b: WriteableBuffer) -> int:
        """Fill ``b`` as far as the object goes; 0 only at the end."""
        self._check_open()
        view = memoryview(b).cast("B")
        filled = 0
        while filled < len(view):
            if self._pos >= len(self._out) and not self._next_chunk():
                break
            n = min(len(view) - filled, len(self._out) - self._pos)
            view[filled : filled + n] = memoryview(self._out)[self._pos : self._pos + n]
            self._pos += n
            filled += n
        self._produced += filled
        return filled

    def read(self, size: int | None = -1) -> bytes:
        """At most ``size`` bytes (all that is left if negative); b"" only at the end.

        Overridden so large reads hand out sealed chunks without the extra
        copy ``RawIOBase.read`` makes.
        """
        self._check_open()
        if size is None or size < 0:
            return self.readall()
        parts: list[bytes] = []
        want = size
        while want > 0:
            if self._pos >= len(self._out) and not self._next_chunk():
                break
            piece = bytes(memoryview(self._out)[self._pos : self._pos + want])
            self._pos += len(piece)
            want -= len(piece)
            parts.append(piece)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._produced += len(data)
        return data

    def readall(self) -> bytes:
        """The rest of the object in one piece (it is all held in memory)."""
        parts: list[bytes] = []
        while self._pos < len(self._out) or self._next_chunk():
            parts.append(bytes(memoryview(self._out)[self._pos :]))
            self._pos = len(self._out)
        data = b"".join(parts)
        self._produced += len(data)
        return data


# --- decryption ------------------------------------------------------------


def _read_exact(stream: Readable, size: int) -> bytes:
    buf = bytearray(size)
    got = _readinto_full(stream, memoryview(buf))
    return bytes(buf[:got])


def decrypt_stream(cipher: Readable, kek: bytes | Keyring, object_id: str) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk, each only after it verified.

    The header and the key are checked before this returns, so a wrong key
    fails at once; chunk failures raise while iterating, naming the chunk.
    The object must end right after its final chunk: trailing bytes make the
    final chunk be read as non-final, and it fails.
    """
    first = _read_exact(cipher, 10)
    size = _header_size_from_prefix(first)
    header = read_header(first + _read_exact(cipher, size - 10))
    box = _open_envelope(header, kek, object_id)
    return _stream_chunks(cipher, header, box, object_id)


def _stream_chunks(
    cipher: Readable, header: EnvelopeHeader, box: _ChunkCipher, object_id: str
) -> Iterator[bytes]:
    stride = header.chunk_size + TAG_SIZE
    buf = bytearray(stride)
    view = memoryview(buf)
    ahead = memoryview(bytearray(1))
    carry = 0
    index = 0
    while True:
        got = carry + _readinto_full(cipher, view[carry:])
        final = got < stride or _readinto_full(cipher, ahead) == 0
        if got < TAG_SIZE or (got == TAG_SIZE and index > 0) or index >= MAX_CHUNKS:
            raise DecryptionFailed(
                f"chunk {index} of encrypted object {object_id!r} is truncated or misplaced",
                hint="the object is truncated or has bytes appended",
                chunk=index,
            )
        try:
            plain = box.open(index, final, view[:got])
        except InvalidTag:
            raise _chunk_failed(index, object_id) from None
        yield plain
        del plain  # the consumer has it; do not hold it while the next chunk is opened
        if final:
            return
        buf[0] = ahead[0]
        carry = 1
        index += 1


def decrypt_range(
    read_at: Callable[[int, int], bytes],
    cipher_size: int,
    kek: bytes | Keyring,
    object_id: str,
    start: int,
    length: int | None,
) -> Iterator[bytes]:
    """Yield exactly plaintext bytes [start, start+length) for a player's range request.

    ``read_at(offset, size)`` reads ciphertext; it is called once for the
    header and once per chunk that overlaps the range, and every such chunk
    is verified whole before any of it is yielded. ``length`` None means to
    the end, and a range running past the end is cut at the end (as HTTP
    does). ``start`` beyond the plaintext size is InvalidInput (HTTP 416);
    ``start`` equal to it yields nothing. Truncation is caught whenever the
    last chunk is read (its final flag is checked); a range that does not
    reach the last chunk cannot see it, so full checks use decrypt_stream.
    Header, key and range are checked before this returns.
    """
    header = read_header(read_at(0, min(MAX_HEADER_SIZE, cipher_size)))
    box = _open_envelope(header, kek, object_id)
    plain_size = plain_size_of(cipher_size, header)
    if start < 0 or (length is not None and length < 0):
        raise InvalidInput(f"range start {start} and length {length} must not be negative")
    if start > plain_size:
        raise InvalidInput(
            f"range start {start} is beyond the end of the record ({plain_size} bytes)", plain_size=plain_size
        )
    end = plain_size if length is None else min(plain_size, start + length)
    return _range_chunks(read_at, cipher_size, header, box, object_id, plain_size, start, end)


def _range_chunks(
    read_at: Callable[[int, int], bytes],
    cipher_size: int,
    header: EnvelopeHeader,
    box: _ChunkCipher,
    object_id: str,
    plain_size: int,
    start: int,
    end: int,
) -> Iterator[bytes]:
    if end <= start:
        return
    size = header.chunk_size
    stride = size + TAG_SIZE
    last_index = _chunk_count(plain_size, size) - 1
    for index in range(start // size, (end - 1) // size + 1):
        offset = header.header_size + index * stride
        want = min(stride, cipher_size - offset)
        sealed = read_at(offset, want)
        if len(sealed) != want:
            raise DecryptionFailed(
                f"chunk {index} of encrypted object {object_id!r}: read {len(sealed)} of {want} bytes",
                hint="the stored object is shorter than its recorded size",
                chunk=index,
            )
        try:
            plain = box.open(index, index == last_index, sealed)
        except InvalidTag:
            raise _chunk_failed(index, object_id) from None
        base = index * size
        yield plain[max(start - base, 0) : min(end - base, len(plain))]
