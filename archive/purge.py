"""Purging a recording whose retention ended, leaving a tombstone.

Deciding *what* is due is the retention policy's job; this service only
carries a decision out, and still refuses a recording that is held or linked
to a case (a second line of defence). Storage versions are deleted first
(the store refuses while its lock runs, and the purge stays pending); then
one catalog transaction marks the recording purged, writes the tombstone row
and custody event and queues the tombstone object. A crash between the two
leaves objects already gone and a catalog row still "pending": the retry
finds them missing and completes.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import custody, holds
from catalog.actions import Action
from catalog.canonical import format_instant
from catalog.errors import Refused
from catalog.models import CaseItem, Derivative, Recording, Tombstone
from catalog.recordings import get_recording

from . import outbox
from .context import ServiceContext
from .errors import ObjectMissing
from .layout import tombstone_key
from .retention import lock_until


def _objects(session: Session, recording: Recording) -> list[tuple[str, str | None]]:
    found = [(recording.storage_key, recording.storage_version)]
    if recording.manifest_key:
        found.append((recording.manifest_key, None))
    derivatives = session.execute(
        select(Derivative).where(Derivative.recording_id == recording.id, Derivative.storage_key.is_not(None))
    ).scalars()
    found += [(d.storage_key, d.storage_version) for d in derivatives if d.storage_key is not None]
    return found


def purge_recording(
    ctx: ServiceContext, archive_no: str, *, reason: str, due_at: datetime | None
) -> Tombstone:
    sessions, store, actor, now = ctx.sessions, ctx.store, ctx.actor, ctx.now()
    with sessions() as session:
        recording = get_recording(session, archive_no)
        if recording.status == "purged":
            return session.execute(select(Tombstone).where(Tombstone.subject == archive_no)).scalar_one()
        items = session.execute(select(CaseItem).where(CaseItem.recording_id == recording.id)).scalars().all()
        if any(i.unlinked_at is None for i in items):
            raise Refused(f"{archive_no} is linked to a case and is not purged")
        if holds.resolve(session, archive_no).objects() & holds.held_objects(session):
            raise Refused(f"{archive_no} is under legal hold and is not purged")
        objects = _objects(session, recording)
        numbers = [archive_no] + [i.item_no for i in items]
    for key, version in objects:
        try:
            store.delete(key, version)  # ObjectLocked propagates: the purge stays pending
        except ObjectMissing:
            pass  # deleted by an earlier attempt that died before its catalog commit
    record = {
        "v": 1,
        "type": "tombstone",
        "subject": archive_no,
        "kind": recording.kind,
        "numbers": numbers,
        "sha256": recording.sha256,
        "sm3": recording.sm3,
        "size": recording.size,
        "original_name": recording.original_name,
        "start_time": format_instant(recording.start_time) if recording.start_time else None,
        "reason": reason,
        "due_at": format_instant(due_at) if due_at else None,
        "purged_at": format_instant(now),
        "purged_by": actor,
        "deleted": [key for key, _ in objects],
    }
    with sessions.begin() as session:
        row = session.get(Recording, recording.id)
        assert row is not None, f"{archive_no} is gone from the catalog (never deleted)"
        row.status = "purged"
        event = custody.append(
            session,
            actor=actor,
            action=Action.PURGED,
            subject=archive_no,
            details={k: record[k] for k in ("reason", "due_at", "numbers", "sha256", "size", "deleted")},
        )
        tombstone = Tombstone(
            subject=archive_no,
            kind=recording.kind,
            numbers=json.dumps(numbers),
            sha256=recording.sha256,
            sm3=recording.sm3,
            size=recording.size,
            reason=reason,
            due_at=due_at,
            purged_at=now,
            custody_seq=event.seq,
            storage_key=tombstone_key(archive_no),
        )
        session.add(tombstone)
        outbox.enqueue(
            session,
            tombstone_key(archive_no),
            record | {"custody_seq": event.seq},
            lock_until=lock_until(now, None, now=now),
            now=now,
        )
    outbox.flush(sessions, store)
    return tombstone
