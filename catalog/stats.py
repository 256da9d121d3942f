"""The yearly figures a bureau publishes: recordings, cases and their coverage, checks, deletions."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from .actions import Action
from .coverage import find_gaps
from .models import Base, Case, CustodyEventRow, Officer, Recording, Station, Tombstone
from .views import case_items


def annual(
    session: Session, *, start: datetime, end: datetime, on_site_types: set[str], window: timedelta
) -> dict[str, Any]:
    """Figures for [start, end): recordings by start time, cases by opening date."""
    in_year = (Recording.start_time >= start) & (Recording.start_time < end)
    count, seconds = session.execute(
        select(func.count(), func.coalesce(func.sum(Recording.duration_s), 0.0)).where(in_year)
    ).one()

    def grouped(
        column: InstrumentedAttribute[str] | InstrumentedAttribute[str | None],
        join: tuple[type[Base], ColumnElement[bool]] | None = None,
    ) -> list[dict[str, Any]]:
        query = select(column, func.count(), func.coalesce(func.sum(Recording.duration_s), 0.0))
        query = (query.select_from(Recording).outerjoin(*join) if join else query).where(in_year)
        rows = session.execute(query.group_by(column).order_by(column)).all()
        return [{"name": name or "unknown", "recordings": n, "hours": _hours(s)} for name, n, s in rows]

    by_kind = {
        k: n
        for k, n in session.execute(
            select(Recording.kind, func.count()).where(in_year).group_by(Recording.kind)
        )
    }
    damaged = session.execute(select(func.count()).where(in_year, Recording.damaged)).scalar()
    opened = list(
        session.execute(
            select(Case).where(Case.opened_on >= start.date(), Case.opened_on < end.date())
        ).scalars()
    )
    covered = sum(
        1
        for case in opened
        if not find_gaps(case_items(session, case, custody=False), on_site_types=on_site_types, window=window)
    )
    checks = {"replays_with_verify": 0, "items_with_problems": 0, "fixity_runs": 0, "fixity_problems": 0}
    for action, details in session.execute(
        select(CustodyEventRow.action, CustodyEventRow.details).where(
            CustodyEventRow.time >= start,
            CustodyEventRow.time < end,
            CustodyEventRow.action.in_([Action.REPLAYED, Action.FIXITY_RUN, Action.FIXITY_PROBLEM]),
        )
    ):
        data = json.loads(details)
        if action == Action.REPLAYED and data.get("verify"):
            checks["replays_with_verify"] += 1
            checks["items_with_problems"] += len(data.get("problems", []))
        elif action == Action.FIXITY_RUN:
            checks["fixity_runs"] += 1
        elif action == Action.FIXITY_PROBLEM:
            checks["fixity_problems"] += 1
    deletions = [
        {"reason": reason, "items": n}
        for reason, n in session.execute(
            select(Tombstone.reason, func.count())
            .where(Tombstone.purged_at >= start, Tombstone.purged_at < end)
            .group_by(Tombstone.reason)
            .order_by(Tombstone.reason)
        )
    ]
    return {
        "recordings": {
            "count": count,
            "hours": _hours(seconds),
            "by_kind": by_kind,
            "damaged": damaged,
            "by_unit": grouped(Station.unit, (Station, Station.id == Recording.station_id)),
            "by_station": grouped(Recording.station_id),
            "by_officer": grouped(Officer.number, (Officer, Officer.id == Recording.officer_id)),
        },
        "cases": {"opened": len(opened), "fully_covered": covered, "with_gaps": len(opened) - covered},
        "checks": checks,
        "deletions": deletions,
    }


def _hours(seconds: float | None) -> float:
    assert seconds is not None, "the queries coalesce summed durations to 0.0"
    return round(seconds / 3600, 2)


def per_month(session: Session, *, start: datetime, end: datetime, zone: tzinfo) -> list[int]:
    """Recordings per calendar month (in the settings' zone) of the year starting at ``start``."""
    counts = [0] * 12
    for (moment,) in session.execute(
        select(Recording.start_time).where(Recording.start_time >= start, Recording.start_time < end)
    ):
        assert moment is not None, "the query selects only recordings with a start time"
        counts[moment.astimezone(zone).month - 1] += 1
    return counts


def coverage_report(
    session: Session, *, opened_from: date, opened_to: date, on_site_types: set[str], window: timedelta
) -> list[dict[str, Any]]:
    """Per case opened in the period (both ends included): what its gaps miss, by kind."""
    rows = []
    for case in session.execute(
        select(Case)
        .where(Case.opened_on >= opened_from, Case.opened_on <= opened_to)
        .order_by(Case.opened_on, Case.case_key)
    ).scalars():
        gaps = find_gaps(case_items(session, case, custody=False), on_site_types=on_site_types, window=window)
        rows.append(
            {
                "case": case.number,
                "case_key": case.case_key,
                "missing_recordings": sum(g.missing == "recording" for g in gaps),
                "missing_documents": sum(g.missing == "document" for g in gaps),
            }
        )
    return rows
