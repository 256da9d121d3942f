"""What an auditor sees of each item of a case beyond the timeline: pictures, what plays,
verification, holds and flags (read queries, batched: one query per table for a whole case).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .actions import Action
from .models import CustodyEventRow, Derivative, Hold
from .playback import play_type, plays_as_is
from .timeline import ItemView

PICTURES = ("poster", "sheet", "waveform")


@dataclass(frozen=True)
class Stored:
    """One stored object a page may show: the original, a proxy or a picture."""

    source: str  # "original", "proxy", or a picture kind
    key: str
    version: str | None
    encrypted: bool
    content_type: str
    sha256: str | None


@dataclass(frozen=True)
class HoldFact:
    subject: str
    reason: str
    set_at: datetime
    set_by: str


@dataclass
class ItemFacts:
    item_no: str
    playable: Stored | None = None
    pictures: dict[str, Stored] = field(default_factory=dict)
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    clock_suspect: str | None = None
    damage_reason: str | None = None
    holds: list[HoldFact] = field(default_factory=list)
    verified_at: datetime | None = None
    verified_result: str | None = None  # of the last check asked for (page or command)
    document_id: int | None = None
    content_type: str | None = None


def review_facts(session: Session, items: list[ItemView], case_key: str) -> dict[str, ItemFacts]:
    """The facts of ``items`` as ``catalog.views.case_items`` read them; only derivatives,
    holds and the last checks asked for are read here (one query each, whatever the count)."""
    facts = {i.item_no: ItemFacts(i.item_no) for i in items}
    recording_ids = {i.recording_id for i in items if i.recording_id is not None}
    # Plain rows, not ORM objects: a case of 200 items builds hundreds of them per page.
    made_of = Derivative.__table__
    derivatives: dict[int, dict[str, Any]] = {}
    if recording_ids:
        for d in session.execute(
            select(*made_of.c)
            .where(made_of.c.recording_id.in_(recording_ids), made_of.c.status == "ok")
            .order_by(made_of.c.id)
        ):
            derivatives.setdefault(d.recording_id, {})[d.kind] = d  # the newest of each kind
    for item in items:
        fact = facts[item.item_no]
        fact.verified_at, fact.content_type = item.last_verified_at, item.content_type
        if item.document_id is not None:
            fact.document_id = item.document_id
            fact.playable = Stored(
                "original",
                item.storage_key or "",
                item.storage_version,
                item.encrypted,
                item.content_type or "application/octet-stream",
                item.sha256,
            )
            continue
        if item.recording_id is None:
            continue
        media = item.media
        fact.fps, fact.width, fact.height = media.get("fps"), media.get("width"), media.get("height")
        fact.clock_suspect, fact.damage_reason = item.clock_suspect, item.damage_reason
        made = derivatives.get(item.recording_id, {})
        for kind in PICTURES:
            if (picture := made.get(kind)) and picture.storage_key:
                fact.pictures[kind] = Stored(
                    kind,
                    picture.storage_key,
                    picture.storage_version,
                    picture.encrypted,
                    picture.content_type or "image/jpeg",
                    picture.sha256,
                )
        # What the ingest decided (catalog.playback): the original itself when browsers play
        # it as it is, else its proxy.
        proxy = made.get("proxy")
        if plays_as_is(item.kind, media, damaged=item.damaged):
            fact.playable = Stored(
                "original",
                item.storage_key or "",
                item.storage_version,
                item.encrypted,
                play_type(item.kind, media),
                item.sha256,
            )
        elif proxy is not None and proxy.storage_key:
            fact.playable = Stored(
                "proxy",
                proxy.storage_key,
                proxy.storage_version,
                proxy.encrypted,
                proxy.content_type or "video/mp4",
                proxy.sha256,
            )
    # Holds on the item, on its recording, or on the whole case.
    owners: dict[str, list[str]] = {case_key: list(facts)}
    for item in items:
        owners.setdefault(item.item_no, []).append(item.item_no)
        if item.archive_no:
            owners.setdefault(item.archive_no, []).append(item.item_no)
    for hold in session.execute(
        select(Hold).where(Hold.subject.in_(owners), Hold.released_at.is_(None)).order_by(Hold.id)
    ).scalars():
        for item_no in owners[hold.subject]:
            facts[item_no].holds.append(HoldFact(hold.subject, hold.reason, hold.set_at, hold.set_by))
    # The result of the last check asked for, by item or archive number.
    subjects = {**{n: n for n in facts}, **{i.archive_no: i.item_no for i in items if i.archive_no}}
    for subject, details in session.execute(
        select(CustodyEventRow.subject, CustodyEventRow.details)
        .where(CustodyEventRow.subject.in_(subjects), CustodyEventRow.action == Action.VERIFIED.value)
        .order_by(CustodyEventRow.seq)
    ):
        assert subject is not None, "the query selects only events with one of the subjects"
        result = json.loads(details).get("result")
        if isinstance(result, str):
            facts[subjects[subject]].verified_result = result
    return facts
