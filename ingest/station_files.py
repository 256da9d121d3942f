"""Station files and folders, reached through descriptors, never through a path twice.

A station folder is writable by whoever docks recorders, so any name in it may be swapped
between two system calls: a file for a symbolic link to a key, a sub-folder for a link into
the store. The pipeline therefore touches a station file only through descriptors:

- a folder is opened from the one above it with ``O_NOFOLLOW | O_DIRECTORY``, from the
  station folder down (:class:`StationFolder`), so a folder replaced by a link is never
  entered;
- a file is opened once with ``O_NOFOLLOW`` and must be a regular file (:class:`StationFile`);
  the container check, ffprobe (through ``/proc/self/fd/N``), the digest and the store all
  read that one descriptor;
- a move, a deletion or a quarantine names the file inside a held folder descriptor
  (``os.rename(..., src_dir_fd=..., dst_dir_fd=...)``), right after the folders were
  re-checked to be where they were (:meth:`StationFolder.recheck`) and the file to be the one
  that was read (:class:`Identity`), so nothing outside the station folder is ever moved or
  deleted.

A station folder must not contain, nor lie inside, the data folder, the store or the keys
(:func:`check_station_folder`): whatever is in it may be moved to ``.archived`` or
``.quarantine``.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from catalog.errors import EvidenceError

from .names import safe_display

__all__ = [
    "FolderChanged",
    "Identity",
    "NotRegular",
    "StationFile",
    "StationFolder",
    "StationFolderRefused",
    "check_station_folder",
    "fit_name",
    "move_into",
    "require_proc",
]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a pipe put in the place of a file must not hang the worker.
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
NAME_MAX = 255  # bytes in one file name (Linux file systems)


class FolderChanged(EvidenceError):
    """A folder between the station folder and a file was replaced or moved while in use;
    nothing in it is touched until a later pass finds it in place again."""

    exit_code = 1


class NotRegular(EvidenceError):
    """What was opened is not a regular file (it was replaced while being opened)."""


class StationFolderRefused(EvidenceError):
    """A station folder contains, or lies inside, what the archive itself keeps."""


@dataclass(frozen=True)
class Identity:
    """Which file, and which version of it: ``(st_dev, st_ino, size, mtime_ns)`` say which
    file and how long; ``ctime_ns`` changes with any rewrite, even one that puts the
    modification time back."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _same_inode(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class StationFolder:
    """A station folder and the folders from it down to ``parts``, each held open.

    Every folder is opened from the one above it without following links, so what is held
    lies inside the station folder as it was when opened. :meth:`recheck` says whether it
    still does.
    """

    def __init__(
        self, root: Path, parts: Iterable[str] = (), *, create: bool = False, _root_fd: int | None = None
    ) -> None:
        self.root, self.parts = Path(root), tuple(parts)
        self.fds: list[int] = []
        try:
            self.fds.append(os.dup(_root_fd) if _root_fd is not None else os.open(self.root, DIR_FLAGS))
            for part in self.parts:
                if create:
                    try:
                        os.mkdir(part, dir_fd=self.fds[-1])
                    except FileExistsError:
                        pass  # opened below without following, so a link there is refused
                self.fds.append(os.open(part, DIR_FLAGS, dir_fd=self.fds[-1]))
        except BaseException:
            self.close()
            raise

    @property
    def fd(self) -> int:
        """The deepest folder's descriptor."""
        return self.fds[-1]

    def folder(self, parts: Iterable[str], *, create: bool = False) -> StationFolder:
        """Another folder of the same station folder, opened from the held station folder."""
        return StationFolder(self.root, parts, create=create, _root_fd=self.fds[0])

    def recheck(self) -> None:
        """Raise :class:`FolderChanged` unless each folder is still reached by its name from
        the station folder's path, without links. Called right before a move or deletion."""
        shown = safe_display("/".join((str(self.root), *self.parts)))
        try:
            again = StationFolder(self.root, self.parts)
        except OSError as exc:
            raise FolderChanged(
                f"{shown} was replaced or moved while in use (now: "
                f"{os.strerror(exc.errno or 0)}): nothing in it is moved or deleted",
                hint="look into the station folder: someone swapped a folder",
            ) from None
        with again:
            for held, now in zip(self.fds, again.fds, strict=False):
                if not _same_inode(os.fstat(held), os.fstat(now)):
                    raise FolderChanged(
                        f"{shown} was replaced or moved while in use: nothing in it is moved or deleted",
                        hint="look into the station folder: someone swapped a folder",
                    )

    def lstat(self, name: str) -> os.stat_result:
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def exists(self, name: str) -> bool:
        try:
            self.lstat(name)
        except FileNotFoundError:
            return False
        return True

    def close(self) -> None:
        while self.fds:
            os.close(self.fds.pop())

    def __enter__(self) -> StationFolder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class StationFile:
    """One station file, opened once without following links; every later read uses it.

    Calling the object gives a new reader from offset 0 (what ``archive.files.put_file``
    takes), limited to the bytes hashed once :attr:`hashed_size` is set, so the bytes stored
    are those hashed even if the file grows meanwhile.
    """

    def __init__(self, folder: StationFolder, name: str) -> None:
        self.name = name
        self.fd = os.open(name, FILE_FLAGS, dir_fd=folder.fd)
        try:
            self.stat = os.fstat(self.fd)
            if not stat.S_ISREG(self.stat.st_mode):
                raise NotRegular(f"{name!r} is not a regular file")
        except BaseException:
            os.close(self.fd)
            raise
        self.hashed_size: int | None = None

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def identity(self) -> Identity:
        return Identity.of(self.stat)

    def refresh(self) -> os.stat_result:
        self.stat = os.fstat(self.fd)
        return self.stat

    def reader(self, limit: int | None = None) -> FdReader:
        return FdReader(self.fd, limit)

    def __call__(self) -> FdReader:
        return self.reader(self.hashed_size)

    def proc_path(self) -> Path:
        """A path to this very file for another process (ffmpeg): it names the open file,
        whatever now stands at the station path."""
        return Path(f"/proc/{os.getpid()}/fd/{self.fd}")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> StationFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class FdReader(io.RawIOBase):
    """A sequential reader over a held descriptor with its own offset (``pread``), so
    readers never disturb one another; closing it leaves the descriptor open."""

    def __init__(self, fd: int, limit: int | None = None) -> None:
        self._fd, self._limit, self._pos = fd, limit, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            end = os.fstat(self._fd).st_size
            self._pos = (end if self._limit is None else min(end, self._limit)) + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = len(view) if self._limit is None else min(len(view), self._limit - self._pos)
        if want <= 0:
            return 0
        n = os.preadv(self._fd, [view[:want]], self._pos)
        self._pos += n
        return n


def require_proc() -> None:
    """ffprobe, ffmpeg and Pillow read a held file through ``/proc``: without it every file
    would look undecodable, so the pipeline refuses to start instead."""
    if not os.path.isdir(f"/proc/{os.getpid()}/fd"):
        raise EvidenceError(
            "/proc is not mounted here: station files are read through "
            "/proc/PID/fd (a descriptor held open, never the path again)",
            hint="run the station where /proc is mounted (any Linux host is)",
        )


def fit_name(name: str, suffix: str) -> str:
    """``name + suffix``, shortened to fit ``NAME_MAX`` bytes (a recording's name may use
    nearly all of them, and a note or a ``.1`` beside it must not fail for ever)."""
    whole = os.fsencode(name + suffix)
    if len(whole) <= NAME_MAX:
        return name + suffix
    tail = os.fsencode(suffix)
    return os.fsdecode(os.fsencode(name)[: NAME_MAX - len(tail)] + tail)


def move_into(source: StationFolder, name: str, target: StationFolder) -> str:
    """Move ``name`` from ``source`` into ``target`` under a free name (``name``, ``name.1``…);
    returns the name used. Both are held folders of one station folder, so a link put in the
    place of either is never followed; a link being moved is moved, not followed."""
    chosen, n = name, 1
    while target.exists(chosen):
        chosen, n = fit_name(name, f".{n}"), n + 1
    os.rename(name, chosen, src_dir_fd=source.fd, dst_dir_fd=target.fd)
    return chosen


def check_station_folder(folder: Path, protected: Iterable[tuple[str, Path]]) -> None:
    """Refuse a station folder that contains, or lies inside, any of ``protected``
    ((what, path) pairs: the data folder, the store, the keys' folders, the catalog file).

    Whatever a station folder holds may be moved to ``.archived`` and pruned, or moved to
    ``.quarantine``; a store or a key there would be taken for station files.
    """
    real = Path(os.path.realpath(folder))
    for what, path in protected:
        other = Path(os.path.realpath(path))
        if real == other or other.is_relative_to(real):
            raise StationFolderRefused(
                f"station folder {folder} contains the {what} ({path})",
                hint="give the station a folder of its own, outside the data folder, the store "
                "and the keys: files in a station folder are moved away once archived",
            )
        if real.is_relative_to(other):
            raise StationFolderRefused(
                f"station folder {folder} lies inside the {what} ({path})",
                hint="give the station a folder of its own, outside the data folder, the store "
                "and the keys: files in a station folder are moved away once archived",
            )
