"""Putting an evidence file (an original or a document), in the clear or encrypted.

Either way the store commits the object only if the plaintext bytes sent are
those hashed before (``expect``); when encrypting, the plaintext is hashed on
its way into the encryptor and the store sees only ciphertext.

The bytes come from a path, an open binary file (read from where it stands), or a
callable that gives a new binary file from offset 0: the ingest passes its open
descriptor that way, so the file stored is the one hashed, whatever stands at its
path by then.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, cast

from . import encryption
from .digest import Digests, Hasher, HashingReader, expect
from .store import BinaryStream, ObjectStore, PutResult

Source = Path | BinaryIO | Callable[[], BinaryIO | io.RawIOBase]
"""What :func:`put_file` reads: a path, an open binary file, or a callable opening one."""


def _opened(source: Source) -> AbstractContextManager[BinaryIO | io.RawIOBase]:
    if isinstance(source, (str, os.PathLike)):
        return open(source, "rb")
    if callable(source):
        return source()  # a new reader, closed when done
    return nullcontext(source)  # the caller's file: left open


def put_file(
    store: ObjectStore,
    key: str,
    path: Source,
    digests: Digests,
    *,
    content_type: str,
    metadata: dict[str, str],
    retain_until: datetime | None,
    label: str,
    sm3: bool = False,
    encrypt: tuple[encryption.Keyring | None, str] | None = None,
) -> PutResult:
    """``path`` is a :data:`Source`; ``encrypt`` is (key ring, algorithm) for a protected
    record, else None. The object's first key wrap is stored through the ring before the
    object: without it the object could never be read."""
    check = expect(digests, label)
    with _opened(path) as opened:
        source = cast(BinaryStream, opened)  # files opened in binary mode have readinto
        if encrypt is None:
            return store.put(
                key,
                source,
                content_type=content_type,
                metadata=metadata,
                retain_until=retain_until,
                check=check,
                sm3=sm3,
            )
        kek, algorithm = encrypt
        if kek is None:
            raise encryption.EncryptionKeyError(
                f"{label} is protected and needs the key-encryption key",
                hint="check [encryption] key_file in the settings",
            )
        plain = Hasher(sm3=sm3)
        reader = encryption.EncryptingReader(HashingReader(source, plain), kek, key, algorithm)
        if reader.wrap is not None:
            if kek.save is None:
                raise encryption.EncryptionKeyError(
                    f"{label} is protected and there is nowhere to keep its key wrap",
                    hint="this is a wiring fault: the key ring needs the archive's wrap store",
                )
            kek.save(key, reader.wrap_kek_id, reader.wrap)
        return store.put(
            key,
            reader,
            content_type="application/octet-stream",
            metadata={**metadata, "encryption": algorithm},
            retain_until=retain_until,
            check=lambda _ciphertext: check(plain.digests()),
        )


def encryption_note(encrypt: tuple[encryption.Keyring | None, str] | None) -> dict[str, str] | None:
    """What a manifest says about the encryption of its object (the KEK of its first wrap)."""
    if encrypt is None or encrypt[0] is None:
        return None
    return {"algorithm": encrypt[1], "kek_id": encrypt[0].current}
