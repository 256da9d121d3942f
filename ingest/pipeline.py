"""The ingest pipeline: one station file from the dock folder to the archive.

For each file (docs/ARCHITECTURE.md, "How one recording flows"):

1. readiness: a regular file whose size and mtime have been stable for the window;
   symlinks are never followed (quarantined), special files are left and retried;
2. the container check: empty or not media → quarantine; truncated → archived, flagged damaged;
3. metadata from the name, folders, ``sn.txt``, sidecars and ffprobe, each with its source;
4. the local digests (SHA-256, SM3 when enabled, MD5 for a vendor checksum); a digest
   already archived is a duplicate: a custody event "seen again", no second copy;
5. the archive number, reserved and committed at once (kept in the job row);
6. the original stored with proof of receipt, its manifest, and one catalog transaction
   (``archive.originals.store_original``);
7. derivatives (a failure is recorded for a retry and never blocks the original);
8. the station copy moved, deleted or kept as the settings say, with its companion files.

The job row in the catalog carries the state, so a process killed anywhere resumes:
the same archive number is used again, an object already stored is adopted, and the
station copy is handled only once the original is committed.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from re import Pattern
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from archive.context import ServiceContext
from archive.derivatives import record_failure, store_derivative
from archive.digest import Digests, Hasher
from archive.errors import ContentChanged, StoreError, StoreUnavailable
from archive.links import link_recordings
from archive.originals import OriginalFacts, store_original, stored_already
from catalog import custody, jobs, reservations
from catalog.actions import Action
from catalog.errors import EvidenceError, NotFound
from catalog.models import Device, DeviceAssignment, IngestJob, Officer, Recording
from catalog.recordings import find_by_sha256, reserve_archive_number

from .container import check_file
from .derivatives import derivatives_for
from .names import (
    companions_of,
    find_sn_txt,
    is_companion,
    parse_path,
    read_sn_txt,
    safe_display,
)
from .probe import MediaInfo, ProbeFailed, photo_info, probe
from .sidecars import EvidenceSidecar, read_evidence_sidecar, vendor_checksum

log = logging.getLogger("evidence.ingest")

READ_SIZE = 4 << 20
CONTENT_TYPES = {"mp4": "video/mp4", "m4v": "video/mp4", "mov": "video/quicktime",
                 "avi": "video/x-msvideo", "mkv": "video/x-matroska", "ts": "video/mp2t",
                 "3gp": "video/3gpp", "wav": "audio/wav", "mp3": "audio/mpeg", "aac": "audio/aac",
                 "m4a": "audio/mp4", "amr": "audio/amr", "jpg": "image/jpeg", "jpeg": "image/jpeg",
                 "png": "image/png"}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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


@dataclass
class ScanReport:
    """What one pass did; ``to_json`` is the command line's contract."""

    archived: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    quarantined: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            if outcome.kind == "archived":
                self.archived.append(outcome.archive_no)  # type: ignore[arg-type]
                if outcome.damaged:
                    self.damaged.append(outcome.archive_no)  # type: ignore[arg-type]
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
        return not (self.quarantined or self.failed)

    def to_json(self) -> dict[str, Any]:
        return {"archived": self.archived, "damaged": self.damaged, "duplicates": self.duplicates,
                "quarantined": self.quarantined, "failed": self.failed, "waiting": self.waiting}


@dataclass(frozen=True)
class Outcome:
    kind: Literal["archived", "duplicate", "quarantined", "failed", "waiting", "skipped"]
    path: str
    archive_no: str | None = None
    reason: str | None = None
    damaged: bool = False
    size: int = 0


class Pipeline:
    """Archives the files of one station's folders; safe to run in several threads."""

    def __init__(self, ctx: ServiceContext, setup: StationSetup, *,
                 fault_hook: Callable[[str], None] | None = None) -> None:
        self.ctx, self.setup = ctx, setup
        # Short names for what every step uses.
        self.engine, self.sessions, self.store = ctx.engine, ctx.sessions, ctx.store
        self.formats, self.policy, self.actor, self.clock = ctx.formats, ctx.policy, ctx.actor, ctx.clock
        self.transcodes = threading.BoundedSemaphore(max(1, setup.transcode_workers))
        self._fault = fault_hook or (lambda _step: None)
        self._locks_guard = threading.Lock()
        self._later: list[Future[None]] | None = None  # set during a scan: deferred derivatives
        self._derivative_pool: ThreadPoolExecutor | None = None
        self._digest_locks: dict[str, threading.Lock] = {}

    # --- finding files --------------------------------------------------------------
    def own_folder(self, name: str) -> bool:
        return name in (self.setup.archived_folder, self.setup.quarantine_folder)

    def candidates(self, folder: Path) -> Iterator[Path]:
        """Every file that may be a recording, in a stable order; never follows links."""
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            here = Path(dirpath)
            # Our own folders are never scanned; linked folders are reported, not entered.
            keep = []
            for name in sorted(dirnames):
                if here == folder and self.own_folder(name):
                    continue
                if (here / name).is_symlink():
                    filenames.append(name)
                else:
                    keep.append(name)
            dirnames[:] = keep
            for name in sorted(filenames):
                if not is_companion(name):
                    yield here / name

    # --- one file ---------------------------------------------------------------------
    def process(self, folder: Path, path: Path, *, wait: bool = True,
                respect_backoff: bool = False) -> Outcome:
        """Archive one file. ``wait``: sleep out the stability window instead of
        answering "waiting"; ``respect_backoff``: a file that failed recently waits for
        its retry time (the daemon), instead of being tried at once (a manual scan)."""
        rel = PurePosixPath(path.relative_to(folder).as_posix())
        shown = safe_display(str(rel))
        try:
            outcome = self._process(folder, path, rel, shown, wait, respect_backoff)
        except (StoreUnavailable, SQLAlchemyError, OSError, ContentChanged, StoreError) as exc:
            outcome = Outcome("failed", shown, reason=_reason(exc))
        if outcome.kind == "failed":
            log.warning("ingest failed, left in place for a retry",
                        extra={"station": self.setup.station, "path": shown, "reason": outcome.reason})
            self._note_failure(shown, path, outcome.reason or "")
        return outcome

    def _process(self, folder: Path, path: Path, rel: PurePosixPath, shown: str,
                 wait: bool, respect_backoff: bool) -> Outcome:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return Outcome("failed", shown, reason="vanished before it could be read")
        if stat.S_ISLNK(st.st_mode):
            return self._quarantine(folder, path, shown, "a symbolic link (links are never followed)")
        if not stat.S_ISREG(st.st_mode):
            return Outcome("failed", shown, reason="not a regular file (a pipe, socket or device); "
                                                   "left in place")
        st = self._stable(path, st, wait)
        if st is None:
            return Outcome("waiting", shown, reason="still being written")
        now = self.clock()
        job = jobs.job_for(self.sessions, self.setup.station, shown, st.st_size, st.st_mtime_ns, now)
        if job.state == "done":
            self._station_copy(folder, path)
            return Outcome("skipped", shown, archive_no=job.archive_no)
        if job.state == "duplicate":
            self._station_copy(folder, path)
            return Outcome("duplicate", shown, archive_no=job.outcome)
        if respect_backoff and job.next_try is not None and job.next_try > now:
            return Outcome("waiting", shown, reason=f"retrying after {job.next_try.isoformat()}")

        integrity = check_file(path)
        if integrity.status in ("empty", "not_media"):
            reason = "an empty file" if integrity.status == "empty" else f"not a recording: {integrity.reason}"
            jobs.update(self.sessions, job, now, state="quarantined", outcome=reason)
            return self._quarantine(folder, path, shown, reason)
        damage = [integrity.reason] if integrity.status == "damaged" else []

        info = self._probe(path, integrity.kind, damage)
        names = parse_path(rel, self.setup.patterns, self.setup.zone,
                           sn_officer=self._sn_officer(folder, path))
        sidecar, sidecar_note = self._sidecar(path)
        checksum = self._vendor_checksum(path, damage)
        digests, md5 = self._hash(path, want_md5=checksum is not None and checksum[0] == "md5")
        if checksum is not None:
            algorithm, expected = checksum
            found = md5 if algorithm == "md5" else digests.sha256
            if found != expected:
                damage.append(f"damaged in transfer: the vendor {algorithm} sidecar says {expected}, "
                              f"the file has {found}")
        self._fault("hashed")

        # The same content at two workers or two stations at once is stored once: workers of
        # this process queue on a lock, other processes on the digest's reservation in the
        # catalog (renewed while this one works, ended by the recording's commit).
        with self._digest_lock(digests.sha256), self._content_reserved(digests.sha256, wait) as lease:
            if isinstance(lease, reservations.Holder):
                return Outcome("waiting", shown, reason=f"{_station_named(lease.station)} is archiving "
                                                        "the same content; taken up again on the next pass")
            self._fault("content reserved")
            with self.sessions() as session:
                twin = find_by_sha256(session, digests.sha256)
            if job.archive_no is None:
                if twin is not None:
                    return self._duplicate(folder, path, shown, job, twin, now)
                number = reserve_archive_number(self.engine, self.formats, self.setup.zone,
                                                unit=self.setup.unit, station=self.setup.station, now=now)
                jobs.update(self.sessions, job, now, state="reserved", archive_no=number,
                            sha256=digests.sha256)
                self._fault("reserved")
            with self.sessions() as session:
                recording = session.execute(select(Recording).where(
                    Recording.archive_no == job.archive_no)).scalar()
            if recording is None:
                facts = self._facts(path, st, shown, integrity.kind, info, names, sidecar, sidecar_note,
                                    damage, now)
                if twin is not None and not stored_already(self.ctx.at(now), facts, job.archive_no):
                    # Resumed after its number was drawn, and another station archived the same
                    # content meanwhile: nothing of ours is stored, so this is a duplicate (the
                    # number stays a gap). Bytes already stored are recorded, never left behind.
                    return self._duplicate(folder, path, shown, job, twin, now)
                try:
                    lease.check()
                    recording = store_original(
                        self.ctx.at(now), path, digests, facts,
                        archive_no=job.archive_no,  # type: ignore[arg-type]
                        after_put=lambda: self._fault("stored"), claim=lease.confirm)
                except reservations.ReservationLost as exc:
                    log.error("content reservation lost", extra={
                        "station": self.setup.station, "path": shown, "sha256": digests.sha256,
                        "archive_no": job.archive_no, "reason": exc.message})
                    return Outcome("failed", shown, reason=exc.message)
                log.info("archived", extra={"station": self.setup.station, "path": shown,
                                            "archive_no": recording.archive_no, "size": digests.size,
                                            "sha256": digests.sha256, "damaged": bool(damage)})
        jobs.update(self.sessions, job, now, state="stored")
        self._fault("committed")
        if sidecar is not None and sidecar.case:
            self._link_from_sidecar(recording, sidecar.case, now)
        finish = lambda: self._finish(folder, path, recording, info, job)  # noqa: E731
        if self._later is not None:
            # A whole pass: originals first, derivatives on their own workers, so that a
            # queue of transcodes never holds up archiving. The job stays "stored" until
            # they are done and the station copy is handled; a crash resumes from there.
            self._later.append(self._derivative_pool.submit(finish))  # type: ignore[union-attr]
        else:
            finish()
        return Outcome("archived", shown, archive_no=recording.archive_no, damaged=recording.damaged,
                       size=digests.size)

    def _finish(self, folder: Path, path: Path, recording: Recording, info: MediaInfo | None,
                job: IngestJob) -> None:
        """Derivatives, then the station copy, then the job is done."""
        self._derivatives(path, recording, info)
        self._fault("derived")
        self._station_copy(folder, path)
        jobs.update(self.sessions, job, self.clock(), state="done", last_error=None, next_try=None)

    # --- steps ------------------------------------------------------------------------
    def _digest_lock(self, sha256: str) -> threading.Lock:
        with self._locks_guard:
            return self._digest_locks.setdefault(sha256, threading.Lock())

    # How long a content reservation lasts without renewal, and how long a pass that may
    # wait (a scan) waits for another station's before answering "waiting".
    content_lease: timedelta = reservations.LEASE
    content_wait_seconds: float = 30.0

    @contextmanager
    def _content_reserved(self, sha256: str,
                          wait: bool) -> Iterator[reservations.Lease | reservations.Holder]:
        """The digest's reservation kept alive while the block runs, or who holds it."""
        deadline = time.monotonic() + (self.content_wait_seconds if wait else 0.0)
        while True:
            got = reservations.reserve(self.sessions, sha256, station=self.setup.station,
                                       lease=self.content_lease)
            if isinstance(got, reservations.Reservation) or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if isinstance(got, reservations.Holder):
            yield got
            return
        with reservations.kept(self.sessions, got) as lease:
            yield lease

    def _stable(self, path: Path, st: os.stat_result, wait: bool) -> os.stat_result | None:
        """The file's stat once size and mtime held still for the window, else None."""
        window = self.setup.stable_seconds
        age = time.time() - st.st_mtime
        if age >= window:
            return st
        if not wait:
            return None
        time.sleep(window - age)
        again = os.stat(path)
        if (again.st_size, again.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            return None
        return again

    def _probe(self, path: Path, kind: str | None, damage: list[str]) -> MediaInfo | None:
        try:
            return photo_info(path) if kind == "photo" else probe(path)
        except ProbeFailed as exc:
            if not damage:
                damage.append(f"the media cannot be decoded: {exc.message}")
            return None

    def _sn_officer(self, folder: Path, path: Path) -> str | None:
        found = find_sn_txt(path, folder)
        return read_sn_txt(found) if found else None

    def _sidecar(self, path: Path) -> tuple[EvidenceSidecar | None, str | None]:
        try:
            return read_evidence_sidecar(path), None
        except EvidenceError as exc:
            log.warning("sidecar ignored", extra={"path": safe_display(str(path)), "reason": str(exc)})
            return None, f"sidecar ignored: {exc}"

    def _vendor_checksum(self, path: Path, damage: list[str]) -> tuple[str, str] | None:
        try:
            return vendor_checksum(path)
        except EvidenceError as exc:
            damage.append(f"vendor checksum sidecar unusable: {exc}")
            return None

    def _hash(self, path: Path, *, want_md5: bool) -> tuple[Digests, str | None]:
        hasher = Hasher(sm3=self.policy.sm3)
        md5 = hashlib.md5() if want_md5 else None
        buffer = bytearray(READ_SIZE)
        view = memoryview(buffer)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                hasher.update(view[:n])
                if md5 is not None:
                    md5.update(view[:n])
        return hasher.digests(), md5.hexdigest() if md5 else None

    def _facts(self, path: Path, st: os.stat_result, shown: str, kind: str | None,
               info: MediaInfo | None, names, sidecar: EvidenceSidecar | None,
               sidecar_note: str | None, damage: list[str], now: datetime) -> OriginalFacts:
        # Sources of the values kept (device, officer, start time, important), by their names.
        sources = {("start_time" if k == "start" else k): v for k, v in names.sources.items()
                   if k not in ("seq", "marker")}
        start, flags = names.start, {}
        container_time = _container_time(info, self.setup.zone)
        if start is None and container_time is not None:
            start, sources["start_time"] = container_time, "container"
        elif start is None:
            start = datetime.fromtimestamp(st.st_mtime, timezone.utc)
            sources["start_time"] = "file_time"
        else:
            sources.setdefault("start_time", "filename")
        tolerance = timedelta(seconds=self.setup.clock_tolerance_seconds)
        duration = info.duration_s if info else None
        if start + timedelta(seconds=duration or 0) > now + tolerance:
            flags["clock_suspect"] = "the recording ends after it was docked"
        elif container_time and sources["start_time"] == "filename" and \
                abs(container_time - start) > tolerance:
            flags["clock_suspect"] = (f"file name and container times differ by "
                                      f"{abs(container_time - start).total_seconds():.0f} s")
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
            station=self.setup.station, unit=self.setup.unit, kind=resolved_kind,  # type: ignore[arg-type]
            original_name=safe_display(path.name), content_type=CONTENT_TYPES.get(ext, "application/octet-stream"),
            start_time=start, duration_s=duration, device=names.device, officer=officer,
            important=names.important or bool(sidecar and sidecar.important),
            protected=bool(sidecar and sidecar.protected), damaged=bool(damage),
            damage_reason="; ".join(d for d in damage if d) or None, flags=flags,
            media_info=info.summary() if info else {}, sources=sources)

    def _assigned_officer(self, serial: str, at: datetime) -> str | None:
        with self.sessions() as session:
            return session.execute(
                select(Officer.number).join(DeviceAssignment, DeviceAssignment.officer_id == Officer.id)
                .join(Device, Device.id == DeviceAssignment.device_id)
                .where(Device.serial == serial, DeviceAssignment.valid_from <= at,
                       (DeviceAssignment.valid_to.is_(None)) | (DeviceAssignment.valid_to > at))
                .order_by(DeviceAssignment.valid_from.desc())).scalars().first()

    def _duplicate(self, folder: Path, path: Path, shown: str, job: IngestJob, twin: Recording,
                   now: datetime) -> Outcome:
        with self.sessions.begin() as session:
            custody.append(session, actor=self.actor, action=Action.SEEN_AGAIN, subject=twin.archive_no, details={"station": self.setup.station, "path": shown})
        jobs.update(self.sessions, job, now, state="duplicate", sha256=twin.sha256,
                    outcome=twin.archive_no)
        self._station_copy(folder, path)
        log.info("seen again", extra={"station": self.setup.station, "path": shown,
                                      "archive_no": twin.archive_no})
        return Outcome("duplicate", shown, archive_no=twin.archive_no)

    def _link_from_sidecar(self, recording: Recording, case: str, now: datetime) -> None:
        try:
            link_recordings(self.ctx.at(now), case, [recording.archive_no])
        except (NotFound, EvidenceError) as exc:
            log.warning("sidecar case link not made", extra={
                "archive_no": recording.archive_no, "case": case, "reason": str(exc)})
            with self.sessions.begin() as session:
                custody.append(session, actor=self.actor, action=Action.LINK_FAILED,
                               subject=recording.archive_no,
                               details={"case": case, "reason": str(exc)})

    def _derivatives(self, path: Path, recording: Recording, info: MediaInfo | None) -> None:
        if info is None:
            record_failure(self.ctx, recording, kind="proxy",
                           error="the original cannot be decoded; no derivative can be made")
            return
        with tempfile.TemporaryDirectory(prefix="evidence-derived-") as work:
            made, failures = derivatives_for(path, info, Path(work), transcode_slots=self.transcodes)
            for derived in made:
                try:
                    store_derivative(self.ctx, recording, kind=derived.kind, path=derived.path,
                                     ext=derived.ext, content_type=derived.content_type,
                                     method=derived.method)
                except (StoreError, StoreUnavailable, OSError) as exc:
                    failures.append((derived.kind, _reason(exc)))
            for kind, error in failures:
                log.warning("derivative failed", extra={"archive_no": recording.archive_no,
                                                         "kind": kind, "reason": error})
                record_failure(self.ctx, recording, kind=kind, error=error)

    def _station_copy(self, folder: Path, path: Path) -> None:
        """Only ever called once the original is committed (or was a duplicate)."""
        if not os.path.lexists(path):
            return
        mode = self.setup.after_archive
        if mode == "keep":
            return
        for item in [path, *companions_of(path)]:
            if mode == "delete":
                item.unlink()
            else:
                _move_into(folder, item, folder / self.setup.archived_folder)
        self._fault("moved")

    def _quarantine(self, folder: Path, path: Path, shown: str, reason: str) -> Outcome:
        target = _move_into(folder, path, folder / self.setup.quarantine_folder)
        note = target.with_name(target.name + ".reason.txt")
        note.write_text(f"{self.clock().isoformat()} {reason}\n", encoding="utf-8")
        log.warning("quarantined", extra={"station": self.setup.station, "path": shown, "reason": reason})
        return Outcome("quarantined", shown, reason=reason)

    def _note_failure(self, shown: str, path: Path, reason: str) -> None:
        try:
            st = os.lstat(path)
            now = self.clock()
            job = jobs.job_for(self.sessions, self.setup.station, shown, st.st_size, st.st_mtime_ns, now)
            attempts = (job.attempts or 0) + 1
            jobs.update(self.sessions, job, now, attempts=attempts, last_error=reason,
                        next_try=now + jobs.backoff(attempts, self.setup.retry_seconds),
                        state=job.state if job.state != "new" else "failed")
        except (OSError, SQLAlchemyError):
            pass  # the catalog itself may be what failed; the file stays for the next pass

    def prune_archived(self, folders: list[Path]) -> int:
        """Delete station copies moved aside more than ``archived_keep_days`` ago.

        Only files whose job the catalog records as finished (archived or a duplicate)
        that long ago are deleted; anything else in the folder is left alone.
        """
        cutoff = self.clock() - timedelta(days=self.setup.archived_keep_days)
        removed = 0
        for folder in folders:
            root = folder / self.setup.archived_folder
            if not root.is_dir():
                continue
            for dirpath, _dirs, names in os.walk(root):
                for name in names:
                    path = Path(dirpath) / name
                    if is_companion(name):
                        continue
                    shown = safe_display(str(path.relative_to(root)))
                    with self.sessions() as session:
                        finished = session.execute(select(IngestJob).where(
                            IngestJob.station_id == self.setup.station, IngestJob.path == shown,
                            IngestJob.state.in_(["done", "duplicate"]),
                            IngestJob.updated_at < cutoff)).scalars().first()
                    if finished is None:
                        continue
                    for item in [path, *companions_of(path)]:
                        item.unlink(missing_ok=True)
                    removed += 1
        if removed:
            log.info("pruned archived station copies", extra={"station": self.setup.station,
                                                               "files": removed})
        return removed

    # --- a whole pass -------------------------------------------------------------------
    def scan(self, folders: list[Path], *, progress: Callable[[Outcome], None] | None = None,
             wait: bool = True) -> ScanReport:
        report = ScanReport()
        work = [(folder, path) for folder in folders for path in self.candidates(folder)]
        workers = max(1, self.setup.workers)
        with ThreadPoolExecutor(max_workers=workers) as originals, \
                ThreadPoolExecutor(max_workers=workers) as derived:
            self._later, self._derivative_pool = [], derived
            try:
                for outcome in originals.map(lambda fp: self.process(*fp, wait=wait), work):
                    report.add(outcome)
                    if progress is not None:
                        progress(outcome)
                for future in self._later:
                    try:
                        future.result()
                    except Exception as exc:  # noqa: BLE001 - the job stays "stored" for a retry
                        log.warning("derivatives or station copy failed; retried next pass",
                                    extra={"station": self.setup.station, "reason": _reason(exc)})
            finally:
                self._later, self._derivative_pool = None, None
        if self.setup.after_archive == "move":
            self.prune_archived(folders)
        return report


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"the disk is full: {exc}"
    if isinstance(exc, SQLAlchemyError):
        return f"the catalog database failed: {getattr(exc, 'orig', exc)}"
    return str(exc) or type(exc).__name__


def _station_named(station: str) -> str:
    return f"station {station}" if station else "another station"


def _container_time(info: MediaInfo | None, zone: ZoneInfo) -> datetime | None:
    if info is None:
        return None
    if info.creation_time is not None:
        return info.creation_time
    local = getattr(info, "creation_time_local", None)
    return local.replace(tzinfo=zone) if local is not None else None


def _move_into(folder: Path, path: Path, target_root: Path) -> Path:
    """Move ``path`` to the same relative place under ``target_root``; never overwrites."""
    target = target_root / path.relative_to(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(target):
        stem = target.name
        n = 1
        while os.path.lexists(target := target.with_name(f"{stem}.{n}")):
            n += 1
    os.rename(path, target)  # same file system: atomic; a link is moved, not followed
    return target

