"""Reading the custody chain by filter: the audit page, its CSV, a case's log.

Queries only, returning ``CustodyEvent`` values. Events about protected records (their item
and archive numbers) can be left out for an account without the grant, in the query itself,
so that paging and counts never reveal them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, or_, select, union
from sqlalchemy.orm import Session

from .actions import Action
from .chain import CustodyEvent
from .models import CaseItem, CustodyEventRow, Document, Recording

PAGE = 100
S = TypeVar("S", bound=Select[*tuple[Any, ...]])
READ_BATCH = 1000

_COLUMNS = (
    CustodyEventRow.seq,
    CustodyEventRow.time,
    CustodyEventRow.actor,
    CustodyEventRow.action,
    CustodyEventRow.subject,
    CustodyEventRow.details,
    CustodyEventRow.prev_hash,
    CustodyEventRow.hash,
)


@dataclass(frozen=True)
class AuditFilter:
    """Which events: every field optional; ``actor`` matches ``web:NAME`` given ``NAME``;
    ``subject`` matches a prefix (a case key finds the case and its item numbers)."""

    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # inclusive
    include_protected: bool = True

    def as_details(self) -> dict[str, Any]:
        """What a custody event records about this filter (only what was set)."""
        values = {
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "period_from": self.since.isoformat() if self.since else None,
            "period_to": self.until.isoformat() if self.until else None,
        }
        return {k: v for k, v in values.items() if v}


def protected_subjects() -> Select[Any]:
    """The numbers of protected records as custody subjects: archive and item numbers."""
    return (
        union(
            select(Recording.archive_no.label("s")).where(Recording.protected.is_(True)),
            select(CaseItem.item_no.label("s"))
            .join(Recording, Recording.id == CaseItem.recording_id)
            .where(Recording.protected.is_(True)),
            select(CaseItem.item_no.label("s"))
            .join(Document, Document.id == CaseItem.document_id)
            .where(Document.protected.is_(True)),
        )
        .subquery()
        .select()
    )


def protected_numbers(session: Session, among: list[str] | None = None) -> set[str]:
    """Protected numbers (all, or those ``among`` the given ones): for redacting values."""
    rows = session.execute(protected_subjects())
    found = {r[0] for r in rows}
    return found & set(among) if among is not None else found


def _where(query: S, f: AuditFilter) -> S:
    if f.actor:
        query = query.where(
            or_(
                CustodyEventRow.actor == f.actor,
                CustodyEventRow.actor.endswith(":" + f.actor, autoescape=True),
            )
        )
    if f.action:
        query = query.where(CustodyEventRow.action == f.action)
    if f.subject:
        query = query.where(CustodyEventRow.subject.startswith(f.subject, autoescape=True))
    if f.since:
        query = query.where(CustodyEventRow.time >= f.since)
    if f.until:
        query = query.where(CustodyEventRow.time <= f.until)
    if not f.include_protected:
        query = query.where(
            or_(CustodyEventRow.subject.is_(None), CustodyEventRow.subject.not_in(protected_subjects()))
        )
    return query


def _event(row: Any) -> CustodyEvent:
    seq, time, actor, action, subject, details, prev_hash, digest = row
    return CustodyEvent(seq, time, actor, action, subject, json.loads(details), prev_hash, digest)


def count(session: Session, f: AuditFilter) -> int:
    return int(session.execute(_where(select(func.count()).select_from(CustodyEventRow), f)).scalar_one())


def page(
    session: Session, f: AuditFilter, *, before: int | None = None, size: int = PAGE
) -> list[CustodyEvent]:
    """The newest ``size`` matching events older than event ``before`` (keyset paging)."""
    query = _where(select(*_COLUMNS), f)
    if before is not None:
        query = query.where(CustodyEventRow.seq < before)
    return [_event(r) for r in session.execute(query.order_by(CustodyEventRow.seq.desc()).limit(size))]


def stream(session: Session, f: AuditFilter) -> Iterator[CustodyEvent]:
    """Every matching event in chain order, read in batches (for a file of any length)."""
    query = _where(select(*_COLUMNS), f).order_by(CustodyEventRow.seq)
    for row in session.execute(query.execution_options(yield_per=READ_BATCH)):
        yield _event(row)


def failed_logins(session: Session, since: datetime) -> list[tuple[str, str]]:
    """(subject, source) of every failed login since then: the login throttle counts these, so
    every process serving the pages shares one count."""
    rows = session.execute(
        select(CustodyEventRow.subject, CustodyEventRow.details).where(
            CustodyEventRow.action == Action.LOGIN_FAILED.value, CustodyEventRow.time >= since
        )
    )
    return [(subject or "", str(json.loads(details).get("source", ""))) for subject, details in rows]


def about(session: Session, subjects: list[str], *, limit: int | None = None) -> list[CustodyEvent]:
    """Events whose subject is one of these (a case's key and its items' numbers), in chain order."""
    if not subjects:
        return []
    query = select(*_COLUMNS).where(CustodyEventRow.subject.in_(subjects)).order_by(CustodyEventRow.seq)
    if limit is not None:
        query = query.order_by(None).order_by(CustodyEventRow.seq.desc()).limit(limit)
        return sorted((_event(r) for r in session.execute(query)), key=lambda e: e.seq)
    return [_event(r) for r in session.execute(query)]
