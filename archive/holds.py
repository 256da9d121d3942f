"""Legal holds, durable in storage (S3 legal hold) and in the catalog.

Setting: the store's hold goes on first, then the catalog records it; a
crash in between leaves an object held that the catalog does not know about
(safe, and found by ``verify``). Releasing: the catalog first, then each
object no other active hold still covers; a crash in between leaves an
object held longer (safe again). Nothing is ever less protected than the
catalog says.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from catalog import custody, holds
from catalog.errors import InvalidInput, NotFound
from catalog.models import Hold

from . import outbox
from .cases import queue_case_event
from .store import ObjectStore


def _reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise InvalidInput("a hold needs a reason", hint="--reason '…'")
    return reason.strip()


def set_hold(sessions: sessionmaker[Session], store: ObjectStore, subject: str, *, reason: str,
             actor: str, now: datetime) -> str:
    """Hold a recording, an item or a whole case; returns the subject as recorded."""
    reason = _reason(reason)
    with sessions() as session:
        held = holds.resolve(session, subject)
        objects = held.objects()
    for key, version in sorted(objects, key=lambda o: o[0]):
        store.set_legal_hold(key, version, True)
    with sessions.begin() as session:
        held = holds.resolve(session, subject)
        session.add(Hold(subject=held.subject, reason=reason, set_at=now, set_by=actor))
        event = custody.append(session, actor=actor, action="held", subject=held.subject,
                               details={"reason": reason, "objects": len(objects)})
        if held.case is not None:
            queue_case_event(session, held.case, event, now)
    outbox.flush(sessions, store)
    return held.subject


def release_hold(sessions: sessionmaker[Session], store: ObjectStore, subject: str, *, reason: str,
                 actor: str, now: datetime) -> str:
    reason = _reason(reason)
    with sessions.begin() as session:
        held = holds.resolve(session, subject)
        active = holds.active_holds(session, held.subject)
        if not active:
            raise NotFound(f"{held.subject} is not on hold")
        for hold in active:
            hold.released_at, hold.released_by, hold.release_reason = now, actor, reason
        session.flush()
        still_held = holds.held_objects(session)
        release = sorted(held.objects() - still_held, key=lambda o: o[0])
        event = custody.append(session, actor=actor, action="released", subject=held.subject, details={"reason": reason, "objects": len(release),
                                                 "still_held_by_other_holds":
                                                     len(held.objects()) - len(release)})
        if held.case is not None:
            queue_case_event(session, held.case, event, now)
    for key, version in release:
        store.set_legal_hold(key, version, False)
    outbox.flush(sessions, store)
    return held.subject
