"""What a recorder file's path says: device, officer, start time, sequence, mark, kind.

Recorders name their files in a handful of shapes (``1111111@201506250850560000.mp4``,
``TA00716_JX0227_20170623093621.MOV``), stations file them in folders per device
(``{serial}/{yyyymmdd}/mp4/…``), and a recorder's root carries an ``sn.txt`` with the
officer number. None of this is trusted as evidence on its own: it is metadata that helps
people find a recording, so every value says where it came from (``NameFacts.sources``) and
anything odd becomes a note instead of an error, because a strange name must never keep a
recording out of the archive.

The patterns come from the settings (``ingest.filename_patterns``) and are passed in; this
module does not read settings.

Device folders
--------------
When the file name gives no device, the folders of the path *relative to the watched
folder* may. A folder name counts as a device serial only when it looks like one,
``^[A-Za-z0-9]{5,16}$`` with at least one digit (so ``Record``, ``Video`` or ``PHOTO`` are
never taken for serials), and it stands in one of these places:

- directly above a date folder ``yyyymmdd`` (a real calendar date): station storage
  ``{serial}/{yyyymmdd}/mp4/{file}``;
- directly above a ``DCIM`` folder (any case): a recorder's root copied or mounted inside
  the watched folder, ``{serial}/DCIM/100MEDIA/{file}``. When ``DCIM`` is the first folder
  of the relative path the recorder's root is the watched folder itself and its name is
  not seen, so no device comes from it;
- directly below a folder named ``inbox`` (any case): per-device inboxes
  ``inbox/{serial}/{file}``.

When several folders qualify, the one nearest to the file wins and a note names the others
that disagree. A device from the file name always beats one from a folder (with a note when
they differ).

Companions
----------
Files that travel with a recording but are never recordings themselves (see
:func:`is_companion`): checksums (``*.md5``, ``*.sha256``), the evidence sidecar
(``*.evidence.json``), GPS and subtitle sidecars (``*.json``, ``*.vtt``, ``*.srt``),
``sn.txt``, recorder logs (``log-*``, ``*.log``), and files still being written or hidden
(``*.part``, ``*.tmp``, ``*.crdownload``, names starting with a dot).
:func:`companions_of` lists those that belong to one recording, by name: ``NAME.md5``,
``NAME.sha256`` and ``NAME.evidence.json`` (NAME is the recording's full name, extension
included, as ``md5sum``-style tools write them), and ``STEM.json``, ``STEM.vtt``,
``STEM.srt`` (STEM is the name without its last extension, as GPS-trail writers do). The
part after NAME or STEM is compared without regard to case (``X.MP4.MD5`` belongs to
``X.MP4``). A STEM sidecar is shared when two recordings have the same stem
(``X.mp4`` and ``X.wav`` both list ``X.json``).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Literal
from zoneinfo import ZoneInfo

from catalog.errors import InvalidInput

__all__ = [
    "KIND_BY_EXTENSION",
    "KNOWN_GROUPS",
    "NameFacts",
    "companions_of",
    "compile_patterns",
    "find_sn_txt",
    "find_sn_txt_at",
    "is_companion",
    "open_beside",
    "kind_of_extension",
    "parse_path",
    "read_sn_txt",
    "safe_display",
    "sidecar_for",
]

Kind = Literal["video", "audio", "photo"]

KNOWN_GROUPS = frozenset({"device", "officer", "start", "seq", "marker", "ext"})
"""Named groups a file name pattern may use (the same set the settings check)."""

KIND_BY_EXTENSION: dict[str, Kind] = {
    **{ext: "video" for ext in ("mp4", "mov", "avi", "mkv", "ts", "m4v", "3gp")},
    **{ext: "audio" for ext in ("wav", "mp3", "aac", "m4a", "amr")},
    **{ext: "photo" for ext in ("jpg", "jpeg", "png")},
}
"""What a recording's extension says about its kind (lower case, without the dot)."""

IMPORTANT_MARKERS = frozenset({"IMP", "SOS"})
"""Name markers that make a recording important (重点文件): marked on the recorder."""

_DEVICE_FOLDER = re.compile(r"(?=[A-Za-z]*[0-9])[A-Za-z0-9]{5,16}", re.ASCII)
_DATE_FOLDER = re.compile(r"[0-9]{8}", re.ASCII)
_ALIAS_NAME = re.compile(r"(?P<who>[^@]+)@(?P<start>[0-9]{14})[0-9]*(?:_[A-Za-z]+)?\.[A-Za-z0-9]+", re.ASCII)
_SN_OFFICER = re.compile(r"[\x21-\x7e]{1,32}", re.ASCII)
_SN_MAX_BYTES = 4096
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# Companion rules: full-name suffixes, and exact lower-cased names or prefixes.
_COMPANION_SUFFIXES = (".md5", ".sha256", ".json", ".vtt", ".srt", ".log", ".part", ".tmp", ".crdownload")
_NAME_SIDECARS = (".md5", ".sha256", ".evidence.json")
_STEM_SIDECARS = (".json", ".vtt", ".srt")


@dataclass(frozen=True)
class NameFacts:
    """What a file's path says, each value with the source that gave it.

    ``start`` is aware: recorder names carry local wall time without an offset, so the
    14 digits are read in the station's zone. ``sources`` maps each field that has a value
    from the path to ``"filename"``, ``"folder"`` or ``"sn.txt"`` (``kind`` is always from
    the extension and is not listed). ``notes`` say, for people, what looked wrong.
    """

    device: str | None = None
    officer: str | None = None
    start: datetime | None = None
    seq: str | None = None
    marker: str | None = None
    important: bool = False
    kind: Kind | None = None
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def compile_patterns(patterns: Iterable[str]) -> list[re.Pattern[str]]:
    """Compile the settings' file name patterns, in order (the first match wins).

    Patterns are compiled with ``re.ASCII`` so ``\\d`` means 0-9 only: a name with, say,
    full-width digits must not yield a start time. A pattern that does not compile or names
    a group other than :data:`KNOWN_GROUPS` is an :class:`InvalidInput` naming it, so a typo
    is found at start and not as a night of recordings without metadata.
    """
    compiled: list[re.Pattern[str]] = []
    for i, text in enumerate(patterns):
        try:
            pattern = re.compile(text, re.ASCII)
        except re.error as exc:
            raise InvalidInput(
                f"file name pattern {i} ({text!r}) does not compile: {exc}",
                hint="fix ingest.filename_patterns; see the README",
            ) from None
        unknown = set(pattern.groupindex) - KNOWN_GROUPS
        if unknown:
            raise InvalidInput(
                f"file name pattern {i} ({text!r}) names unknown group(s) {', '.join(sorted(unknown))}",
                hint=f"known groups: {', '.join(sorted(KNOWN_GROUPS))}",
            )
        compiled.append(pattern)
    return compiled


def kind_of_extension(name: str) -> Kind | None:
    """The kind a name's last extension says (case-insensitive), or None."""
    suffix = PurePosixPath(name).suffix
    return KIND_BY_EXTENSION.get(suffix[1:].lower()) if suffix else None


def parse_path(
    relpath: PurePosixPath, patterns: list[re.Pattern[str]], zone: ZoneInfo, *, sn_officer: str | None = None
) -> NameFacts:
    """What ``relpath`` (the file's path relative to the watched folder) says.

    The first pattern that matches the whole file name gives device, officer, start,
    sequence and marker. Then, for what the name did not give: the device from a device
    folder (module docstring), the officer from ``sn_officer`` (read from ``sn.txt``). A
    name that matches no pattern still gives its kind from the extension; nothing here
    raises for a strange name, it becomes a note.
    """
    parts = [p for p in relpath.parts if p not in ("", "/", ".")]
    name = parts[-1] if parts else ""
    folders = parts[:-1]
    kind = kind_of_extension(name)
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    notes: list[str] = []
    start: datetime | None = None

    match = next((m for m in (p.fullmatch(name) for p in patterns) if m), None)
    if match is None:
        notes.append(f"name {safe_display(name)} matches no file name pattern")
        alias = _ALIAS_NAME.fullmatch(name)
        if alias and not _DEVICE_FOLDER.fullmatch(alias["who"]):
            notes.append(
                f"name looks like a platform alias ({safe_display(alias['who'])} in place "
                "of the recorder's serial): the device is not known from the name"
            )
    else:
        groups = match.groupdict()
        for key in ("device", "officer", "seq", "marker"):
            if groups.get(key):
                values[key] = groups[key].upper() if key == "marker" else groups[key]
                sources[key] = "filename"
        if groups.get("ext"):
            kind = KIND_BY_EXTENSION.get(groups["ext"].lower(), kind)
        if groups.get("start"):
            start, note = _local_start(groups["start"], zone)
            if note:
                notes.append(note)
            if start is not None:
                sources["start"] = "filename"

    folder_device, folder_notes = _folder_device(folders)
    notes.extend(folder_notes)
    if folder_device is not None:
        if "device" not in values:
            values["device"] = folder_device
            sources["device"] = "folder"
        elif values["device"] != folder_device:
            notes.append(
                f"folder says device {folder_device}, name says {values['device']}: the name is kept"
            )
    if sn_officer and "officer" not in values:
        values["officer"] = sn_officer
        sources["officer"] = "sn.txt"

    marker = values.get("marker")
    important = marker in IMPORTANT_MARKERS
    if important:
        sources["important"] = "filename"
    return NameFacts(
        device=values.get("device"),
        officer=values.get("officer"),
        start=start,
        seq=values.get("seq"),
        marker=marker,
        important=important,
        kind=kind,
        sources=sources,
        notes=notes,
    )


def _local_start(digits: str, zone: ZoneInfo) -> tuple[datetime | None, str | None]:
    """Read ``yyyymmddHHMMSS`` as wall time in ``zone``; an impossible time is None + a note."""
    if len(digits) != 14 or not digits.isascii() or not digits.isdigit():
        return None, f"start {safe_display(digits)} in the name is not 14 digits (yyyymmddHHMMSS)"
    try:
        naive = datetime.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError:
        return None, f"start {digits} in the name is not a real date and time"
    moment = naive.replace(tzinfo=zone)
    round_trip = moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != naive:
        return moment, (
            f"start {digits} does not exist in {zone.key} (clock change); "
            "read with the offset before the change"
        )
    if moment.utcoffset() != moment.replace(fold=1).utcoffset():
        return moment, (f"start {digits} happens twice in {zone.key} (clock change); the first one is taken")
    return moment, None


def _is_date_folder(name: str) -> bool:
    if not _DATE_FOLDER.fullmatch(name):
        return False
    try:
        datetime.strptime(name, "%Y%m%d")
    except ValueError:
        return False
    return True


def _folder_device(folders: list[str]) -> tuple[str | None, list[str]]:
    """The device serial the folders give, nearest to the file first (module docstring)."""
    found: list[str] = []
    for i, part in enumerate(folders):
        if not _DEVICE_FOLDER.fullmatch(part) or _is_date_folder(part):
            continue
        below = folders[i + 1] if i + 1 < len(folders) else None
        above = folders[i - 1] if i > 0 else None
        if (below is not None and (_is_date_folder(below) or below.upper() == "DCIM")) or (
            above is not None and above.lower() == "inbox"
        ):
            found.append(part)
    if not found:
        return None, []
    chosen = found[-1]
    others = sorted({f for f in found if f != chosen})
    notes = (
        [f"folders also name device(s) {', '.join(others)}; the nearest, {chosen}, is kept"] if others else []
    )
    return chosen, notes


def find_sn_txt(file: Path, watched_root: Path) -> Path | None:
    """The nearest ``sn.txt`` (name in any case) beside ``file`` or in a folder above it.

    The search stops at ``watched_root`` (included): an ``sn.txt`` above the watched folder
    belongs to something else. A file outside ``watched_root`` gives None. Only regular
    files count, symbolic links are never followed. When one folder holds several spellings
    (``sn.txt`` and ``SN.TXT``) the exact ``sn.txt`` wins, else the first in sorted order,
    so the answer never depends on directory order. OSError from listing a folder
    propagates: the caller retries later rather than archive without the officer.
    """
    root = Path(os.path.abspath(watched_root))
    folder = Path(os.path.abspath(file)).parent
    if folder != root and root not in folder.parents:
        return None
    while True:
        name = _sn_txt_in(folder)
        if name is not None:
            return folder / name
        if folder == root:
            return None
        folder = folder.parent


def find_sn_txt_at(folders: Sequence[int]) -> tuple[int, str] | None:
    """:func:`find_sn_txt` over held folder descriptors, the watched folder first and the
    file's own folder last: (descriptor, name) of the nearest ``sn.txt``, or None."""
    for fd in reversed(folders):
        name = _sn_txt_in(fd)
        if name is not None:
            return fd, name
    return None


def _sn_txt_in(folder: Path | int) -> str | None:
    with os.scandir(folder) as entries:
        names = sorted(
            e.name for e in entries if e.name.lower() == "sn.txt" and e.is_file(follow_symlinks=False)
        )
    if not names:
        return None
    return "sn.txt" if "sn.txt" in names else names[0]


def open_beside(path: Path, dir_fd: int | None = None) -> int:
    """Open a small file read-only without following a link: ``path.name`` in the folder
    held at ``dir_fd``, or ``path`` itself. Only a regular file is returned."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(path.name, flags, dir_fd=dir_fd) if dir_fd is not None else os.open(path, flags)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def read_sn_txt(path: Path, *, dir_fd: int | None = None) -> str | None:
    """The officer number in an ``sn.txt``: its first non-empty line, stripped.

    Accepted only when it is 1 to 32 printable ASCII characters without spaces (a UTF-8
    byte-order mark is allowed); anything else (binary, another encoding, a sentence) gives
    None, because a wrong officer is worse than none. Only the first 4 KiB are read.
    """
    with open(open_beside(path, dir_fd), "rb") as fh:
        data = fh.read(_SN_MAX_BYTES)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    for line in text.splitlines():
        value = line.strip()
        if value:
            return value if _SN_OFFICER.fullmatch(value) else None
    return None


def is_companion(name: str) -> bool:
    """True for files that travel with recordings and are never recordings themselves.

    The scanner skips these as recordings (they are not media, and quarantining a
    checksum or a half-copied ``.part`` would be wrong). See the module docstring.
    """
    lower = name.lower()
    return (
        lower.startswith(".")
        or lower == "sn.txt"
        or lower.startswith("log-")
        or lower.endswith(_COMPANION_SUFFIXES)
    )


def sidecar_for(
    recording: Path, suffix: str, *, stem: bool = False, dir_fd: int | None = None
) -> Path | None:
    """The existing sidecar ``NAME + suffix`` (or ``STEM + suffix``) of a recording, or None.

    The exact spelling wins; otherwise the suffix is matched without regard to case
    (``X.MP4.MD5``). Only regular files count. With ``dir_fd`` the recording's folder is
    the one held there (the path only names things). A recording whose name is so long
    that no sidecar name fits has none.
    """
    base = recording.stem if stem else recording.name
    exact = recording.with_name(base + suffix)
    try:
        st = os.lstat(exact) if dir_fd is None else os.stat(exact.name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISREG(st.st_mode):
            return exact
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        return None  # longer than a name may be: no such file can exist
    found = _sidecars(recording, [] if stem else [suffix], [suffix] if stem else [], dir_fd)
    return found[0] if found else None


def companions_of(path: Path, *, dir_fd: int | None = None) -> list[Path]:
    """The existing companion files of the recording at ``path``, sorted by name.

    ``NAME.md5``, ``NAME.sha256``, ``NAME.evidence.json``, ``STEM.json``, ``STEM.vtt``,
    ``STEM.srt`` beside it (module docstring); only regular files, never symbolic links.
    With ``dir_fd`` they are looked for in the folder held there.
    """
    return _sidecars(path, list(_NAME_SIDECARS), list(_STEM_SIDECARS), dir_fd)


def _sidecars(
    path: Path, name_suffixes: list[str], stem_suffixes: list[str], dir_fd: int | None = None
) -> list[Path]:
    wanted = {path.name + s.lower() for s in name_suffixes}
    wanted_stem = {s.lower() for s in stem_suffixes}
    found: list[Path] = []
    with os.scandir(path.parent if dir_fd is None else dir_fd) as entries:
        for entry in entries:
            if entry.name == path.name or not entry.is_file(follow_symlinks=False):
                continue
            n = entry.name
            by_name = n.startswith(path.name) and path.name + n[len(path.name) :].lower() in wanted
            by_stem = n.startswith(path.stem) and n[len(path.stem) :].lower() in wanted_stem
            if by_name or by_stem:
                found.append(path.parent / n)
    return sorted(found)


def safe_display(name: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """A file name made safe for logs and manifests; never raises.

    Undecodable bytes (kept by Python as surrogate escapes) become ``\\xNN``, control and
    format characters (newlines, escape sequences, bidirectional overrides that could make a
    name look like another) become ``\\n``, ``\\t``, ``\\xNN`` or ``\\uNNNN``, and a
    backslash becomes ``\\\\``, so the rendering is unambiguous and stays on one line.
    Everything else, CJK included, is kept as it is.
    """
    try:
        value = os.fspath(name)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "surrogateescape")
        out: list[str] = []
        for ch in value:
            code = ord(ch)
            if ch == "\\":
                out.append("\\\\")
            elif ch in _SHORT_ESCAPES:
                out.append(_SHORT_ESCAPES[ch])
            elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
                out.append(f"\\x{code - 0xDC00:02x}")
            elif code < 0x100 and unicodedata.category(ch) == "Cc":
                out.append(f"\\x{code:02x}")
            elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
                out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
            else:
                out.append(ch)
        return "".join(out)
    except Exception:  # noqa: BLE001 - a display helper must never raise
        try:
            return repr(name)
        except Exception:  # noqa: BLE001 - nor may its fallback
            return "<unprintable name>"
