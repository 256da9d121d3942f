"""Linking recordings to a case: item number, longer storage lock, case event.

The storage lock is extended *before* the catalog records the link: if the
process dies in between, a recording is locked longer than needed (harmless,
and the retry links it), never linked while still on its routine lock.
Extending a lock is allowed to every curator; shortening is refused by the
store itself.
"""

from __future__ import annotations

from sqlalchemy import select

from catalog import cases, custody, items
from catalog.actions import Action
from catalog.errors import InvalidInput, NotFound
from catalog.models import CaseItem
from catalog.recordings import get_recording

from . import outbox
from .cases import queue_case_event
from .context import ServiceContext
from .retention import lock_until


def link_recordings(ctx: ServiceContext, case_name: str, archive_nos: list[str]) -> list[tuple[str, str]]:
    """Link each recording (once) to the case; returns (archive_no, item_no) pairs in order."""
    if not archive_nos:
        raise InvalidInput("no recordings to link", hint="name archive numbers or give a query")
    sessions, now, actor = ctx.sessions, ctx.now(), ctx.actor
    with sessions() as session:
        case = cases.get_case(session, case_name)
        case_key, status = case.case_key, case.status
        targets = [get_recording(session, n) for n in dict.fromkeys(archive_nos)]
    if status != "open":
        raise InvalidInput(f"case {case_key} is {status}; recordings are linked to open cases only")
    # While the case is open its evidence is kept permanently.
    until = lock_until(now, None, now=now)
    linked: list[tuple[str, str]] = []
    for recording in targets:
        if recording.status == "purged":
            raise InvalidInput(f"{recording.archive_no} was purged; only its tombstone remains")
        with sessions() as session:
            existing = items.active_link(session, cases.get_case(session, case_key), recording.id)
        if existing is not None:
            linked.append((recording.archive_no, existing.item_no))
            continue
        for key, version in [
            (recording.storage_key, recording.storage_version),
            (recording.manifest_key, None),
        ]:
            if key:
                ctx.store.extend_retention(key, version, until)
        seq, item_no = items.draw_item_number(ctx.engine, ctx.formats, case_key, recording.kind)
        with sessions.begin() as session:
            case = cases.get_case(session, case_key)
            items.add_item(
                session,
                case,
                seq=seq,
                item_no=item_no,
                kind=recording.kind,
                recording_id=recording.id,
                actor=actor,
                now=now,
            )
            row = session.get(type(recording), recording.id)
            assert row is not None, f"{recording.archive_no} is gone from the catalog (never deleted)"
            row.retain_until = until
            event = custody.append(
                session,
                actor=actor,
                action=Action.LINKED,
                subject=recording.archive_no,
                details={"case_key": case_key, "item_no": item_no, "retain_until": until.isoformat()},
            )
            queue_case_event(session, case, event, now)
        linked.append((recording.archive_no, item_no))
    outbox.flush(sessions, ctx.store)
    return linked


def unlink_item(ctx: ServiceContext, case_name: str, item_no: str, *, reason: str) -> str:
    """Take a recording out of a case. The item number is never given again, and the
    storage lock stays as long as it was (locks are never shortened)."""
    if not reason or not reason.strip():
        raise InvalidInput("unlinking needs a reason", hint="--reason '…'")
    now, actor = ctx.now(), ctx.actor
    with ctx.sessions.begin() as session:
        case = cases.get_case(session, case_name)
        item = session.execute(
            select(CaseItem).where(CaseItem.case_id == case.id, CaseItem.item_no == item_no)
        ).scalar()
        if item is None:
            raise NotFound(f"case {case.case_key} has no item {item_no}")
        if item.document_id is not None:
            raise InvalidInput(f"{item_no} is a written record; written records stay with their case")
        if item.unlinked_at is not None:
            raise InvalidInput(f"{item_no} was unlinked already")
        item.unlinked_at, item.unlinked_by, item.unlink_reason = now, actor, reason.strip()
        event = custody.append(
            session,
            actor=actor,
            action=Action.UNLINKED,
            subject=item_no,
            details={"case_key": case.case_key, "reason": reason.strip()},
        )
        queue_case_event(session, case, event, now)
    outbox.flush(ctx.sessions, ctx.store)
    return item_no
