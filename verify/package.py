"""Offline check of an evidence package: the bag folder or its zip, nothing else.

No catalog and no storage are consulted, so the check means the same in a courtroom as in
the bureau. ``verify_package`` reports every problem it finds as ``{"path", "problem"}``,
``path`` being the file inside the bag it concerns, ``problem`` a short phrase:

- ``bagit.txt``: present, BagIt 1.0, UTF-8;
- payload manifests (``manifest-ALG.txt``): each listed file present (``missing``), no payload
  file unlisted (``not in manifest``), each digest (``sha256 mismatch``), ``Payload-Oxum`` in
  ``bag-info.txt``;
- ``tagmanifest-ALG.txt``: each tag file's digest, and no tag file left uncovered;
- ``sm3-digests.txt`` when present (``sm3 mismatch``);
- ``data/case.json``: every item's and derivative's digest equals its file's, and every
  evidence file belongs to an item (an item marked ``withheld`` has no file to check);
- the custody proof, format 2 (``verify.package_custody``, docs/CUSTODY-FORMAT.md): exact event
  bytes, every link, the chained checkpoints and their signers' trust, the payload against the
  exported event's signed commitment, no event left out; a package of format 1 (an
  ``excerpt.json`` from before custody v2) is still read by the older check below.

Trust comes only from ``anchors`` (pinned fingerprints, ``--trusted-key``), never from a key the
package carries. Hostile input: a path neither a folder nor a regular file is refused unopened
(``NotAPackage``), a zip past fixed bounds in its end-of-central-directory record is refused
before its directory is read (``ZipRefused``), members with absolute or climbing names are
reported as zip-slip, a member declaring an implausible inflation as a zip bomb. A zip is read
member by member (never extracted) and links are streamed, so memory stays small whatever the
package size or the length of its chain links.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from archive.digest import new_hash
from catalog.chain import hash_payload
from catalog.checkpoint import Anchors, Checkpoint, raw_public_key
from catalog.errors import CheckFailed, EvidenceError, NotFound
from catalog.timestamp import TimeTrust

from . import package_custody

READ_SIZE = 1 << 20
EXCERPT = "data/custody/excerpt.json"
CHECKPOINT = "data/custody/checkpoint.json"
PUBLIC_KEY = "data/custody/public-key.pem"
CASE = "data/case.json"
SM3_LIST = "sm3-digests.txt"
# Manifests are only trusted for algorithms every Python has, as bagit-python does.
KNOWN_ALGORITHMS = frozenset(hashlib.algorithms_guaranteed)
EVIDENCE_FOLDERS = ("data/originals/", "data/documents/", "data/proxies/")


@dataclass
class PackageReport:
    """The verdict on one package; ``ok`` when no problem was found."""

    path: Path
    problems: list[dict[str, str]] = field(default_factory=list)
    files: int = 0
    case_key: str | None = None
    checkpoint: int | None = None
    key_id: str | None = None
    signers: list[str] = field(default_factory=list)
    trusted: list[str] = field(default_factory=list)  # the pinned keys and those they hand over to
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, path: str, problem: str) -> None:
        self.problems.append({"path": path, "problem": problem})

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "path": str(self.path),
            "files": self.files,
            "case_key": self.case_key,
            "checkpoint": self.checkpoint,
            "key_id": self.key_id,
            "signers": self.signers,
            "trusted": self.trusted,
            "notes": self.notes,
        }


# --- where the bag's files come from: a folder or a zip ---------------------------------------


class _Unreadable(Exception):
    """A file of the bag cannot be read to its end."""


class _Source(Protocol):
    """A bag's files, from a folder or a zip."""

    def files(self) -> dict[str, int]: ...

    def open(self, rel: str) -> BinaryIO: ...

    def close(self) -> None: ...


class _Folder:
    def __init__(self, root: Path, report: PackageReport) -> None:
        self.root = root
        self._files: dict[str, int] = {}
        for folder, dirs, names in os.walk(root):
            for name in sorted(names + [d for d in dirs if (Path(folder) / d).is_symlink()]):
                path = Path(folder) / name
                rel = path.relative_to(root).as_posix()
                info = path.lstat()
                if stat.S_ISLNK(info.st_mode):
                    report.add(rel, "symbolic link")  # never followed: it could point anywhere
                elif stat.S_ISREG(info.st_mode):
                    self._files[rel] = info.st_size
                elif not stat.S_ISDIR(info.st_mode):
                    report.add(rel, "not a regular file (never opened)")  # a FIFO would hang a read

    def files(self) -> dict[str, int]:
        return self._files

    def open(self, rel: str) -> BinaryIO:
        # O_NOFOLLOW|O_NONBLOCK: a file swapped for a link or a FIFO after the walk is refused,
        # never followed or waited on.
        fd = os.open(self.root / rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(f"{rel} is no longer a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")

    def close(self) -> None:
        pass  # nothing held open between reads


MAX_MEMBERS = 100_000  # a package of a case holds hundreds to a few thousand files
MAX_CENTRAL_DIRECTORY = 32 << 20  # bytes of member names and headers
MAX_RATIO = 200  # a deflated member declaring more than 200 times its compressed size is a bomb


class ZipRefused(CheckFailed):
    """A zip whose directory passes the fixed bounds: refused before anything is read (exit 1)."""


def _zip_bounds(path: Path) -> None:
    """Read the end-of-central-directory record (ZIP64 too) and refuse a zip whose entry
    count or directory size passes the bounds, before ``zipfile`` loads its directory."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        tail_size = min(size, 22 + 65535)
        f.seek(size - tail_size)
        tail = f.read(tail_size)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            raise zipfile.BadZipFile("no end-of-central-directory record")
        _sig, _disk, _cd_disk, _here, entries, cd_size, cd_offset, _clen = struct.unpack(
            "<4s4H2LH", tail[at : at + 22]
        )
        locator = at - 20
        if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
            (_sig64, _disk64, eocd64, _disks) = struct.unpack("<4sLQL", tail[locator : locator + 20])
            if eocd64 + 56 <= size:
                f.seek(eocd64)
                record = f.read(56)
                if record[:4] == b"PK\x06\x06":
                    entries, cd_size = struct.unpack("<QQ", record[32:48])
    if entries > MAX_MEMBERS:
        raise ZipRefused(
            f"{path} declares {entries} members (at most {MAX_MEMBERS}); nothing was extracted",
            hint="a package holds one case; this zip is not one",
        )
    if cd_size > MAX_CENTRAL_DIRECTORY:
        raise ZipRefused(
            f"{path} declares a {cd_size}-byte central directory (at most {MAX_CENTRAL_DIRECTORY})",
            hint="a package holds one case; this zip is not one",
        )


class _Zip:
    def __init__(self, path: Path, report: PackageReport) -> None:
        _zip_bounds(path)
        self.zf = zipfile.ZipFile(path)
        infos = self.zf.infolist()
        for info in infos:
            name = info.filename
            if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or name.startswith("\\"):
                report.add(name, "absolute name in the zip (zip-slip)")
            elif ".." in PurePosixPath(name.replace("\\", "/")).parts:
                report.add(name, "name escapes the package folder (zip-slip)")
            elif info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_RATIO * max(
                info.compress_size, 1 << 10
            ):
                report.add(name, f"declares {info.file_size} bytes from {info.compress_size} (zip bomb)")
        bad = {p["path"] for p in report.problems}
        names = [i for i in self.zf.infolist() if not i.is_dir() and i.filename not in bad]
        tops = {n.filename.split("/", 1)[0] for n in names if "/" in n.filename}
        if any(n.filename == "bagit.txt" for n in names):
            prefix = ""
        elif len(tops) == 1:
            prefix = f"{tops.pop()}/"
        else:
            prefix = ""
        self._members: dict[str, zipfile.ZipInfo] = {}
        for info in names:
            if not info.filename.startswith(prefix):
                report.add(info.filename, "outside the bag folder")
                continue
            rel = info.filename[len(prefix) :]
            if rel in self._members:
                report.add(rel, "duplicate zip member")
            self._members[rel] = info

    def files(self) -> dict[str, int]:
        return {rel: info.file_size for rel, info in self._members.items()}

    def open(self, rel: str) -> BinaryIO:
        return self.zf.open(self._members[rel])  # type: ignore[return-value]  # ZipExtFile is a binary file

    def close(self) -> None:
        self.zf.close()


# --- digests ----------------------------------------------------------------------------------


def _digests(source: _Source, rel: str, algorithms: set[str]) -> dict[str, str]:
    hashers = {alg: new_hash(alg) for alg in algorithms}
    try:
        with source.open(rel) as f:
            while chunk := f.read(READ_SIZE):
                for h in hashers.values():
                    h.update(chunk)
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _Unreadable(str(exc)) from exc
    return {alg: h.hexdigest() for alg, h in hashers.items()}


# --- manifests and tag files --------------------------------------------------------------


def _decode_path(text: str) -> str:
    return (
        text.replace("%0A", "\n")
        .replace("%0a", "\n")
        .replace("%0D", "\r")
        .replace("%0d", "\r")
        .replace("%25", "%")
    )


def _safe(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return bool(parts) and not rel.startswith("/") and ".." not in parts and "\\" not in rel


def _read_text(source: _Source, rel: str) -> str:
    with source.open(rel) as f:
        data = f.read()
    if data.startswith(b"\xef\xbb\xbf"):
        raise UnicodeDecodeError("utf-8", data, 0, 3, "byte-order mark")
    return data.decode("utf-8")


def _read_manifest(source: _Source, name: str, report: PackageReport) -> dict[str, str]:
    entries: dict[str, str] = {}
    try:
        text = _read_text(source, name)
    except (UnicodeDecodeError, OSError, zipfile.BadZipFile, zlib.error, EOFError):
        report.add(name, "unreadable")
        return entries
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(None, 1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9A-Fa-f]+", parts[0]):
            report.add(name, f"line {lineno} malformed")
            continue
        rel = _decode_path(parts[1].lstrip("*"))
        if not _safe(rel):
            report.add(name, f"line {lineno} unsafe path")
            continue
        if rel in entries:
            report.add(name, f"line {lineno} lists {rel} twice")
            continue
        entries[rel] = parts[0].lower()
    return entries


def _bag_info(source: _Source, report: PackageReport) -> dict[str, str]:
    info: dict[str, str] = {}
    if "bag-info.txt" not in source.files():
        report.add("bag-info.txt", "missing")
        return info
    try:
        text = _read_text(source, "bag-info.txt")
    except (UnicodeDecodeError, OSError, zipfile.BadZipFile, zlib.error, EOFError):
        report.add("bag-info.txt", "unreadable")
        return info
    label = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and label:
            info[label] += " " + line.strip()
        elif ":" in line:
            label, _, value = line.partition(":")
            label = label.strip()
            info.setdefault(label, value.strip())
    return info


def _check_bagit_txt(source: _Source, files: dict[str, int], report: PackageReport) -> None:
    if "bagit.txt" not in files:
        report.add("bagit.txt", "missing")
        return
    try:
        lines = _read_text(source, "bagit.txt").splitlines()
    except (UnicodeDecodeError, OSError, zipfile.BadZipFile, zlib.error, EOFError):
        report.add("bagit.txt", "unreadable")
        return
    if lines[:2] != ["BagIt-Version: 1.0", "Tag-File-Character-Encoding: UTF-8"]:
        report.add("bagit.txt", "not BagIt 1.0 in UTF-8")


# --- the check --------------------------------------------------------------------------------


class NotAPackage(EvidenceError):
    """The path is neither a folder nor a regular file (a FIFO, a device, a socket)."""


def verify_package(
    path: Path, *, anchors: Anchors | None = None, time_trust: TimeTrust | None = None
) -> PackageReport:
    """Check a package folder or zip offline; every problem found is in the report.

    ``anchors`` are the trusted signers (pinned fingerprints, ``--trusted-key``); a checkpoint
    signed by anyone else is reported "signature valid, signer not trusted: fingerprint …",
    whatever key the package carries. ``time_trust`` (the TSA's CA) checks the signatures of
    time-stamp tokens; without it only their imprints are checked, and a note says so.
    Raises ``NotFound`` for a missing path, ``NotAPackage`` for one that is neither a folder
    nor a regular file (never opened), ``ZipRefused`` for a zip past the fixed bounds.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise NotAPackage(
            f"{path} is neither a folder nor a regular file; it was not opened",
            hint="give the package folder or its .zip",
        )
    anchors = anchors if anchors is not None else Anchors()
    report = PackageReport(path, trusted=sorted(anchors.trusted))
    try:
        source: _Source = _Folder(path, report) if stat.S_ISDIR(mode) else _Zip(path, report)
    except (zipfile.BadZipFile, OSError) as exc:
        report.add(path.name, f"not a readable zip ({exc})")
        return report
    try:
        _verify(source, report, anchors, time_trust)
    finally:
        source.close()
    return report


def _verify(source: _Source, report: PackageReport, anchors: Anchors, time_trust: TimeTrust | None) -> None:
    files = source.files()
    report.files = len(files)
    _check_bagit_txt(source, files, report)
    payload = {rel: size for rel, size in files.items() if rel.startswith("data/")}
    tags = {rel for rel in files if not rel.startswith("data/")}
    manifests = sorted(t for t in tags if re.fullmatch(r"manifest-[^/]+\.txt", t))
    tagmanifests = sorted(t for t in tags if re.fullmatch(r"tagmanifest-[^/]+\.txt", t))
    if "manifest-sha256.txt" not in manifests:
        report.add("manifest-sha256.txt", "missing")
    if "tagmanifest-sha256.txt" not in tagmanifests:
        report.add("tagmanifest-sha256.txt", "missing")

    listed: dict[str, dict[str, str]] = {}  # manifest name -> {rel: digest}
    for name in manifests + tagmanifests:
        alg = name.split("-", 1)[1].removesuffix(".txt")
        if alg not in KNOWN_ALGORITHMS:
            report.add(name, f"unsupported algorithm {alg}")
            continue
        listed[name] = _read_manifest(source, name, report)
    sm3_list = _read_manifest(source, SM3_LIST, report) if SM3_LIST in files else None

    algorithms = {name.split("-", 1)[1].removesuffix(".txt") for name in listed} | {"sha256"}
    if sm3_list is not None:
        algorithms.add("sm3")
    computed: dict[str, dict[str, str]] = {}
    for rel in sorted(files):
        try:
            computed[rel] = _digests(source, rel, algorithms)
        except _Unreadable as exc:
            report.add(rel, f"unreadable ({exc})")

    # Payload manifests: complete, and every digest right.
    for name in manifests:
        if name not in listed:
            continue
        alg = name.split("-", 1)[1].removesuffix(".txt")
        _compare(report, listed[name], computed, files, alg, where=name, payload=True)
        for rel in sorted(payload):
            if rel not in listed[name]:
                report.add(rel, "not in manifest" if name == "manifest-sha256.txt" else f"not in {name}")
    # Tag manifests: every tag file covered and right.
    for name in tagmanifests:
        if name not in listed:
            continue
        alg = name.split("-", 1)[1].removesuffix(".txt")
        _compare(report, listed[name], computed, files, alg, where=name, payload=False)
        for rel in sorted(tags):
            if rel not in listed[name] and rel not in tagmanifests:
                report.add(rel, f"not in {name}")
    if sm3_list is not None:
        _compare(report, sm3_list, computed, files, "sm3", where=SM3_LIST, payload=True)
        for rel in sorted(payload):
            if rel not in sm3_list:
                report.add(rel, f"not in {SM3_LIST}")

    _check_oxum(source, payload, report)
    items = _check_case(source, files, computed, report)
    if package_custody.EVENTS in files or EXCERPT not in files:
        outcome = package_custody.check(
            source, computed, report.add, anchors, report.case_key, items, time_trust
        )
        report.checkpoint, report.signers, report.notes = outcome.checkpoint, outcome.signers, outcome.notes
        report.trusted = outcome.trusted
        report.key_id = outcome.signers[-1] if len(outcome.signers) == 1 else None
    else:
        _check_custody(source, files, report, anchors)


def _compare(
    report: PackageReport,
    entries: dict[str, str],
    computed: dict[str, dict[str, str]],
    files: dict[str, int],
    alg: str,
    *,
    where: str,
    payload: bool,
) -> None:
    for rel, digest in entries.items():
        if rel.startswith("data/") != payload:
            report.add(where, f"lists {rel}, which is {'a tag' if payload else 'a payload'} file")
        elif rel not in files:
            report.add(rel, "missing")
        elif rel in computed and computed[rel][alg] != digest:
            report.add(rel, f"{alg} mismatch")


def _check_oxum(source: _Source, payload: dict[str, int], report: PackageReport) -> None:
    oxum = _bag_info(source, report).get("Payload-Oxum")
    if oxum is None:
        report.add("bag-info.txt", "Payload-Oxum missing")
        return
    found = f"{sum(payload.values())}.{len(payload)}"
    if oxum != found:
        report.add("bag-info.txt", f"Payload-Oxum {oxum}, payload is {found}")


def _check_case(
    source: _Source, files: dict[str, int], computed: dict[str, dict[str, str]], report: PackageReport
) -> list[Any]:
    if CASE not in files:
        report.add(CASE, "missing")
        return []
    try:
        with source.open(CASE) as f:
            case = json.load(f)
        items = case["items"]
        report.case_key = case["case"]["case_key"]
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile, zlib.error, EOFError):
        report.add(CASE, "unreadable")
        return []
    if not isinstance(items, list):
        report.add(CASE, "items malformed")
        return []
    referenced: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            report.add(CASE, "item malformed")
            continue
        number = item.get("item_no", "?")
        if item.get("withheld") and not item.get("file"):
            continue  # listed by number only; the package carries nothing of it
        wanted = [(item.get("file"), item.get("sha256"), item.get("sm3"), "")]
        wanted += [
            (d.get("file"), d.get("sha256"), None, f" {d.get('kind')}")
            for d in item.get("derivatives") or []
            if isinstance(d, dict)
        ]
        for file, sha256, sm3, what in wanted:
            rel = f"data/{file}"
            referenced.add(rel)
            if not file or rel not in files:
                report.add(CASE, f"item {number}{what} file missing")
            elif rel not in computed:
                continue  # unreadable, reported already
            elif computed[rel]["sha256"] != sha256 or (sm3 and computed[rel].get("sm3", sm3) != sm3):
                report.add(CASE, f"item {number}{what} digest mismatch")
    for rel in sorted(files):
        if rel.startswith(EVIDENCE_FOLDERS) and rel not in referenced:
            report.add(rel, "not in case.json")
    return items


# --- custody ---------------------------------------------------------------------------------


def _check_custody(source: _Source, files: dict[str, int], report: PackageReport, anchors: Anchors) -> None:
    """A package of format 1 (``excerpt.json``, made before custody v2)."""
    checkpoint = _load_checkpoint(source, files, report, anchors)
    if EXCERPT not in files:
        report.add(EXCERPT, "missing")
        return
    check = _ExcerptCheck(report, checkpoint)
    try:
        with source.open(EXCERPT) as f:
            check.run(_JsonObjectReader(f))
    except (ValueError, UnicodeDecodeError, OSError, zipfile.BadZipFile, zlib.error, EOFError):
        report.add(EXCERPT, "not valid JSON")
        return
    check.finish()


def _load_checkpoint(
    source: _Source, files: dict[str, int], report: PackageReport, anchors: Anchors
) -> Checkpoint | None:
    if CHECKPOINT not in files:
        report.add(CHECKPOINT, "missing")
        return None
    try:
        with source.open(CHECKPOINT) as f:
            checkpoint = Checkpoint.from_record(json.load(f))
    except (
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        EvidenceError,
        OSError,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
    ):
        report.add(CHECKPOINT, "unreadable")
        return None
    report.checkpoint, report.key_id = checkpoint.n, checkpoint.key_id
    report.signers = [checkpoint.fingerprint or "?"]
    key = _load_public_key(source, files, report)
    verdict = anchors.judge(checkpoint, raw_public_key(key) if key is not None else None)
    if verdict is not None:
        report.add(CHECKPOINT, f"checkpoint {checkpoint.n}: {verdict}")
    return checkpoint


def _load_public_key(
    source: _Source, files: dict[str, int], report: PackageReport
) -> Ed25519PublicKey | None:
    if PUBLIC_KEY not in files:
        report.add(PUBLIC_KEY, "missing")
        return None
    try:
        with source.open(PUBLIC_KEY) as f:
            key = serialization.load_pem_public_key(f.read())
    except (ValueError, TypeError, OSError, zipfile.BadZipFile, zlib.error, EOFError):
        report.add(PUBLIC_KEY, "unreadable")
        return None
    if not isinstance(key, Ed25519PublicKey):
        report.add(PUBLIC_KEY, "not an Ed25519 public key")
        return None
    return key


class _ExcerptCheck:
    """The excerpt's records and links against each other and the signed checkpoint.

    Records are few (one case's history) and kept; links may be millions and are checked as
    they stream past, once the records are known.
    """

    def __init__(self, report: PackageReport, checkpoint: Checkpoint | None) -> None:
        self.report, self.checkpoint = report, checkpoint
        self.records: dict[int, tuple[str, Any]] = {}  # seq -> (hash, prev)
        self.linked: set[int] = set()
        self.subjects: set[str] | None = None
        self.version: Any = None
        self.named_checkpoint: Any = None
        self.records_done = False
        self.waiting: list[Any] = []
        self.last_record: int | None = None
        self.prev_link: tuple[int, str] | None = None
        self.links = 0
        self.head_at_checkpoint: str | None = None

    def problem(self, text: str) -> None:
        self.report.add(EXCERPT, text)

    def run(self, reader: _JsonObjectReader) -> None:
        for what, key, value in reader.members():
            if what == "value" and key == "v":
                self.version = value
            elif what == "value" and key == "checkpoint":
                self.named_checkpoint = value
            elif what == "item" and key == "subjects":
                self.subjects = (self.subjects or set()) | ({value} if isinstance(value, str) else set())
            elif what == "item" and key == "events":
                self.record(value)
            elif what == "end" and key == "events":
                self.records_done = True
                for link in self.waiting:
                    self.link(link)
                self.waiting.clear()
            elif what == "item" and key == "links":
                if self.records_done:
                    self.link(value)
                else:
                    self.waiting.append(value)  # only when a file puts links first

    def record(self, rec: Any) -> None:
        index = len(self.records) + 1
        if not (
            isinstance(rec, dict) and isinstance(rec.get("seq"), int) and isinstance(rec.get("hash"), str)
        ):
            self.problem(f"event #{index} malformed")
            return
        seq = rec["seq"]
        if self.last_record is not None and seq <= self.last_record:
            self.problem(f"event {seq} out of order")
        self.last_record = max(seq, self.last_record or seq)
        try:
            recomputed = hash_payload({k: v for k, v in rec.items() if k != "hash"})
        except EvidenceError:
            recomputed = None
        if recomputed != rec["hash"]:
            self.problem(f"event {seq} altered")
        if self.subjects is not None and rec.get("subject") not in self.subjects:
            self.problem(f"event {seq} is about {rec.get('subject')!r}, not a listed subject")
        self.records[seq] = (rec["hash"], rec.get("prev"))

    def link(self, link: Any) -> None:
        self.links += 1
        if not (
            isinstance(link, list)
            and len(link) == 3
            and isinstance(link[0], int)
            and isinstance(link[1], str)
            and isinstance(link[2], str)
        ):
            self.problem(f"link #{self.links} malformed")
            return
        seq, prev, digest = link
        if self.prev_link is not None:
            last_seq, last_hash = self.prev_link
            if seq != last_seq + 1:
                self.problem(f"chain broken at {min(seq, last_seq + 1)}")
            elif prev != last_hash:
                self.problem(f"chain broken at {seq}")
        if seq in self.records:
            if self.records[seq] != (digest, prev):
                self.problem(f"event {seq} differs from its link")
            self.linked.add(seq)
        if self.checkpoint is not None and seq == self.checkpoint.seq:
            self.head_at_checkpoint = digest
        self.prev_link = (seq, digest)

    def finish(self) -> None:
        for link in self.waiting:
            self.link(link)
        if self.version != 1:
            self.problem(f"unknown excerpt version {self.version!r}")
        if not self.records:
            self.problem("no events")
        if self.prev_link is None:
            self.problem("no links")
        cp = self.checkpoint
        for seq in sorted(set(self.records) - self.linked):
            if cp is not None and seq > cp.seq:
                self.problem(f"checkpoint does not cover event {seq}")
            else:
                self.problem(f"event {seq} has no link")
        if cp is None:
            return
        if self.named_checkpoint != cp.n:
            self.problem(f"names checkpoint {self.named_checkpoint!r}, the package has {cp.n}")
        if self.head_at_checkpoint is None:
            last = self.prev_link[0] if self.prev_link else None
            self.problem(
                f"links end at {last}, checkpoint signs {cp.seq}"
                if last is not None and last < cp.seq
                else f"no link at checkpoint seq {cp.seq}"
            )
        elif self.head_at_checkpoint != cp.head:
            self.problem(f"link {cp.seq} is not the checkpoint head")


class _JsonObjectReader:
    """One JSON object read from a stream, its top-level arrays element by element.

    Any formatting is accepted (whitespace anywhere JSON allows it); memory holds one element
    at a time plus a read buffer, so a file of a million links is checked in little memory.
    """

    CHUNK = 1 << 16
    _WS = re.compile(r"[ \t\n\r]*")

    def __init__(self, stream: BinaryIO) -> None:
        self._text = io.TextIOWrapper(stream, encoding="utf-8")
        self._buf, self._pos, self._eof = "", 0, False
        self._decoder = json.JSONDecoder()

    def _more(self) -> bool:
        if self._eof:
            return False
        data = self._text.read(max(self.CHUNK, len(self._buf) - self._pos))
        if not data:
            self._eof = True
            return False
        self._buf, self._pos = self._buf[self._pos :] + data, 0
        return True

    def _peek(self) -> str:
        while True:
            match = self._WS.match(self._buf, self._pos)
            self._pos = match.end() if match else self._pos
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._more():
                return ""

    def _take(self, char: str) -> None:
        if self._peek() != char:
            raise ValueError(f"expected {char!r}")
        self._pos += 1

    def _value(self) -> Any:
        self._peek()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError:
                if self._more():
                    continue
                raise
            if end == len(self._buf) and self._more():
                continue  # a number may go on in the next chunk
            self._pos = end
            return value

    def members(self) -> Iterator[tuple[str, str, Any]]:
        """``("value", key, v)``; for an array ``("item", key, element)`` each, then ``("end", key, n)``."""
        self._take("{")
        seen: set[str] = set()
        if self._peek() == "}":
            self._pos += 1
        else:
            while True:
                key = self._value()
                if not isinstance(key, str) or key in seen:
                    raise ValueError("object key not a string, or repeated")
                seen.add(key)
                self._take(":")
                if self._peek() == "[":
                    self._pos += 1
                    n = 0
                    if self._peek() == "]":
                        self._pos += 1
                    else:
                        while True:
                            yield "item", key, self._value()
                            n += 1
                            char = self._peek()
                            self._pos += 1
                            if char == "]":
                                break
                            if char != ",":
                                raise ValueError(f"expected ',' or ']' in {key}")
                    yield "end", key, n
                else:
                    yield "value", key, self._value()
                char = self._peek()
                self._pos += 1
                if char == "}":
                    break
                if char != ",":
                    raise ValueError("expected ',' or '}'")
        if self._peek() != "":
            raise ValueError("data after the object")
