"""Ingest jobs: one row per station file, carrying its state through the pipeline.

States: ``new`` → ``reserved`` (archive number drawn) → ``stored`` (original and
catalog row committed) → ``done`` (derivatives tried, station copy handled).
Side exits: ``duplicate``, ``quarantined``, ``failed`` (retried after
``next_try``). A process killed anywhere resumes from the row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .models import IngestJob

MAX_BACKOFF = timedelta(hours=1)


def job_for(sessions: sessionmaker[Session], station: str, path: str, size: int, mtime_ns: int,
            now: datetime) -> IngestJob:
    """The job of this exact file (same path, size and mtime), created if new."""
    def find(session: Session) -> IngestJob | None:
        return session.execute(select(IngestJob).where(
            IngestJob.station_id == station, IngestJob.path == path, IngestJob.size == size,
            IngestJob.mtime_ns == mtime_ns)).scalar()

    with sessions.begin() as session:
        job = find(session)
        if job is not None:
            return job
        job = IngestJob(station_id=station, path=path, size=size, mtime_ns=mtime_ns, state="new",
                        attempts=0, created_at=now, updated_at=now)
        session.add(job)
        try:
            session.flush()
        except IntegrityError:  # another worker created it at the same moment
            session.rollback()
            with sessions() as again:
                return find(again)  # type: ignore[return-value]
        return job


def update(sessions: sessionmaker[Session], job: IngestJob, now: datetime, **values) -> IngestJob:
    with sessions.begin() as session:
        row = session.get(IngestJob, job.id)
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
    query = select(IngestJob.state, func.count()).where(
        IngestJob.state.not_in(["done", "duplicate", "quarantined"])).group_by(IngestJob.state)
    if station is not None:
        query = query.where(IngestJob.station_id == station)
    return dict(session.execute(query).all())
