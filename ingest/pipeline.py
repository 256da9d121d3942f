"""The ingest pipeline: one station file from the dock folder to the archive.

For each file (docs/ARCHITECTURE.md, "How one recording flows"):

1. readiness: a regular file whose size and mtime have been stable for the window;
   symlinks are never followed (quarantined), special files are left and retried. The file
   is opened once (``O_NOFOLLOW``) through its folders held open (``ingest.station_files``),
   and every later step reads that descriptor;
2. the container check: empty or not media → quarantine; truncated → archived, flagged damaged;
3. metadata from the name, folders, ``sn.txt``, sidecars and ffprobe, each with its source;
4. the local digests (SHA-256, SM3 when enabled, MD5 for a vendor checksum); a digest
   already archived is a duplicate: a custody event "seen again", no second copy;
5. the archive number, reserved and committed at once (kept in the job row);
6. the original stored with proof of receipt, its manifest, and one catalog transaction
   (``archive.originals.store_original``);
7. derivatives (a failure is recorded for a retry and never blocks the original);
8. the station copy moved, deleted or kept as the settings say, with its companion files,
   only while it is still the very file read (device, inode, size, mtime and ctime): one
   that changed since is left and archived again as a new recording. A copy that cannot
   be moved is reported once (``left_in_place``) and nothing is redone for it.

The job row in the catalog carries the state, so a process killed anywhere resumes:
the same archive number is used again, an object already stored is adopted, and the
station copy is handled only once the original is committed. A job belongs to one
version of a file: a file rewritten in place is a new job even with the old name, size
and mtime (its ctime differs).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from re import Pattern
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from archive.context import ServiceContext
from archive.derivatives import record_failure, store_derivative
from archive.digest import Digests, Hasher
from archive.errors import ContentChanged, StoreError, StoreUnavailable
from archive.links import link_recordings
from archive.local_store import LocalStore, Staged
from archive.originals import OriginalFacts, store_original, stored_already
from catalog import custody, derive_jobs, jobs, metadata_fill, reservations
from catalog.actions import Action
from catalog.errors import EvidenceError, NotFound
from catalog.models import Device, DeviceAssignment, IngestJob, Officer, Recording
from catalog.recordings import find_by_sha256, reserve_archive_number

from .container import check_fd
from .derivatives import derivatives_for, needs_transcode
from .names import (
    NameFacts,
    companions_of,
    find_sn_txt_at,
    is_companion,
    parse_path,
    read_sn_txt,
    safe_display,
)
from .probe import MediaInfo, ProbeFailed, photo_info, probe
from .sidecars import EvidenceSidecar, read_evidence_sidecar, vendor_checksum
from .station_files import (
    FILE_FLAGS,
    FdReader,
    FolderChanged,
    Identity,
    NotRegular,
    StationFile,
    StationFolder,
    check_station_folder,
    fit_name,
    move_into,
    require_proc,
)

log = logging.getLogger("evidence.ingest")

READ_SIZE = 4 << 20
CONTENT_TYPES = {
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "mov": "video/quicktime",
    "avi": "video/x-msvideo",
    "mkv": "video/x-matroska",
    "ts": "video/mp2t",
    "3gp": "video/3gpp",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "aac": "audio/aac",
    "m4a": "audio/mp4",
    "amr": "audio/amr",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
}


@dataclass(frozen=True)
class StationSetup:
    """What a station's pipeline needs from the settings, as values."""

    station: str
    unit: str
    zone: ZoneInfo
    patterns: list[Pattern[str]]
    archived_folder: str = ".archived"
    quarantine_folder: str = ".quarantine"
    after_archive: Literal["move", "delete", "keep"] = "move"
    stable_seconds: float = 5.0
    clock_tolerance_seconds: float = 300.0
    workers: int = 2
    transcode_workers: int = 1
    retry_seconds: float = 60.0
    archived_keep_days: int = 30
    # (what, path) a station folder must neither contain nor lie inside: the data folder,
    # the store, the keys' folders (``check_station_folder``).
    protected: tuple[tuple[str, Path], ...] = ()
    # "queue": transcoded proxies are left to derive workers (``ingest.worker``).
    derivatives: Literal["local", "queue"] = "local"


@dataclass
class ScanReport:
    """What one pass did; ``to_json`` is the command line's contract."""

    archived: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    quarantined: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    # Archived (or duplicates) whose station copy could not be moved or deleted; each is
    # listed on the pass that first finds it so, and not again.
    left_in_place: list[dict[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_left(self, path: str, archive_no: str | None, reason: str) -> None:
        with self._lock:
            self.left_in_place.append({"path": path, "archive_no": archive_no or "", "reason": reason})

    def add(self, outcome: Outcome) -> None:
        if outcome.left is not None:
            self.add_left(outcome.path, outcome.archive_no, outcome.left)
        with self._lock:
            if outcome.kind == "archived":
                self.archived.append(outcome.archive_no)  # type: ignore[arg-type]  # set when archived
                if outcome.damaged:
                    self.damaged.append(outcome.archive_no)  # type: ignore[arg-type]  # set when archived
            elif outcome.kind == "duplicate":
                self.duplicates.append({"path": outcome.path, "archive_no": outcome.archive_no or ""})
            elif outcome.kind == "quarantined":
                self.quarantined.append({"path": outcome.path, "reason": outcome.reason or ""})
            elif outcome.kind == "failed":
                self.failed.append({"path": outcome.path, "reason": outcome.reason or ""})
            elif outcome.kind == "waiting":
                self.waiting.append(outcome.path)

    @property
    def ok(self) -> bool:
        return not (self.quarantined or self.failed or self.left_in_place)

    def to_json(self) -> dict[str, Any]:
        return {
            "archived": self.archived,
            "damaged": self.damaged,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "failed": self.failed,
            "waiting": self.waiting,
            "left_in_place": self.left_in_place,
        }


@dataclass(frozen=True)
class Outcome:
    kind: Literal["archived", "duplicate", "quarantined", "failed", "waiting", "skipped"]
    path: str
    archive_no: str | None = None
    reason: str | None = None
    damaged: bool = False
    size: int = 0
    left: str | None = None  # why the station copy stays in place (reported once)


class Pipeline:
    """Archives the files of one station's folders; safe to run in several threads."""

    def __init__(
        self, ctx: ServiceContext, setup: StationSetup, *, fault_hook: Callable[[str], None] | None = None
    ) -> None:
        require_proc()
        self.ctx, self.setup = ctx, setup
        # Short names for what every step uses.
        self.engine, self.sessions, self.store = ctx.engine, ctx.sessions, ctx.store
        # A store that can hold bytes before they have a key (``LocalStore.stage``), or None.
        self._staging = cast(LocalStore, ctx.store) if ctx.store.capabilities.staging else None
        self.formats, self.policy, self.actor, self.clock = ctx.formats, ctx.policy, ctx.actor, ctx.clock
        self.transcodes = threading.BoundedSemaphore(max(1, setup.transcode_workers))
        # Told the seconds each derivative took (the daemon's metrics); None: nobody asks.
        self.on_derivative: Callable[[str, float], None] | None = None
        # Told every chunk read while hashing (a scan's progress moves within a large file).
        self.on_bytes: Callable[[int], None] | None = None
        self._fault = fault_hook or (lambda _step: None)
        self._locks_guard = threading.Lock()
        # Set during a scan: deferred derivatives and station copies (path, archive number).
        self._later: list[tuple[str, str, Future[str | None]]] | None = None
        self._derivative_pool: ThreadPoolExecutor | None = None
        self._digest_locks: dict[str, threading.Lock] = {}

    # --- finding files --------------------------------------------------------------
    def own_folder(self, name: str) -> bool:
        return name in (self.setup.archived_folder, self.setup.quarantine_folder)

    def check_folders(self, folders: list[Path]) -> None:
        """Refuse a station folder that contains, or lies inside, the data folder, the store
        or the keys (``StationFolderRefused``): what a station folder holds gets moved away.
        Called as a scan or a watch starts, so stale staged bytes of a killed run go too."""
        for folder in folders:
            check_station_folder(folder, self.setup.protected)
        if self._staging is not None:
            removed = self._staging.clean_staged()
            if removed:
                log.info(
                    "stale staged files removed", extra={"station": self.setup.station, "removed": removed}
                )

    def candidates(self, folder: Path) -> Iterator[Path]:
        """Every file that may be a recording, in a stable order; never follows links
        (``os.fwalk`` holds each folder open and enters none reached through a link)."""
        for dirpath, dirnames, filenames, dir_fd in os.fwalk(folder, follow_symlinks=False):
            here = Path(dirpath)
            # Our own folders are never scanned; linked folders are reported, not entered.
            keep = []
            for name in sorted(dirnames):
                if here == folder and self.own_folder(name):
                    continue
                try:
                    linked = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
                except FileNotFoundError:
                    continue
                if linked:
                    filenames.append(name)
                else:
                    keep.append(name)
            dirnames[:] = keep
            for name in sorted(filenames):
                if not is_companion(name):
                    yield here / name

    # --- one file ---------------------------------------------------------------------
    def process(
        self, folder: Path, path: Path, *, wait: bool = True, respect_backoff: bool = False
    ) -> Outcome:
        """Archive one file. ``wait``: sleep out the stability window instead of
        answering "waiting"; ``respect_backoff``: a file that failed recently waits for
        its retry time (the daemon), instead of being tried at once (a manual scan)."""
        rel = PurePosixPath(path.relative_to(folder).as_posix())
        shown = safe_display(str(rel))
        try:
            # The folders down to the file, each opened from the one above without
            # following links, and held: nothing below goes through the path again.
            where = StationFolder(folder, rel.parts[:-1])
        except FileNotFoundError:
            return self._failed(Outcome("failed", shown, reason="vanished before it could be read"))
        except OSError as exc:
            return self._failed(Outcome("failed", shown, reason=_folder_problem(exc)))
        with where:
            try:
                outcome = self._open(where, rel.name, shown, wait, respect_backoff)
            except (
                StoreUnavailable,
                SQLAlchemyError,
                OSError,
                ContentChanged,
                StoreError,
                FolderChanged,
            ) as exc:
                outcome = Outcome("failed", shown, reason=_reason(exc))
            return self._failed(outcome, where, rel.name)

    def _open(
        self, where: StationFolder, name: str, shown: str, wait: bool, respect_backoff: bool
    ) -> Outcome:
        """Open the file once (``O_NOFOLLOW``, a regular file) and archive what is open."""
        try:
            st = where.lstat(name)
        except FileNotFoundError:
            return Outcome("failed", shown, reason="vanished before it could be read")
        if stat.S_ISLNK(st.st_mode):
            return self._quarantine(
                where, name, shown, "a symbolic link (links are never followed)", Identity.of(st)
            )
        if not stat.S_ISREG(st.st_mode):
            return Outcome(
                "failed", shown, reason="not a regular file (a pipe, socket or device); left in place"
            )
        try:
            opened = StationFile(where, name)
        except FileNotFoundError:
            return Outcome("failed", shown, reason="vanished before it could be read")
        except (NotRegular, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno != errno.ELOOP:
                raise
            return Outcome(
                "failed",
                shown,
                reason="replaced (by a link or something other than a "
                "file) while it was opened; looked at again next pass",
            )
        with opened:
            return self._process(where, opened, shown, wait, respect_backoff)

    def _process(
        self, folder: StationFolder, path: StationFile, shown: str, wait: bool, respect_backoff: bool
    ) -> Outcome:
        # ``folder`` holds the folders down to the file, ``path`` the file itself, opened
        # once: every step reads that descriptor, never the station path again.
        rel = PurePosixPath(*folder.parts, path.name)
        st = self._stable(path, wait)
        if st is None:
            return Outcome("waiting", shown, reason="still being written")
        now = self.clock()
        identity = Identity.of(st)
        job = jobs.job_for(self.sessions, self.setup.station, shown, astuple(identity), now)
        if job.state == "done":
            left = self._station_copy(folder, path.name, shown, job)
            return Outcome("skipped", shown, archive_no=job.archive_no, left=left)
        if job.state == "duplicate":
            left = self._station_copy(folder, path.name, shown, job)
            return Outcome("duplicate", shown, archive_no=job.outcome, left=left)
        if respect_backoff and job.next_try is not None and job.next_try > now:
            return Outcome("waiting", shown, reason=f"retrying after {job.next_try.isoformat()}")

        integrity = check_fd(path.fd)
        if integrity.status in ("empty", "not_media"):
            reason = (
                "an empty file" if integrity.status == "empty" else f"not a recording: {integrity.reason}"
            )
            jobs.update(self.sessions, job, now, state="quarantined", outcome=reason)
            return self._quarantine(folder, path.name, shown, reason, identity)
        damage = [integrity.reason or "damaged"] if integrity.status == "damaged" else []

        info = self._probe(path, integrity.kind, damage)
        names = parse_path(rel, self.setup.patterns, self.setup.zone, sn_officer=self._sn_officer(folder))
        sidecar, sidecar_note = self._sidecar(folder, path)
        checksum = self._vendor_checksum(folder, path, damage)
        want_md5 = checksum is not None and checksum[0] == "md5"
        staged = self._stage(path, protected=bool(sidecar and sidecar.protected), want_md5=want_md5)
        try:
            if staged is not None:
                digests, md5 = staged.digests, None
            else:
                digests, md5 = self._hash(path, want_md5=want_md5)
            if digests.size != identity.size or Identity.of(path.refresh()) != identity:
                # Written to while it was read: what was hashed is no version of the file.
                jobs.forget(self.sessions, job)
                return Outcome("waiting", shown, reason="changed while it was being read")
            path.hashed_size = digests.size  # the store reads exactly the bytes hashed
            if checksum is not None:
                algorithm, expected = checksum
                found = md5 if algorithm == "md5" else digests.sha256
                if found != expected:
                    damage.append(
                        f"damaged in transfer: the vendor {algorithm} sidecar says {expected}, "
                        f"the file has {found}"
                    )
            self._fault("hashed")

            # The same content at two workers or two stations at once is stored once: workers of
            # this process queue on a lock, other processes on the digest's reservation in the
            # catalog (renewed while this one works, ended by the recording's commit).
            with self._digest_lock(digests.sha256), self._content_reserved(digests.sha256, wait) as lease:
                if isinstance(lease, reservations.Holder):
                    return Outcome(
                        "waiting",
                        shown,
                        reason=f"{_station_named(lease.station)} is archiving "
                        "the same content; taken up again on the next pass",
                    )
                self._fault("content reserved")
                with self.sessions() as session:
                    twin = find_by_sha256(session, digests.sha256)
                if job.archive_no is None:
                    if twin is not None:
                        return self._duplicate(folder, path, shown, job, twin, now, names)
                    number = reserve_archive_number(
                        self.engine,
                        self.formats,
                        self.setup.zone,
                        unit=self.setup.unit,
                        station=self.setup.station,
                        now=now,
                    )
                    jobs.update(
                        self.sessions, job, now, state="reserved", archive_no=number, sha256=digests.sha256
                    )
                    self._fault("reserved")
                with self.sessions() as session:
                    recording = session.execute(
                        select(Recording).where(Recording.archive_no == job.archive_no)
                    ).scalar()
                if recording is None:
                    facts = self._facts(
                        path, st, shown, integrity.kind, info, names, sidecar, sidecar_note, damage, now
                    )
                    assert job.archive_no is not None, "drawn above, or by the run this one resumes"
                    if twin is not None and not stored_already(self.ctx.at(now), facts, job.archive_no):
                        # Resumed after its number was drawn, and another station archived the same
                        # content meanwhile: nothing of ours is stored, so this is a duplicate (the
                        # number stays a gap). Bytes already stored are recorded, never left behind.
                        return self._duplicate(folder, path, shown, job, twin, now, names)
                    try:
                        lease.check()
                        recording = store_original(
                            self.ctx.at(now),
                            path,
                            digests,
                            facts,
                            archive_no=job.archive_no,
                            after_put=lambda: self._fault("stored"),
                            claim=lease.confirm,
                            staged=staged,
                        )
                    except reservations.ReservationLost as exc:
                        log.error(
                            "content reservation lost",
                            extra={
                                "station": self.setup.station,
                                "path": shown,
                                "sha256": digests.sha256,
                                "archive_no": job.archive_no,
                                "reason": exc.message,
                            },
                        )
                        return Outcome("failed", shown, reason=exc.message)
                    log.info(
                        "archived",
                        extra={
                            "station": self.setup.station,
                            "path": shown,
                            "archive_no": recording.archive_no,
                            "size": digests.size,
                            "sha256": digests.sha256,
                            "damaged": bool(damage),
                        },
                    )
            jobs.update(self.sessions, job, now, state="stored")
            self._fault("committed")
            if sidecar is not None and sidecar.case:
                self._link_from_sidecar(recording, sidecar.case, now)
            finish = lambda: self._finish(folder.root, rel, shown, recording, info, job)
            left = None
            if self._later is not None:
                # A whole pass: originals first, derivatives on their own workers, so that a
                # queue of transcodes never holds up archiving. The job stays "stored" until
                # they are done; a crash resumes from there.
                self._later.append((shown, recording.archive_no, self._derivative_pool.submit(finish)))  # type: ignore[union-attr]  # set with _later
            else:
                left = finish()
            return Outcome(
                "archived",
                shown,
                archive_no=recording.archive_no,
                damaged=recording.damaged,
                size=digests.size,
                left=left,
            )
        finally:
            if staged is not None and self._staging is not None:
                # Stored under its key by now, or a duplicate, or a failure: the temporary
                # name goes either way (a killed process leaves it to ``clean_staged``).
                self._staging.discard(staged)

    def _finish(
        self,
        root: Path,
        rel: PurePosixPath,
        shown: str,
        recording: Recording,
        info: MediaInfo | None,
        job: IngestJob,
    ) -> str | None:
        """Derivatives, then the job is done, then the station copy. Returns why the station
        copy was left in place, when that is news (it is reported once).

        The file is opened again and used only if it is still the very file read (same
        device, inode, size and mtime): derivatives are never made from anything else.
        """
        with ExitStack() as stack:
            where: StationFolder | None = None
            source: StationFile | None = None
            problem = None
            try:
                where = stack.enter_context(StationFolder(root, rel.parts[:-1]))
            except FileNotFoundError:
                pass  # gone with its folder: no station copy to handle
            except OSError as exc:
                problem = _folder_problem(exc)
            if where is not None:
                try:
                    source = stack.enter_context(StationFile(where, rel.name))
                except (OSError, NotRegular):
                    pass  # gone, replaced or unreadable: the station copy step looks again
            if source is not None and astuple(source.identity)[:4] != (jobs.identity_of(job) or ())[:4]:
                # Another file, or written to, since it was read. (Only the ctime may differ: a
                # chmod after copying, common, says nothing about the content.)
                source = None
            self._derivatives(source, recording, info)
            self._fault("derived")
            # Done before the station copy is handled: a pass that finds the copy still there
            # (killed before the move, or a folder that refuses it) only moves it.
            jobs.update(self.sessions, job, self.clock(), state="done", last_error=None, next_try=None)
            if problem is not None:
                return self._left(job, shown, problem)
            return self._station_copy(where, rel.name, shown, job) if where is not None else None

    # --- steps ------------------------------------------------------------------------
    def _digest_lock(self, sha256: str) -> threading.Lock:
        with self._locks_guard:
            return self._digest_locks.setdefault(sha256, threading.Lock())

    # How long a content reservation lasts without renewal, and how long a pass that may
    # wait (a scan) waits for another station's before answering "waiting".
    content_lease: timedelta = reservations.LEASE
    content_wait_seconds: float = 30.0

    @contextmanager
    def _content_reserved(
        self, sha256: str, wait: bool
    ) -> Iterator[reservations.Lease | reservations.Holder]:
        """The digest's reservation kept alive while the block runs, or who holds it."""
        deadline = time.monotonic() + (self.content_wait_seconds if wait else 0.0)
        while True:
            got = reservations.reserve(
                self.sessions, sha256, station=self.setup.station, lease=self.content_lease
            )
            if isinstance(got, reservations.Reservation) or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if isinstance(got, reservations.Holder):
            yield got
            return
        with reservations.kept(self.sessions, got) as lease:
            yield lease

    def _stable(self, path: StationFile, wait: bool) -> os.stat_result | None:
        """The open file's stat once size and mtime held still for the window, else None."""
        st = path.stat
        window = self.setup.stable_seconds
        age = time.time() - st.st_mtime
        if age >= window:
            return st
        if not wait:
            return None
        time.sleep(window - age)
        again = path.refresh()
        if (again.st_size, again.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            return None
        return again

    def _probe(self, path: StationFile, kind: str | None, damage: list[str]) -> MediaInfo | None:
        try:
            # Through the descriptor (/proc/self/fd/N): the name only labels messages.
            name = Path(path.name)
            return photo_info(name, fd=path.fd) if kind == "photo" else probe(name, fd=path.fd)
        except ProbeFailed as exc:
            if not damage:
                damage.append(f"the media cannot be decoded: {exc.message}")
            return None

    def _sn_officer(self, folder: StationFolder) -> str | None:
        found = find_sn_txt_at(folder.fds)
        return read_sn_txt(Path(found[1]), dir_fd=found[0]) if found else None

    def _sidecar(self, folder: StationFolder, path: StationFile) -> tuple[EvidenceSidecar | None, str | None]:
        recording = folder.root.joinpath(*folder.parts, path.name)
        try:
            return read_evidence_sidecar(recording, dir_fd=folder.fd), None
        except EvidenceError as exc:
            log.warning("sidecar ignored", extra={"path": safe_display(str(recording)), "reason": str(exc)})
            return None, f"sidecar ignored: {exc}"

    def _vendor_checksum(
        self, folder: StationFolder, path: StationFile, damage: list[str]
    ) -> tuple[str, str] | None:
        try:
            return vendor_checksum(folder.root.joinpath(*folder.parts, path.name), dir_fd=folder.fd)
        except EvidenceError as exc:
            damage.append(f"vendor checksum sidecar unusable: {exc}")
            return None

    def _hash(self, path: StationFile, *, want_md5: bool) -> tuple[Digests, str | None]:
        hasher = Hasher(sm3=self.policy.sm3)
        md5 = hashlib.md5() if want_md5 else None
        buffer = bytearray(READ_SIZE)
        view = memoryview(buffer)
        with path.reader() as f:
            while n := f.readinto(buffer):
                hasher.update(view[:n])
                if md5 is not None:
                    md5.update(view[:n])
                if self.on_bytes is not None:
                    self.on_bytes(n)
        return hasher.digests(), md5.hexdigest() if md5 else None

    def _stage(self, path: StationFile, *, protected: bool, want_md5: bool) -> Staged | None:
        """The station copy written to the store's temporary file while it is hashed (read
        once, not once to hash and again to store), where the store can throw bytes away
        again: the local store, for an original stored as it is. Else None: the content is
        hashed first, and stored only once it is known not to be archived already."""
        if self._staging is None or want_md5 or self.policy.encrypts(protected):
            return None
        with path.reader() as f:
            return self._staging.stage(_Told(f, self.on_bytes), sm3=self.policy.sm3)

    def _facts(
        self,
        path: StationFile,
        st: os.stat_result,
        shown: str,
        kind: str | None,
        info: MediaInfo | None,
        names,
        sidecar: EvidenceSidecar | None,
        sidecar_note: str | None,
        damage: list[str],
        now: datetime,
    ) -> OriginalFacts:
        # Sources of the values kept (device, officer, start time, important), by their names.
        sources = {
            ("start_time" if k == "start" else k): v
            for k, v in names.sources.items()
            if k not in ("seq", "marker")
        }
        start, flags = names.start, cast(dict[str, Any], {})
        container_time = _container_time(info, self.setup.zone)
        if start is None and container_time is not None:
            start, sources["start_time"] = container_time, "container"
        elif start is None:
            start = datetime.fromtimestamp(st.st_mtime, UTC)
            sources["start_time"] = "file_time"
        else:
            sources.setdefault("start_time", "filename")
        tolerance = timedelta(seconds=self.setup.clock_tolerance_seconds)
        duration = info.duration_s if info else None
        if start + timedelta(seconds=duration or 0) > now + tolerance:
            flags["clock_suspect"] = "the recording ends after it was docked"
        elif (
            container_time and sources["start_time"] == "filename" and abs(container_time - start) > tolerance
        ):
            flags["clock_suspect"] = (
                f"file name and container times differ by {abs(container_time - start).total_seconds():.0f} s"
            )
        officer = names.officer
        if officer is None and names.device:
            officer = self._assigned_officer(names.device, start)
            if officer:
                sources["officer"] = "assignment"
        if names.notes:
            flags["name_notes"] = names.notes
        if sidecar_note:
            flags["sidecar"] = sidecar_note
        if sidecar is not None:
            flags.update({k: v for k, v in (sidecar.flags or {}).items() if v})
            if sidecar.note:
                flags["note"] = sidecar.note
        resolved_kind = kind or names.kind or "video"
        ext = path.suffix.lower().lstrip(".")
        return OriginalFacts(
            station=self.setup.station,
            unit=self.setup.unit,
            kind=resolved_kind,  # type: ignore[arg-type]  # one of the three kinds
            original_name=safe_display(path.name),
            content_type=CONTENT_TYPES.get(ext, "application/octet-stream"),
            start_time=start,
            duration_s=duration,
            device=names.device,
            officer=officer,
            important=names.important or bool(sidecar and sidecar.important),
            protected=bool(sidecar and sidecar.protected),
            damaged=bool(damage),
            damage_reason="; ".join(d for d in damage if d) or None,
            flags=flags,
            media_info=info.summary() if info else {},
            sources=sources,
        )

    def _assigned_officer(self, serial: str, at: datetime) -> str | None:
        with self.sessions() as session:
            return (
                session.execute(
                    select(Officer.number)
                    .join(DeviceAssignment, DeviceAssignment.officer_id == Officer.id)
                    .join(Device, Device.id == DeviceAssignment.device_id)
                    .where(
                        Device.serial == serial,
                        DeviceAssignment.valid_from <= at,
                        (DeviceAssignment.valid_to.is_(None)) | (DeviceAssignment.valid_to > at),
                    )
                    .order_by(DeviceAssignment.valid_from.desc())
                )
                .scalars()
                .first()
            )

    def _duplicate(
        self,
        folder: StationFolder,
        path: StationFile,
        shown: str,
        job: IngestJob,
        twin: Recording,
        now: datetime,
        names: NameFacts,
    ) -> Outcome:
        if jobs.seen_here(self.sessions, job, twin.sha256):
            # The file archived from this very path before, with only its ctime changed (a
            # chmod, a new hard link): nothing new to record.
            jobs.update(
                self.sessions, job, now, state="duplicate", sha256=twin.sha256, outcome=twin.archive_no
            )
            left = self._station_copy(folder, path.name, shown, job)
            return Outcome("skipped", shown, archive_no=twin.archive_no, left=left)
        with self.sessions.begin() as session:
            # The recording's row before the chain's head, as every writer that changes a
            # recording and appends an event takes them: the other order deadlocks with those.
            recording = session.execute(
                select(Recording).where(Recording.id == twin.id).with_for_update()
            ).scalar_one()
            custody.append(
                session,
                actor=self.actor,
                action=Action.SEEN_AGAIN,
                subject=twin.archive_no,
                details={"station": self.setup.station, "path": shown},
            )
            self._fill_from_name(session, recording, shown, names)
        jobs.update(self.sessions, job, now, state="duplicate", sha256=twin.sha256, outcome=twin.archive_no)
        left = self._station_copy(folder, path.name, shown, job)
        log.info(
            "seen again", extra={"station": self.setup.station, "path": shown, "archive_no": twin.archive_no}
        )
        return Outcome("duplicate", shown, archive_no=twin.archive_no, left=left)

    def _fill_from_name(self, session: Session, recording: Recording, shown: str, names: NameFacts) -> None:
        """What the archived recording (its row locked by the caller) lacks and this duplicate's
        recorder-style name says: filled in as a custody event (manifests are written once; a
        rebuild replays it)."""
        fill = metadata_fill.plan(
            has_device=recording.device_id is not None,
            has_officer=recording.officer_id is not None,
            sources=json.loads(recording.sources or "{}"),
            name_values={"device": names.device, "officer": names.officer, "start": names.start},
            name_sources=names.sources,
        )
        if not fill or recording.status == "purged":
            return
        details = {**fill, "from_name": shown, "station": self.setup.station, "source": metadata_fill.SOURCE}
        custody.append(
            session,
            actor=self.actor,
            action=Action.METADATA_FILLED,
            subject=recording.archive_no,
            details=details,
        )
        metadata_fill.apply(session, recording, details)
        log.info(
            "metadata filled from a duplicate's name", extra={"archive_no": recording.archive_no, **fill}
        )

    def _link_from_sidecar(self, recording: Recording, case: str, now: datetime) -> None:
        try:
            link_recordings(self.ctx.at(now), case, [recording.archive_no])
        except (NotFound, EvidenceError) as exc:
            log.warning(
                "sidecar case link not made",
                extra={"archive_no": recording.archive_no, "case": case, "reason": str(exc)},
            )
            with self.sessions.begin() as session:
                custody.append(
                    session,
                    actor=self.actor,
                    action=Action.LINK_FAILED,
                    subject=recording.archive_no,
                    details={"case": case, "reason": str(exc)},
                )

    def _derivatives(self, source: StationFile | None, recording: Recording, info: MediaInfo | None) -> None:
        if info is None:
            record_failure(
                self.ctx,
                recording,
                kind="proxy",
                error="the original cannot be decoded; no derivative can be made",
            )
            return
        if source is None:
            record_failure(
                self.ctx,
                recording,
                kind="proxy",
                error="the station copy changed or went away before derivatives were made from it",
            )
            return
        with tempfile.TemporaryDirectory(prefix="evidence-derived-") as work:
            # ffmpeg reads the very file held open (its /proc path), under the file's name.
            link = Path(work) / "source" / source.name
            link.parent.mkdir()
            link.symlink_to(source.proc_path())
            queue = self.setup.derivatives == "queue"
            made, failures = derivatives_for(
                link,
                info,
                Path(work),
                transcode_slots=self.transcodes,
                damaged=recording.damaged,
                transcode=not queue,
                timed=self.on_derivative,
            )
            if queue and needs_transcode(info, damaged=recording.damaged):
                with self.sessions.begin() as session:
                    derive_jobs.enqueue(session, recording.id, "proxy", self.clock())
            for derived in made:
                try:
                    store_derivative(
                        self.ctx,
                        recording,
                        kind=derived.kind,
                        path=derived.path,
                        ext=derived.ext,
                        content_type=derived.content_type,
                        method=derived.method,
                    )
                except (StoreError, StoreUnavailable, OSError) as exc:
                    failures.append((derived.kind, _reason(exc)))
            for kind, error in failures:
                log.warning(
                    "derivative failed",
                    extra={"archive_no": recording.archive_no, "kind": kind, "reason": error},
                )
                record_failure(self.ctx, recording, kind=kind, error=error)

    def _station_copy(self, where: StationFolder, name: str, shown: str, job: IngestJob) -> str | None:
        """Move or delete the station copy; only ever called once the original is committed
        (or was a duplicate). Returns why the copy was left in place, when that is news.

        Only the file that was read is touched: the folders are re-checked and the file's
        identity and ctime compared right before. A copy that changed since (it grew, it
        was rewritten) is left for the next pass, which archives it as a new recording.
        """
        mode = self.setup.after_archive
        if mode == "keep":
            return None
        try:
            where.recheck()
            current = Identity.of(where.lstat(name))
        except FileNotFoundError:
            return None  # moved or deleted already
        except FolderChanged as exc:
            return self._left(job, shown, exc.message)
        if astuple(current) != jobs.identity_of(job):
            log.info(
                "station copy changed after it was read; left for the next pass",
                extra={"station": self.setup.station, "path": shown},
            )
            return None
        try:
            companions = [p.name for p in companions_of(Path(name), dir_fd=where.fd)]
            if mode == "delete":
                for item in [name, *companions]:
                    os.unlink(item, dir_fd=where.fd)
                if job.copy_error is not None:
                    jobs.update(self.sessions, job, self.clock(), copy_error=None)
            else:
                with where.folder((self.setup.archived_folder, *where.parts), create=True) as into:
                    moved = move_into(where, name, into)
                    for item in companions:
                        move_into(where, item, into)
                    after = into.lstat(moved)
                # A move changes the ctime: pruning compares the copy with what it is now.
                jobs.update(
                    self.sessions,
                    job,
                    self.clock(),
                    copy_error=None,
                    moved_to=safe_display(str(PurePosixPath(*where.parts, moved))),
                    moved_ctime_ns=after.st_ctime_ns,
                )
        except OSError as exc:
            action = "deleted" if mode == "delete" else "moved"
            return self._left(
                job, shown, f"archived, but the station copy cannot be {action}: {_reason(exc)}"
            )
        self._fault("moved")
        return None

    def _left(self, job: IngestJob, shown: str, reason: str) -> str | None:
        """A station copy that stays where it is: reported the first time only, so that
        a read-only folder is one report, not one per pass."""
        if job.copy_error is not None:
            log.debug(
                "station copy still left in place",
                extra={"station": self.setup.station, "path": shown, "reason": reason},
            )
            return None
        jobs.update(self.sessions, job, self.clock(), copy_error=reason)
        log.warning(
            "station copy left in place",
            extra={"station": self.setup.station, "path": shown, "reason": reason},
        )
        return reason

    def _quarantine(
        self, where: StationFolder, name: str, shown: str, reason: str, expected: Identity
    ) -> Outcome:
        where.recheck()
        try:
            if Identity.of(where.lstat(name)) != expected:
                return Outcome(
                    "failed",
                    shown,
                    reason="changed before it could be quarantined; looked at again next pass",
                )
            with where.folder((self.setup.quarantine_folder, *where.parts), create=True) as into:
                moved = move_into(where, name, into)
                # O_NOFOLLOW: a link planted under the note's name is not written through.
                fd = os.open(
                    fit_name(moved, ".reason.txt"),
                    os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o644,
                    dir_fd=into.fd,
                )
                with open(fd, "w", encoding="utf-8") as note:
                    note.write(f"{self.clock().isoformat()} {reason}\n")
        except FileNotFoundError:
            return Outcome("failed", shown, reason="vanished before it could be quarantined")
        log.warning("quarantined", extra={"station": self.setup.station, "path": shown, "reason": reason})
        return Outcome("quarantined", shown, reason=reason)

    def _failed(
        self, outcome: Outcome, where: StationFolder | None = None, name: str | None = None
    ) -> Outcome:
        if outcome.kind == "failed":
            log.warning(
                "ingest failed, left in place for a retry",
                extra={"station": self.setup.station, "path": outcome.path, "reason": outcome.reason},
            )
            if where is not None and name is not None:
                self._note_failure(outcome.path, where, name, outcome.reason or "")
        return outcome

    def _note_failure(self, shown: str, where: StationFolder, name: str, reason: str) -> None:
        try:
            st = where.lstat(name)
            now = self.clock()
            job = jobs.job_for(self.sessions, self.setup.station, shown, astuple(Identity.of(st)), now)
            attempts = (job.attempts or 0) + 1
            jobs.update(
                self.sessions,
                job,
                now,
                attempts=attempts,
                last_error=reason,
                next_try=now + jobs.backoff(attempts, self.setup.retry_seconds),
                state=job.state if job.state != "new" else "failed",
            )
        except (OSError, SQLAlchemyError):
            pass  # the catalog itself may be what failed; the file stays for the next pass

    def prune_archived(self, folders: list[Path]) -> int:
        """Delete station copies moved aside more than ``archived_keep_days`` ago.

        A copy is deleted only while it is the very file moved there (its identity and
        ctime as recorded right after the move) or, if that changed or was never recorded,
        while its content is an archived recording's (only then is it read). Anything else
        in the folder is left alone. The folder is walked and files deleted through
        descriptors, re-checked right before, so nothing outside it is ever deleted.
        """
        cutoff = self.clock() - timedelta(days=self.setup.archived_keep_days)
        removed = 0
        for folder in folders:
            with ExitStack() as stack:
                try:
                    station = stack.enter_context(StationFolder(folder))
                    archived = stack.enter_context(station.folder((self.setup.archived_folder,)))
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    log.warning(
                        "archived folder not pruned",
                        extra={
                            "station": self.setup.station,
                            "folder": safe_display(str(folder)),
                            "reason": _folder_problem(exc),
                        },
                    )
                    continue
                for dirpath, _dirs, names, dir_fd in os.fwalk(".", dir_fd=archived.fd, follow_symlinks=False):
                    parts = PurePosixPath(dirpath).parts
                    for name in sorted(names):
                        if not is_companion(name) and self._prune_one(station, parts, name, dir_fd, cutoff):
                            removed += 1
        if removed:
            log.info(
                "pruned archived station copies", extra={"station": self.setup.station, "files": removed}
            )
        return removed

    def _prune_one(
        self, station: StationFolder, parts: tuple[str, ...], name: str, dir_fd: int, cutoff: datetime
    ) -> bool:
        shown = safe_display(str(PurePosixPath(*parts, name)))
        job = jobs.archived_copy(self.sessions, self.setup.station, shown, cutoff)
        if job is None:
            return False
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                return False
            if astuple(Identity.of(st)) != jobs.moved_identity(job) and not self._content_archived(
                dir_fd, name, st
            ):
                return False
            with station.folder((self.setup.archived_folder, *parts)) as here:
                # Right before deleting: the folder walked is still that one, the file unchanged.
                here.recheck()
                held, now_there = os.fstat(dir_fd), os.fstat(here.fd)
                if (held.st_dev, held.st_ino) != (now_there.st_dev, now_there.st_ino) or Identity.of(
                    os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                ) != Identity.of(st):
                    return False
                for item in [name, *(p.name for p in companions_of(Path(name), dir_fd=dir_fd))]:
                    os.unlink(item, dir_fd=dir_fd)
        except (FileNotFoundError, FolderChanged):
            return False
        return True

    def _content_archived(self, dir_fd: int, name: str, st: os.stat_result) -> bool:
        """Whether the file holds an archived recording's content (read once, through a
        descriptor, and only if it is still the file stat'ed)."""
        try:
            fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
        except OSError:
            return False
        try:
            if Identity.of(os.fstat(fd)) != Identity.of(st):
                return False
            sha256 = hashlib.sha256()
            buffer = bytearray(READ_SIZE)
            view = memoryview(buffer)
            with FdReader(fd) as f:
                while n := f.readinto(buffer):
                    sha256.update(view[:n])
        finally:
            os.close(fd)
        with self.sessions() as session:
            return find_by_sha256(session, sha256.hexdigest()) is not None

    # --- a whole pass -------------------------------------------------------------------
    def scan(
        self, folders: list[Path], *, progress: Callable[[Outcome], None] | None = None, wait: bool = True
    ) -> ScanReport:
        self.check_folders(folders)
        report = ScanReport()
        work = [(folder, path) for folder in folders for path in self.candidates(folder)]
        workers = max(1, self.setup.workers)
        with (
            ThreadPoolExecutor(max_workers=workers) as originals,
            ThreadPoolExecutor(max_workers=workers) as derived,
        ):
            self._later, self._derivative_pool = [], derived
            try:
                for outcome in originals.map(lambda fp: self.process(*fp, wait=wait), work):
                    report.add(outcome)
                    if progress is not None:
                        progress(outcome)
                for shown, number, future in self._later:
                    try:
                        left = future.result()
                    except Exception as exc:  # noqa: BLE001 - the job stays "stored" for a retry
                        log.warning(
                            "derivatives or station copy failed; retried next pass",
                            extra={"station": self.setup.station, "reason": _reason(exc)},
                        )
                    else:
                        if left is not None:
                            report.add_left(shown, number, left)
            finally:
                self._later, self._derivative_pool = None, None
        if self.setup.after_archive == "move":
            self.prune_archived(folders)
        return report


class _Told:
    """A reader that tells ``told`` how many bytes each read gave (a scan's progress)."""

    def __init__(self, f: Any, told: Callable[[int], None] | None) -> None:
        self._f, self._told = f, told

    def readinto(self, buffer: Any) -> int:
        n = self._f.readinto(buffer) or 0
        if n and self._told is not None:
            self._told(n)
        return n

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._f.read(size)
        if data and self._told is not None:
            self._told(len(data))
        return data


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"the disk is full: {exc}"
    if isinstance(exc, SQLAlchemyError):
        return f"the catalog database failed: {getattr(exc, 'orig', exc)}"
    return str(exc) or type(exc).__name__


def _station_named(station: str) -> str:
    return f"station {station}" if station else "another station"


def _folder_problem(exc: OSError) -> str:
    return (
        f"a folder on its way is not a folder reached without links "
        f"({os.strerror(exc.errno or 0)}); nothing there is touched"
    )


def _container_time(info: MediaInfo | None, zone: ZoneInfo) -> datetime | None:
    if info is None:
        return None
    if info.creation_time is not None:
        return info.creation_time
    local = getattr(info, "creation_time_local", None)
    return local.replace(tzinfo=zone) if local is not None else None
