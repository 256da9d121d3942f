"""Ingest jobs: one row per station file, carrying its state through the pipeline.

States: ``new`` → ``reserved`` (archive number drawn) → ``stored`` (original and
catalog row committed) → ``done`` (derivatives tried, station copy handled).
Side exits: ``duplicate``, ``quarantined``, ``failed`` (retried after
``next_try``). A process killed anywhere resumes from the row.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .errors import NotFound
from .models import IngestJob

MAX_BACKOFF = timedelta(hours=1)
FINISHED = ("done", "duplicate")

Identity = tuple[int, int, int, int, int]
"""``(st_dev, st_ino, size, mtime_ns, ctime_ns)`` of a station file."""


def _db(value: int) -> int:
    """An unsigned 64-bit device or inode number as a signed BIGINT (same bits)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _os(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def job_for(
    sessions: sessionmaker[Session], station: str, path: str, identity: Identity, now: datetime
) -> IngestJob:
    """The job of this very file version (same path, device, inode, size, mtime and ctime),
    created if new. A file rewritten in place gets a job of its own even with the name,
    size and mtime of one already archived: its ctime differs."""
    dev, ino, size, mtime_ns, ctime_ns = identity

    def find(session: Session) -> IngestJob | None:
        return session.execute(
            select(IngestJob).where(
                IngestJob.station_id == station,
                IngestJob.path == path,
                IngestJob.size == size,
                IngestJob.mtime_ns == mtime_ns,
                IngestJob.dev == _db(dev),
                IngestJob.ino == _db(ino),
                IngestJob.ctime_ns == ctime_ns,
            )
        ).scalar()

    with sessions.begin() as session:
        job = find(session)
        if job is not None:
            return job
        job = IngestJob(
            station_id=station,
            path=path,
            size=size,
            mtime_ns=mtime_ns,
            dev=_db(dev),
            ino=_db(ino),
            ctime_ns=ctime_ns,
            state="new",
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        session.add(job)
        try:
            session.flush()
        except IntegrityError:  # another worker created it at the same moment
            session.rollback()
            with sessions() as again:
                return find(again)  # type: ignore[return-value]  # the row that won the race
        return job


def identity_of(job: IngestJob) -> Identity | None:
    """The identity the job read, or None for a job from before identities were kept."""
    if job.dev is None or job.ino is None or job.ctime_ns is None:
        return None
    return _os(job.dev), _os(job.ino), job.size, job.mtime_ns, job.ctime_ns


def moved_identity(job: IngestJob) -> Identity | None:
    """The identity of the station copy as it was right after it was moved aside."""
    base = identity_of(job)
    if base is None or job.moved_ctime_ns is None:
        return None
    return (*base[:4], job.moved_ctime_ns)


def forget(sessions: sessionmaker[Session], job: IngestJob) -> None:
    """Drop a job that never got past ``new`` (the file changed while it was read)."""
    with sessions.begin() as session:
        session.execute(
            delete(IngestJob).where(
                IngestJob.id == job.id, IngestJob.state == "new", IngestJob.archive_no.is_(None)
            )
        )


def seen_here(sessions: sessionmaker[Session], job: IngestJob, sha256: str) -> bool:
    """Another finished job of the same station path read the same content: this is that
    file again with only its metadata changed (ctime), not a new docking of it."""
    with sessions() as session:
        return (
            session.execute(
                select(func.count()).where(
                    IngestJob.station_id == job.station_id,
                    IngestJob.path == job.path,
                    IngestJob.sha256 == sha256,
                    IngestJob.state.in_(FINISHED),
                    IngestJob.id != job.id,
                )
            ).scalar_one()
            > 0
        )


def archived_copy(
    sessions: sessionmaker[Session], station: str, moved_to: str, before: datetime
) -> IngestJob | None:
    """The finished job whose station copy was moved to ``moved_to`` (under the archived
    folder) before ``before``; jobs moved before ``moved_to`` was kept match by path."""
    with sessions() as session:
        return (
            session.execute(
                select(IngestJob)
                .where(
                    IngestJob.station_id == station,
                    IngestJob.state.in_(FINISHED),
                    IngestJob.updated_at < before,
                    or_(
                        IngestJob.moved_to == moved_to,
                        (IngestJob.moved_to.is_(None)) & (IngestJob.path == moved_to),
                    ),
                )
                .order_by(IngestJob.updated_at.desc())
            )
            .scalars()
            .first()
        )


def update(sessions: sessionmaker[Session], job: IngestJob, now: datetime, **values: Any) -> IngestJob:
    with sessions.begin() as session:
        row = session.get(IngestJob, job.id)
        if row is None:  # jobs are never deleted while a pipeline holds them
            raise NotFound(f"ingest job {job.id} is gone")
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at = now
    for name, value in values.items():
        setattr(job, name, value)
    return job


def backoff(attempts: int, first_s: float) -> timedelta:
    return min(timedelta(seconds=first_s * 2 ** max(0, attempts - 1)), MAX_BACKOFF)


def backlog(session: Session, station: str | None = None) -> dict[str, int]:
    """Jobs per state that are not finished, per station or overall."""
    query = (
        select(IngestJob.state, func.count())
        .where(IngestJob.state.not_in(["done", "duplicate", "quarantined"]))
        .group_by(IngestJob.state)
    )
    if station is not None:
        query = query.where(IngestJob.station_id == station)
    return dict(session.execute(query).all())
