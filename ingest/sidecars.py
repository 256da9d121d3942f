"""Files a recorder or an officer puts beside a recording: vendor checksums and evidence notes.

Vendor checksums
----------------
Some recorders write ``NAME.md5`` (or ``NAME.sha256``) beside each recording, NAME being the
recording's full name. Comparing it with the digest computed while archiving proves the
copy from the recorder to the station was whole. Accepted contents: a bare hex digest, or
``md5sum``/``sha256sum`` output (``HEX  NAME`` or ``HEX *NAME``; one space also, names with a path are
compared by their last component, backslash-escaped lines as GNU tools write them), or the
BSD form ``MD5 (NAME) = HEX``; hex in either case; blank lines and ``#`` comments ignored.
When several lines are present the one naming this file is used. Anything else is an
:class:`InvalidInput` naming the sidecar and the reason: a checksum file that cannot be
read is a problem to show, not to skip.

Evidence sidecar ``NAME.evidence.json``
---------------------------------------
An officer or a station tool can say more about a recording in a UTF-8 JSON object next to
it (a byte-order mark is allowed; at most 64 KiB). Every key is optional::

    {
      "case": "开城管罚立〔2020〕42号",   // case number to link to: string, 1-200 characters
      "important": true,                  // marked important (重点文件): true or false
      "protected": false,                 // holds secrets or privacy: stored encrypted
      "note": "现场执法，当事人拒绝签字",   // free text, at most 2000 characters
      "flags": {
        "obstruction": false,             // records obstruction of enforcement
        "emergency": false                // records a major emergency or mass incident
      }
    }

(The ``//`` comments are explanations, not part of the format: JSON has no comments.)
An unknown key, a value of the wrong type (``null`` included), a duplicated key, invalid
JSON or bytes that are not UTF-8 are an :class:`InvalidInput` that names the key and the
file: a misspelt ``"importnat": true`` silently ignored could let an important recording
be deleted on the routine schedule.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.errors import InvalidInput

from .names import open_beside, safe_display, sidecar_for

__all__ = [
    "EVIDENCE_SUFFIX",
    "EvidenceSidecar",
    "check_vendor_checksum",
    "file_digest",
    "file_md5",
    "read_evidence_sidecar",
    "vendor_checksum",
    "vendor_checksums",
]

EVIDENCE_SUFFIX = ".evidence.json"

# Sidecar suffix -> (algorithm, hex digits), strongest first.
_VENDOR_SUFFIXES: tuple[tuple[str, str, int], ...] = ((".sha256", "sha256", 64), (".md5", "md5", 32))
_MAX_CHECKSUM_BYTES = 1024 * 1024
_MAX_EVIDENCE_BYTES = 64 * 1024
_MAX_CASE_CHARS = 200
_MAX_NOTE_CHARS = 2000

_BARE = re.compile(r"([0-9A-Fa-f]+)", re.ASCII)
_GNU = re.compile(r"([0-9A-Fa-f]+) [ *]?(.+)", re.ASCII | re.DOTALL)
_BSD = re.compile(r"(MD5|SHA256|SHA2-256) ?\((.+)\) ?= ?([0-9A-Fa-f]+)", re.ASCII | re.IGNORECASE | re.DOTALL)
_BSD_ALGORITHMS = {"md5": "md5", "sha256": "sha256", "sha2-256": "sha256"}
_CHECKSUM_HINT = "write a bare hex digest or md5sum/sha256sum output naming the recording"


# --- vendor checksums -----------------------------------------------------------------------


def vendor_checksums(path: Path, *, dir_fd: int | None = None) -> list[tuple[str, str]]:
    """Every vendor checksum of the recording at ``path``: (algorithm, lowercase hex).

    ``NAME.sha256`` first, then ``NAME.md5``; empty when there is none. With ``dir_fd``
    the sidecars are read from the folder held there.
    """
    found: list[tuple[str, str]] = []
    for suffix, algorithm, digits in _VENDOR_SUFFIXES:
        sidecar = sidecar_for(path, suffix, dir_fd=dir_fd)
        if sidecar is not None:
            found.append((algorithm, _parse_checksum_file(sidecar, path.name, algorithm, digits, dir_fd)))
    return found


def vendor_checksum(path: Path, *, dir_fd: int | None = None) -> tuple[str, str] | None:
    """The vendor checksum of the recording at ``path`` (SHA-256 preferred), or None."""
    found = vendor_checksums(path, dir_fd=dir_fd)
    return found[0] if found else None


def file_digest(path: Path, algorithm: str) -> str:
    """Lowercase hex digest of a file, streamed (memory stays flat whatever the size)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()


def file_md5(path: Path) -> str:
    """MD5 of a file, streamed: only to compare with a vendor's ``.md5``, never to prove."""
    return file_digest(path, "md5")


def check_vendor_checksum(path: Path, digests: dict[str, str]) -> tuple[str, bool] | None:
    """Compare the vendor checksums of ``path`` with digests already computed.

    ``digests`` maps algorithm names (``"sha256"``, ``"md5"``) to hex. An algorithm missing
    from it is computed by reading the file again, so pass every digest the archiving pass
    made. Returns (algorithm, matched): the first mismatch if any sidecar disagrees, else
    the strongest match; None when the recording has no vendor checksum.
    """
    found = vendor_checksums(path)
    if not found:
        return None
    results: list[tuple[str, bool]] = []
    for algorithm, expected in found:
        actual = digests.get(algorithm)
        if actual is None:
            actual = file_digest(path, algorithm)
        results.append((algorithm, hmac.compare_digest(actual.lower(), expected)))
    return next((r for r in results if not r[1]), results[0])


def _parse_checksum_file(
    sidecar: Path, target: str, algorithm: str, digits: int, dir_fd: int | None = None
) -> str:
    where = safe_display(sidecar)

    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"checksum file {where}: {why}", hint=_CHECKSUM_HINT, file=str(sidecar))

    with open(open_beside(sidecar, dir_fd), "rb") as fh:
        data = fh.read(_MAX_CHECKSUM_BYTES + 1)
    if len(data) > _MAX_CHECKSUM_BYTES:
        raise bad(f"larger than {_MAX_CHECKSUM_BYTES} bytes")
    text = data.decode("utf-8-sig", "surrogateescape")
    entries: list[tuple[int, str, str | None]] = []  # line number, hex, name
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        escaped = line.startswith("\\")
        if escaped:
            line = line[1:]
        if m := _BARE.fullmatch(line):
            hex_digest, name = m[1], None
        elif m := _GNU.fullmatch(line):
            hex_digest, name = m[1], m[2]
        elif m := _BSD.fullmatch(line):
            if _BSD_ALGORITHMS[m[1].lower()] != algorithm:
                raise bad(f"line {lineno} is a {m[1]} line in a {algorithm} file")
            hex_digest, name = m[3], m[2]
        else:
            raise bad(f"line {lineno} is not a checksum line ({safe_display(line[:80])})")
        if len(hex_digest) != digits:
            raise bad(f"line {lineno} has {len(hex_digest)} hex digits, a {algorithm} digest has {digits}")
        if name is not None:
            name = _last_component(_unescape(name) if escaped else name, windows=not escaped)
        entries.append((lineno, hex_digest.lower(), name))
    if not entries:
        raise bad("no checksum in it")
    bare = [e for e in entries if e[2] is None]
    if bare and len(entries) > 1:
        raise bad(f"line {bare[0][0]} has a digest without a file name among several lines")
    if bare:
        return bare[0][1]
    matches = [e for e in entries if e[2] == target] or [
        e for e in entries if e[2] is not None and e[2].casefold() == target.casefold()
    ]
    if not matches:
        named = ", ".join(safe_display(e[2] or "") for e in entries[:3])
        raise bad(
            f"no line names {safe_display(target)} (it names {named}{', …' if len(entries) > 3 else ''})"
        )
    if len({e[1] for e in matches}) > 1:
        raise bad(
            f"lines {', '.join(str(e[0]) for e in matches)} give different digests for {safe_display(target)}"
        )
    return matches[0][1]


def _unescape(name: str) -> str:
    """Undo GNU coreutils' escaping of ``\\``, newline and carriage return in names."""
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "\\": "\\"}.get(m[1], m[0]), name)


def _last_component(name: str, *, windows: bool) -> str:
    if windows:
        name = name.replace("\\", "/")
    return name.rsplit("/", 1)[-1]


# --- evidence sidecar -----------------------------------------------------------------------

_TOP_KEYS = frozenset({"case", "important", "protected", "note", "flags"})
_FLAG_KEYS = frozenset({"obstruction", "emergency"})
_EVIDENCE_HINT = (
    "allowed keys: case (string), important, protected (true/false), note (string), "
    "flags.obstruction, flags.emergency (true/false); see the README"
)


@dataclass(frozen=True)
class EvidenceSidecar:
    """What ``NAME.evidence.json`` says, shaped like the file; None means "not given".

    ``flags`` holds only the flags the file gives (``{"obstruction": True}``), so that a
    flag left out is never read as a flag set to false. ``path`` is the sidecar read, for
    the recording's sources and custody record.
    """

    path: Path
    case: str | None = None
    important: bool | None = None
    protected: bool | None = None
    note: str | None = None
    flags: dict[str, bool] = field(default_factory=dict)

    @property
    def obstruction(self) -> bool | None:
        """Records obstruction of enforcement (kept permanently under the 2016 rule)."""
        return self.flags.get("obstruction")

    @property
    def emergency(self) -> bool | None:
        """Records a major emergency or mass incident (kept permanently too)."""
        return self.flags.get("emergency")


def read_evidence_sidecar(path_of_recording: Path, *, dir_fd: int | None = None) -> EvidenceSidecar | None:
    """Read the recording's ``NAME.evidence.json``; None when there is none.

    Raises :class:`InvalidInput` naming the file and the key for anything outside the
    schema in the module docstring. With ``dir_fd`` it is read from the folder held there.
    """
    sidecar = sidecar_for(path_of_recording, EVIDENCE_SUFFIX, dir_fd=dir_fd)
    if sidecar is None:
        return None
    where = safe_display(sidecar)

    def bad(why: str, key: str | None = None) -> InvalidInput:
        about = f"key {key!r} " if key else ""
        return InvalidInput(
            f"evidence sidecar {where}: {about}{why}", hint=_EVIDENCE_HINT, file=str(sidecar), key=key
        )

    with open(open_beside(sidecar, dir_fd), "rb") as fh:
        data = fh.read(_MAX_EVIDENCE_BYTES + 1)
    if len(data) > _MAX_EVIDENCE_BYTES:
        raise bad(f"is larger than {_MAX_EVIDENCE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad(f"is not UTF-8 (byte {exc.start})") from None

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise bad("appears twice", key)
            out[key] = value
        return out

    try:
        doc = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise bad(f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(doc, dict):
        raise bad(f"must hold a JSON object, not {_json_type(doc)}")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise bad("is not a known key", unknown[0])

    flags = doc.get("flags", {})
    if not isinstance(flags, dict):
        raise bad(f"must be an object, not {_json_type(flags)}", "flags")
    unknown = sorted(set(flags) - _FLAG_KEYS)
    if unknown:
        raise bad("is not a known flag", f"flags.{unknown[0]}")

    def boolean(value: Any, key: str) -> bool | None:
        if value is _MISSING:
            return None
        if type(value) is not bool:
            raise bad(f"must be true or false, not {_json_type(value)}", key)
        return value

    def string(value: Any, key: str, limit: int, *, one_line: bool) -> str | None:
        if value is _MISSING:
            return None
        if not isinstance(value, str):
            raise bad(f"must be a string, not {_json_type(value)}", key)
        if one_line:
            value = value.strip()
            if not value:
                raise bad("is empty", key)
        if len(value) > limit:
            raise bad(f"is {len(value)} characters long, at most {limit} are allowed", key)
        allowed = "" if one_line else "\n\r\t"
        if any(unicodedata.category(c) in ("Cc", "Cs") and c not in allowed for c in value):
            raise bad("holds control characters or invalid Unicode", key)
        return value

    return EvidenceSidecar(
        path=sidecar,
        case=string(doc.get("case", _MISSING), "case", _MAX_CASE_CHARS, one_line=True),
        important=boolean(doc.get("important", _MISSING), "important"),
        protected=boolean(doc.get("protected", _MISSING), "protected"),
        note=string(doc.get("note", _MISSING), "note", _MAX_NOTE_CHARS, one_line=False),
        flags={key: bool(boolean(value, f"flags.{key}")) for key, value in sorted(flags.items())},
    )


_MISSING: Any = object()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
