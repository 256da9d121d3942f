"""Read models for the command line and the web pages: cases, items, recordings.

Queries only; each returns plain values. Batched: one query per table for a
whole case, never one per item.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from . import derive_jobs
from .models import (
    Case,
    CaseItem,
    CustodyEventRow,
    Derivative,
    Device,
    Document,
    Officer,
    Recording,
)
from .playback import plays_as_is
from .timeline import ItemView, in_time_order


def _names(
    session: Session,
    id_column: InstrumentedAttribute[int],
    name_column: InstrumentedAttribute[str],
    ids: set[int | None],
) -> dict[int | None, str]:
    """Names by id; keyed so that an absent (None) id finds no name."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {i: n for i, n in session.execute(select(id_column, name_column).where(id_column.in_(wanted)))}


def _proxy_statuses(
    session: Session, recordings: list[Any], among: Select[Any] | None = None
) -> dict[int, str]:
    """The contract's ``proxy_status`` by recording id: ``original`` when browsers play the
    original as it is (any older proxy of it is redundant), else the best proxy row's status.
    ``among``: a query giving the same recordings' ids, sent instead of the list of them."""
    found: dict[int, set[str]] = {}
    ids: Select[Any] | list[int] = among if among is not None else [r.id for r in recordings]
    if recordings:
        for rid, status in session.execute(
            select(Derivative.recording_id, Derivative.status).where(
                Derivative.recording_id.in_(ids), Derivative.kind == "proxy"
            )
        ):
            found.setdefault(rid, set()).add(status)
    statuses = {
        rid: next((s for s in ("ok", "failed", "pending") if s in statuses), "none")
        for rid, statuses in found.items()
    }
    # A proxy left to a worker: pending while queued or running, failed once it gave up.
    for rid, state in (derive_jobs.states_for(session, ids, "proxy") if recordings else {}).items():
        if statuses.get(rid, "none") in ("none", "pending", "failed") and state != "done":
            statuses[rid] = "failed" if state == "failed" else "pending"
    for r in recordings:
        if plays_as_is(r.kind, json.loads(r.media_info or "{}"), damaged=r.damaged):
            statuses[r.id] = "original"
    return statuses


def _custody_summary(session: Session, subjects: list[str]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {s: {"events": 0, "actions": {}, "last": None} for s in subjects}
    if not subjects:
        return summary
    counts: dict[str, Counter[str]] = {s: Counter() for s in subjects}
    for subject, action, n, last in session.execute(
        select(CustodyEventRow.subject, CustodyEventRow.action, func.count(), func.max(CustodyEventRow.time))
        .where(CustodyEventRow.subject.in_(subjects))
        .group_by(CustodyEventRow.subject, CustodyEventRow.action)
    ):
        assert subject is not None, "the query selects only events with one of the subjects"
        counts[subject][action] += n
        entry = summary[subject]
        entry["last"] = max(filter(None, [entry["last"], last]), default=None)
    for subject, counter in counts.items():
        summary[subject]["events"] = sum(counter.values())
        summary[subject]["actions"] = dict(sorted(counter.items()))
    return summary


def case_items(
    session: Session,
    case: Case,
    *,
    include_unlinked: bool = False,
    item_no: str | None = None,
    custody: bool = True,
) -> list[ItemView]:
    """The case's items in time order (only ``item_no``, when given: one item's page need not
    read the whole case); ``custody=False`` leaves out each item's custody summary, which
    counts every event of every item (pages that do not show it need not pay for it)."""
    links_t, recordings, documents = CaseItem.__table__, Recording.__table__, Document.__table__
    wanted = [links_t.c.case_id == case.id]
    if item_no is not None:
        wanted.append(links_t.c.item_no == item_no)
    if not include_unlinked:
        wanted.append(links_t.c.unlinked_at.is_(None))
    # Plain rows, each table read once by joining the links (no lists of ids to send back).
    links = list(session.execute(select(*links_t.c).where(*wanted)))
    recs = {
        r.id: r
        for r in session.execute(
            select(*recordings.c, Officer.number.label("officer_no"), Device.serial.label("device_serial"))
            .join(links_t, links_t.c.recording_id == recordings.c.id)
            .outerjoin(Officer, Officer.id == recordings.c.officer_id)
            .outerjoin(Device, Device.id == recordings.c.device_id)
            .where(*wanted)
        )
    }
    docs = {
        d.id: d
        for d in session.execute(
            select(*documents.c).join(links_t, links_t.c.document_id == documents.c.id).where(*wanted)
        )
    }
    proxies = _proxy_statuses(session, list(recs.values()), select(links_t.c.recording_id).where(*wanted))
    views: list[ItemView] = []
    for link in links:
        if link.recording_id:
            r = recs[link.recording_id]
            views.append(
                ItemView(
                    item_no=link.item_no,
                    seq=link.seq,
                    kind=link.kind,
                    time=r.start_time or r.ingested_at,
                    sha256=r.sha256,
                    size=r.size,
                    archive_no=r.archive_no,
                    officer=r.officer_no,
                    device=r.device_serial,
                    station=r.station_id,
                    duration_s=r.duration_s,
                    proxy=proxies.get(r.id, "none"),
                    damaged=r.damaged,
                    important=r.important,
                    protected=r.protected,
                    linked_at=link.linked_at,
                    unlinked=link.unlinked_at is not None,
                    storage_key=r.storage_key,
                    storage_version=r.storage_version,
                    encrypted=r.encrypted,
                    last_verified_at=r.last_verified_at,
                    recording_id=r.id,
                    content_type=r.content_type,
                    media=json.loads(r.media_info or "{}"),
                    clock_suspect=json.loads(r.flags or "{}").get("clock_suspect"),
                    damage_reason=r.damage_reason,
                )
            )
        else:
            assert link.document_id is not None, (
                f"case item {link.item_no} links neither a recording nor a document"
            )
            d = docs[link.document_id]
            views.append(
                ItemView(
                    item_no=link.item_no,
                    seq=link.seq,
                    kind="document",
                    time=d.doc_date or d.created_at,
                    sha256=d.sha256,
                    size=d.size,
                    doc_type=d.doc_type,
                    doc_number=d.doc_number,
                    officer=d.officer,
                    protected=d.protected,
                    linked_at=link.linked_at,
                    unlinked=link.unlinked_at is not None,
                    storage_key=d.storage_key,
                    storage_version=d.storage_version,
                    encrypted=d.encrypted,
                    last_verified_at=d.last_verified_at,
                    document_id=d.id,
                    content_type=d.content_type,
                )
            )
    if not custody:
        return in_time_order(views)
    subjects = [v.item_no for v in views] + [v.archive_no for v in views if v.archive_no]
    summary = _custody_summary(session, subjects)
    for view in views:
        merged = summary.get(view.item_no, {"events": 0, "actions": {}, "last": None})
        if view.archive_no:
            other = summary[view.archive_no]
            actions = Counter(merged["actions"]) + Counter(other["actions"])
            merged = {
                "events": merged["events"] + other["events"],
                "actions": dict(sorted(actions.items())),
                "last": max(filter(None, [merged["last"], other["last"]]), default=None),
            }
        view.custody = merged
    return in_time_order(views)


# --- recordings ------------------------------------------------------------------------


def recordings_query(
    *,
    officer: str | None = None,
    device: str | None = None,
    station: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    unlinked: bool = False,
) -> Select[Any]:
    query = select(Recording).order_by(Recording.start_time, Recording.archive_no)
    if officer:
        query = query.join(Officer, Officer.id == Recording.officer_id).where(Officer.number == officer)
    if device:
        query = query.join(Device, Device.id == Recording.device_id).where(Device.serial == device)
    if station:
        query = query.where(Recording.station_id == station)
    if since:
        query = query.where(Recording.start_time >= since)
    if until:
        query = query.where(Recording.start_time <= until)
    if unlinked:
        linked = select(CaseItem.recording_id).where(
            CaseItem.recording_id.is_not(None), CaseItem.unlinked_at.is_(None)
        )
        query = query.where(Recording.id.not_in(linked))
    return query


def find_recordings(
    session: Session,
    *,
    officer: str | None = None,
    device: str | None = None,
    station: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    unlinked: bool = False,
    limit: int | None = None,
) -> list[Recording]:
    """The recordings `recordings_query` selects, in time order, at most `limit` of them."""
    query = recordings_query(
        officer=officer, device=device, station=station, since=since, until=until, unlinked=unlinked
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).scalars())


def recording_rows(session: Session, recordings: list[Recording]) -> list[dict[str, Any]]:
    """The contract's fields for each recording (batched look-ups)."""
    ids = [r.id for r in recordings]
    if not ids:
        return []
    officers = _names(session, Officer.id, Officer.number, {r.officer_id for r in recordings})
    devices = _names(session, Device.id, Device.serial, {r.device_id for r in recordings})
    proxies = _proxy_statuses(session, recordings)
    cases: dict[int, list[dict[str, str]]] = {}
    for rid, number, key, item_no in session.execute(
        select(CaseItem.recording_id, Case.number, Case.case_key, CaseItem.item_no)
        .join(Case, Case.id == CaseItem.case_id)
        .where(CaseItem.recording_id.in_(ids), CaseItem.unlinked_at.is_(None))
        .order_by(CaseItem.id)
    ):
        assert rid is not None, "the query selects only items linking one of the recordings"
        cases.setdefault(rid, []).append({"case": number, "case_key": key, "item_no": item_no})
    rows = []
    for r in recordings:
        rows.append(
            {
                "archive_no": r.archive_no,
                "kind": r.kind,
                "sha256": r.sha256,
                "sm3": r.sm3,
                "size": r.size,
                "original_name": r.original_name,
                "station": r.station_id,
                "device": devices.get(r.device_id),
                "officer": officers.get(r.officer_id),
                "start_time": r.start_time,
                "duration_s": r.duration_s,
                "ingested_at": r.ingested_at,
                "status": r.status,
                "proxy_status": proxies.get(r.id, "none"),
                "damaged": r.damaged,
                "damage_reason": r.damage_reason,
                "important": r.important,
                "protected": r.protected,
                "encrypted": r.encrypted,
                "flags": json.loads(r.flags or "{}"),
                "cases": cases.get(r.id, []),
                "retain_until": r.retain_until,
            }
        )
    return rows


def recording_detail(session: Session, recording: Recording) -> dict[str, Any]:
    (row,) = recording_rows(session, [recording])
    row["derivatives"] = [
        {
            "kind": d.kind,
            "status": d.status,
            "sha256": d.sha256,
            "size": d.size,
            "key": d.storage_key,
            "error": d.error,
        }
        for d in session.execute(
            select(Derivative).where(Derivative.recording_id == recording.id).order_by(Derivative.id)
        ).scalars()
    ]
    row["sources"] = json.loads(recording.sources or "{}")
    row["media"] = json.loads(recording.media_info or "{}")
    row["storage"] = {
        "key": recording.storage_key,
        "version": recording.storage_version,
        "manifest": recording.manifest_key,
        "stored_sha256": recording.stored_sha256,
        "stored_size": recording.stored_size,
    }
    return row
