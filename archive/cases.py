"""Case services that must be durable in the catalog and in storage alike."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from catalog import cases, custody
from catalog.actions import Action
from catalog.chain import CustodyEvent
from catalog.errors import InvalidInput
from catalog.models import Case

from . import outbox
from .context import ServiceContext
from .layout import case_event_key
from .retention import lock_until


def case_event(case: Case, event: CustodyEvent) -> dict[str, Any]:
    """The storage record of a case event: enough to rebuild the case from storage."""
    return {
        "v": 1,
        "type": "case_event",
        "case_key": case.case_key,
        "number": case.number,
        "custody": event.to_record(),
    }


def queue_case_event(session: Session, case: Case, event: CustodyEvent, now: datetime) -> None:
    """Queue ``cases/{case_key}/events/{custody seq}.json``, locked permanently."""
    outbox.enqueue(
        session,
        case_event_key(case.case_key, event.seq),
        case_event(case, event),
        lock_until=lock_until(now, None, now=now),
        now=now,
    )


def open_case(ctx: ServiceContext, new: cases.NewCase) -> Case:
    now = ctx.now()
    case = cases.open_case(
        ctx.engine,
        ctx.sessions,
        ctx.formats,
        new,
        actor=ctx.actor,
        now=now,
        on_write=lambda session, c, event: queue_case_event(session, c, event, now),
    )
    outbox.flush(ctx.sessions, ctx.store)
    return case


def close_case(ctx: ServiceContext, case_name: str, *, closed_on: date) -> Case:
    now = ctx.now()
    with ctx.sessions.begin() as session:
        case = cases.get_case(session, case_name)
        if case.status == "closed":
            raise InvalidInput(f"case {case.case_key} was closed on {case.closed_on}")
        if closed_on < case.opened_on:
            raise InvalidInput(f"a case cannot close ({closed_on}) before it opened ({case.opened_on})")
        case.status, case.closed_on = "closed", closed_on
        event = custody.append(
            session,
            actor=ctx.actor,
            action=Action.CASE_CLOSED,
            subject=case.case_key,
            details={"closed_on": closed_on.isoformat()},
        )
        queue_case_event(session, case, event, now)
    outbox.flush(ctx.sessions, ctx.store)
    return case
