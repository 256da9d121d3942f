"""Legal holds, durable in storage (S3 legal hold) and in the catalog.

Setting: the store's hold goes on first, then the catalog records it; a
crash in between leaves an object held that the catalog does not know about
(safe, and found by ``verify``). Releasing: the catalog first, then each
object no other active hold still covers; a crash in between leaves an
object held longer (safe again). Nothing is ever less protected than the
catalog says.
"""

from __future__ import annotations

from catalog import custody, holds
from catalog.actions import Action
from catalog.errors import InvalidInput, NotFound
from catalog.models import Hold

from . import outbox
from .cases import queue_case_event
from .context import ServiceContext


def _reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise InvalidInput("a hold needs a reason", hint="--reason '…'")
    return reason.strip()


def set_hold(ctx: ServiceContext, subject: str, *, reason: str) -> str:
    """Hold a recording, an item or a whole case; returns the subject as recorded."""
    reason, now, actor = _reason(reason), ctx.now(), ctx.actor
    with ctx.sessions() as session:
        held = holds.resolve(session, subject)
        objects = held.objects()
    for key, version in sorted(objects, key=lambda o: o[0]):
        ctx.store.set_legal_hold(key, version, True)
    with ctx.sessions.begin() as session:
        held = holds.resolve(session, subject)
        session.add(Hold(subject=held.subject, reason=reason, set_at=now, set_by=actor))
        event = custody.append(
            session,
            actor=actor,
            action=Action.HELD,
            subject=held.subject,
            details={"reason": reason, "objects": len(objects)},
        )
        if held.case is not None:
            queue_case_event(session, held.case, event, now)
    outbox.flush(ctx.sessions, ctx.store)
    return held.subject


def release_hold(ctx: ServiceContext, subject: str, *, reason: str) -> str:
    reason, now, actor = _reason(reason), ctx.now(), ctx.actor
    with ctx.sessions.begin() as session:
        held = holds.resolve(session, subject)
        active = holds.active_holds(session, held.subject)
        if not active:
            raise NotFound(f"{held.subject} is not on hold")
        for hold in active:
            hold.released_at, hold.released_by, hold.release_reason = now, actor, reason
        session.flush()
        still_held = holds.held_objects(session)
        release = sorted(held.objects() - still_held, key=lambda o: o[0])
        event = custody.append(
            session,
            actor=actor,
            action=Action.RELEASED,
            subject=held.subject,
            details={
                "reason": reason,
                "objects": len(release),
                "still_held_by_other_holds": len(held.objects()) - len(release),
            },
        )
        if held.case is not None:
            queue_case_event(session, held.case, event, now)
    for key, version in release:
        ctx.store.set_legal_hold(key, version, False)
    outbox.flush(ctx.sessions, ctx.store)
    return held.subject
