"""Object keys: where each kind of record lives in storage (self-describing).

::

    originals/{yyyy}/{mm}/{dd}/{archive_no}.{ext}          the recording byte for byte (or ciphertext)
    originals/{yyyy}/{mm}/{dd}/{archive_no}.manifest.json  what was known at ingest
    derivatives/{archive_no}/{kind}-{sha256[:12]}.{ext}    proxy, poster, sheet, waveform
    documents/{case_key}/{item_no}.{ext} (+ .manifest.json) written records
    cases/{case_key}/events/{seq:06d}.json                 case opened, linked, unlinked, closed, held
    custody/segments/{first:012d}-{last:012d}.jsonl        custody events, copied out with checkpoints
    custody/checkpoints/{n:08d}.json                       signed chain heads (v1)
    custody/checkpoints/{n:08d}/...                        v2: statement, signature, events, links
    custody/keys/{fingerprint}.pem                         signers' public keys (key history)
    tombstones/{subject}.json                              what remains of a purged item
    reports/...                                            fixity-run results

Dates are the recording's own start date. Keys are plain ASCII: numbers are
ASCII by construction, and an original file name never reaches a key (it is
kept in the manifest).
"""

from __future__ import annotations

import re
from datetime import date

from .errors import StoreError

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_EXT = re.compile(r"^[a-z0-9]{1,8}$")


def check_key(key: str) -> str:
    """Refuse anything that could escape a folder or is not portable."""
    parts = key.split("/")
    if not key or any(not _SEGMENT.match(p) or p in (".", "..") for p in parts):
        raise StoreError(
            f"object key {key!r} is not a plain ASCII path",
            hint="keys are made from numbers, dates and digests only",
        )
    return key


def extension(name: str, default: str = "bin") -> str:
    """A safe lower-case extension from an original file name ('' -> default)."""
    _, dot, ext = name.rpartition(".")
    ext = ext.lower() if dot else ""
    return ext if _EXT.match(ext) else default


def original_key(archive_no: str, day: date, ext: str) -> str:
    return check_key(f"originals/{day:%Y/%m/%d}/{archive_no}.{ext}")


def manifest_key(archive_no: str, day: date) -> str:
    return check_key(f"originals/{day:%Y/%m/%d}/{archive_no}.manifest.json")


def derivative_key(archive_no: str, kind: str, sha256: str, ext: str) -> str:
    return check_key(f"derivatives/{archive_no}/{kind}-{sha256[:12]}.{ext}")


def document_key(case_key: str, item_no: str, ext: str) -> str:
    return check_key(f"documents/{case_key}/{item_no}.{ext}")


def document_manifest_key(case_key: str, item_no: str) -> str:
    return check_key(f"documents/{case_key}/{item_no}.manifest.json")


def case_event_key(case_key: str, seq: int) -> str:
    return check_key(f"cases/{case_key}/events/{seq:06d}.json")


def segment_key(first: int, last: int) -> str:
    return check_key(f"custody/segments/{first:012d}-{last:012d}.jsonl")


def checkpoint_key(n: int) -> str:
    return check_key(f"custody/checkpoints/{n:08d}.json")


def checkpoint_folder(n: int) -> str:
    return check_key(f"custody/checkpoints/{n:08d}")


def key_history_key(fingerprint: str) -> str:
    return check_key(f"custody/keys/{fingerprint}.pem")


def tombstone_key(subject: str) -> str:
    return check_key(f"tombstones/{subject}.json")


def report_key(kind: str, stamp: str, sha256: str) -> str:
    return check_key(f"reports/{kind}/{stamp}-{sha256[:12]}.json")
