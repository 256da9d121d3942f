"""Station health: what a supervisor needs to see that a dock stopped uploading."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import derive_jobs
from .models import Device, IngestJob, Recording, Station


def station_status(
    session: Session,
    *,
    now: datetime,
    stale_after: timedelta,
    device_absent: timedelta,
    late_after: timedelta = timedelta(hours=24),
    limit: int = 100,
) -> dict[str, Any]:
    stations: dict[str, dict[str, Any]] = {}
    known = set(session.execute(select(Station.id)).scalars()) | set(
        session.execute(select(IngestJob.station_id).distinct()).scalars()
    )
    for station in sorted(known):
        last = session.execute(
            select(func.max(Recording.ingested_at)).where(Recording.station_id == station)
        ).scalar()
        backlog = dict(
            session.execute(
                select(IngestJob.state, func.count())
                .where(
                    IngestJob.station_id == station,
                    IngestJob.state.not_in(["done", "duplicate", "quarantined"]),
                )
                .group_by(IngestJob.state)
            ).all()
        )
        failing = session.execute(
            select(func.count()).where(
                IngestJob.station_id == station, IngestJob.last_error.is_not(None), IngestJob.state != "done"
            )
        ).scalar()
        quarantined = session.execute(
            select(func.count()).where(IngestJob.station_id == station, IngestJob.state == "quarantined")
        ).scalar()
        stations[station] = {
            "station": station,
            "last_success": last,
            "stale": last is None or now - last > stale_after,
            "backlog": backlog,
            "failing": failing,
            "quarantined": quarantined,
        }
    last_seen = session.execute(
        select(Device.serial, func.max(Recording.ingested_at))
        .join(Recording, Recording.device_id == Device.id)
        .group_by(Device.serial)
    ).all()
    absent = [
        {"device": serial, "last_docked": seen}
        for serial, seen in last_seen
        if seen is not None and now - seen > device_absent
    ]
    late = []
    rows = session.execute(
        select(Recording)
        .where(Recording.start_time.is_not(None))
        .order_by(Recording.ingested_at.desc())
        .limit(limit * 20)
    ).scalars()
    for rec in rows:
        assert rec.start_time is not None, "the query selects only recordings with a start time"
        ended = rec.start_time + timedelta(seconds=rec.duration_s or 0)
        if rec.ingested_at - ended > late_after:
            late.append(
                {
                    "archive_no": rec.archive_no,
                    "station": rec.station_id,
                    "ended": ended,
                    "archived": rec.ingested_at,
                    "hours": round((rec.ingested_at - ended).total_seconds() / 3600, 1),
                }
            )
        if len(late) >= limit:
            break
    return {
        "stations": list(stations.values()),
        "absent_devices": absent,
        "late": late,
        # Derivative work left to workers: jobs by state, and those failed for good with why.
        "derive_jobs": derive_jobs.counts(session),
        "derive_failed": derive_jobs.failed_jobs(session, limit),
    }
