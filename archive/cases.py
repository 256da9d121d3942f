"""Case services that must be durable in the catalog and in storage alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from catalog import cases
from catalog.chain import CustodyEvent
from catalog.models import Case
from catalog.numbering import NumberingFormats

from . import outbox
from .layout import case_event_key
from .retention import lock_until
from .store import ObjectStore


def case_event(case: Case, event: CustodyEvent) -> dict[str, Any]:
    """The storage record of a case event: enough to rebuild the case from storage."""
    return {"v": 1, "type": "case_event", "case_key": case.case_key, "number": case.number,
            "custody": event.to_record()}


def queue_case_event(session: Session, case: Case, event: CustodyEvent, now: datetime) -> None:
    """Queue ``cases/{case_key}/events/{custody seq}.json``, locked permanently."""
    outbox.enqueue(session, case_event_key(case.case_key, event.seq), case_event(case, event),
                   lock_until=lock_until(now, None, now=now), now=now)


def open_case(engine: Engine, sessions: sessionmaker[Session], store: ObjectStore,
              formats: NumberingFormats, new: cases.NewCase, *, actor: str, now: datetime) -> Case:
    case = cases.open_case(engine, sessions, formats, new, actor=actor, now=now,
                           on_write=lambda session, c, event: queue_case_event(session, c, event, now))
    outbox.flush(sessions, store)
    return case
