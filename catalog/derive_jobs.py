"""Derive jobs: derivative work queued in the catalog and claimed by workers under a lease.

A station that leaves transcodes to workers (``[ingest] derivatives = "queue"``) queues a
job; any machine with the catalog runs ``evidence derive work`` and claims them:

- a claim is one short transaction. On PostgreSQL the candidate row is picked with
  ``SELECT … FOR UPDATE SKIP LOCKED`` (workers never wait on each other, and the row lock ends
  with the claim: it is never held during a transcode); on SQLite, whose writers take turns
  anyway, the claim is a conditional ``UPDATE`` that only one worker's statement can win;
- the owner renews ``lease_until`` while it works (:func:`renew`, from a heartbeat thread);
  a worker that dies stops renewing, and once the lease has lapsed the next worker claims the
  job again, counting the lapse as a failure;
- a failure puts the job back in the queue, retried after ``retry_after``; the
  :data:`MAX_FAILURES`-th marks it ``failed`` with its reason (``stations status`` shows it);
- finishing or failing checks the owner, so a worker that stalled past its lease and was
  taken over cannot overwrite the new owner's state.

Leases run on each host's clock (UTC); hosts are expected to keep time within a small part
of the lease.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from .db import changed_rows, insert_missing
from .models import DeriveJob, Recording

__all__ = [
    "LEASE",
    "MAX_FAILURES",
    "Claimed",
    "claim",
    "enqueue",
    "fail",
    "failed_jobs",
    "finish",
    "renew",
]

LEASE = timedelta(minutes=2)
MAX_FAILURES = 3
LAPSED = "the worker's lease lapsed (the worker died or stalled)"


@dataclass(frozen=True)
class Claimed:
    id: int
    recording_id: int
    archive_no: str
    kind: str
    owner: str
    failures: int


def enqueue(session: Session, recording_id: int, kind: str, now: datetime) -> None:
    """Queue ``kind`` for the recording, once (a job already there is left as it is)."""
    insert_missing(
        session,
        DeriveJob.__table__,
        {
            "recording_id": recording_id,
            "kind": kind,
            "state": "queued",
            "failures": 0,
            "created_at": now,
            "updated_at": now,
        },
        ["recording_id", "kind"],
    )


def _claimable(now: datetime, kinds: Sequence[str] | None) -> list[ColumnElement[bool]]:
    waiting = and_(
        DeriveJob.state == "queued", or_(DeriveJob.not_before.is_(None), DeriveJob.not_before <= now)
    )
    lapsed = and_(DeriveJob.state == "running", DeriveJob.lease_until < now)
    where: list[ColumnElement[bool]] = [or_(waiting, lapsed)]
    if kinds:
        where.append(DeriveJob.kind.in_(list(kinds)))
    return where


def claim(
    sessions: sessionmaker[Session],
    owner: str,
    now: datetime,
    *,
    kinds: Sequence[str] | None = None,
    lease: timedelta = LEASE,
) -> Claimed | None:
    """The oldest claimable job, now running under ``owner``'s lease; None when there is none.

    A job taken over from a lapsed lease has its failure counted here; one that reaches
    :data:`MAX_FAILURES` that way is marked failed instead and the next one is tried.
    """
    while True:
        with sessions.begin() as session:
            query = (
                select(DeriveJob.id, DeriveJob.state).where(*_claimable(now, kinds)).order_by(DeriveJob.id)
            )
            postgres = session.get_bind().dialect.name == "postgresql"
            row = session.execute(
                query.limit(1).with_for_update(skip_locked=True) if postgres else query.limit(1)
            ).first()
            if row is None:
                return None
            job_id, state = row
            lapsed = state == "running"
            values: dict[str, object] = {"owner": owner, "lease_until": now + lease, "updated_at": now}
            if lapsed:
                values.update(failures=DeriveJob.failures + 1, last_error=LAPSED)
            won = changed_rows(
                session.execute(
                    update(DeriveJob)
                    .where(DeriveJob.id == job_id, *_claimable(now, kinds))
                    .values(state="running", **values)
                )
            )
            if not won:
                continue  # another worker's claim came first (SQLite): look again
            job = session.get(DeriveJob, job_id)
            assert job is not None, "claimed in this transaction"
            session.refresh(job)
            if job.failures >= MAX_FAILURES:
                job.state, job.owner, job.lease_until = "failed", None, None
                continue
            archive_no = session.execute(
                select(Recording.archive_no).where(Recording.id == job.recording_id)
            ).scalar_one()
            return Claimed(job.id, job.recording_id, archive_no, job.kind, owner, job.failures)


def renew(sessions: sessionmaker[Session], job: Claimed, now: datetime, lease: timedelta = LEASE) -> bool:
    """Extend the lease; False when the job is no longer this owner's (taken over)."""
    with sessions.begin() as session:
        return bool(
            changed_rows(
                session.execute(
                    update(DeriveJob)
                    .where(DeriveJob.id == job.id, DeriveJob.owner == job.owner, DeriveJob.state == "running")
                    .values(lease_until=now + lease, updated_at=now)
                )
            )
        )


def finish(sessions: sessionmaker[Session], job: Claimed, now: datetime) -> bool:
    """The job is done; False when it had been taken over meanwhile (the result, stored under
    its digest, is the same whoever finishes)."""
    with sessions.begin() as session:
        return bool(
            changed_rows(
                session.execute(
                    update(DeriveJob)
                    .where(DeriveJob.id == job.id, DeriveJob.owner == job.owner, DeriveJob.state == "running")
                    .values(state="done", owner=None, lease_until=None, last_error=None, updated_at=now)
                )
            )
        )


def fail(
    sessions: sessionmaker[Session],
    job: Claimed,
    error: str,
    now: datetime,
    *,
    retry_after: timedelta = timedelta(minutes=5),
) -> str:
    """Count a failure: back to ``queued`` (retried after ``retry_after``) or ``failed`` at
    :data:`MAX_FAILURES`. Returns the new state (``lost`` when taken over meanwhile)."""
    with sessions.begin() as session:
        row = session.get(DeriveJob, job.id, with_for_update=True)
        if row is None or row.owner != job.owner or row.state != "running":
            return "lost"
        row.failures += 1
        row.last_error = error[:4000]
        row.owner, row.lease_until, row.updated_at = None, None, now
        if row.failures >= MAX_FAILURES:
            row.state, row.not_before = "failed", None
        else:
            row.state, row.not_before = "queued", now + retry_after
        return row.state


def failed_jobs(session: Session, limit: int = 100) -> list[dict[str, object]]:
    """Jobs that failed for good, newest first, with the recording and the last reason."""
    rows = session.execute(
        select(
            Recording.archive_no,
            Recording.station_id,
            DeriveJob.kind,
            DeriveJob.failures,
            DeriveJob.last_error,
        )
        .join(Recording, Recording.id == DeriveJob.recording_id)
        .where(DeriveJob.state == "failed")
        .order_by(DeriveJob.updated_at.desc())
        .limit(limit)
    ).all()
    return [
        {"archive_no": a, "station": st, "kind": k, "failures": f, "reason": e} for a, st, k, f, e in rows
    ]


def counts(session: Session) -> dict[str, int]:
    """Jobs by state."""
    return dict(session.execute(select(DeriveJob.state, func.count()).group_by(DeriveJob.state)).all())


def states_for(session: Session, recording_ids: Iterable[int] | Select[Any], kind: str) -> dict[int, str]:
    """The job state of ``kind`` by recording id, for those that have a job (``recording_ids``
    a list, or a query giving them)."""
    ids = recording_ids if isinstance(recording_ids, Select) else list(recording_ids)
    if isinstance(ids, list) and not ids:
        return {}
    return dict(
        session.execute(
            select(DeriveJob.recording_id, DeriveJob.state).where(
                DeriveJob.recording_id.in_(ids), DeriveJob.kind == kind
            )
        ).all()
    )
