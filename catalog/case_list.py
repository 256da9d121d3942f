"""The start page's reads: cases by filters, a page at a time, and any number to what it names.

A number may be a bureau's case number, a case key, an item number, an archive number, an
officer's certificate number or a device's serial. Without the protected grant, protected
recordings lead nowhere (neither their archive numbers nor their officers or devices), so
the search cannot tell which cases they are in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, Select, exists, func, or_, select
from sqlalchemy.orm import Session

from .models import Case, CaseItem, Device, Document, Hold, Officer, Recording

PER_PAGE = 25


@dataclass(frozen=True)
class Filters:
    status: str | None = None  # "open" or "closed"
    held: bool = False
    case_type: str | None = None
    officer: str | None = None
    unit: str | None = None
    opened_from: date | None = None
    opened_to: date | None = None


@dataclass(frozen=True)
class Found:
    """Where a number leads: a case, an item, or several cases (``cases``)."""

    case_key: str | None = None
    item_no: str | None = None
    cases: tuple[str, ...] = ()


def _held() -> Select[Any]:
    return select(Hold.subject).where(Hold.released_at.is_(None))


def _visible_recordings(protected_access: bool) -> ColumnElement[bool]:
    return Recording.protected.is_(False) if not protected_access else Recording.id.is_not(None)


def _cases_of_officer(number: str, protected_access: bool) -> CompoundSelect[Any]:
    by_recording = (
        select(CaseItem.case_id)
        .join(Recording, Recording.id == CaseItem.recording_id)
        .join(Officer, Officer.id == Recording.officer_id)
        .where(
            Officer.number == number, CaseItem.unlinked_at.is_(None), _visible_recordings(protected_access)
        )
    )
    documents = select(Document.case_id).where(Document.officer == number)
    if not protected_access:
        documents = documents.where(Document.protected.is_(False))
    return by_recording.union(documents)


def list_cases(
    session: Session, filters: Filters, *, protected_access: bool, page: int = 1, per_page: int = PER_PAGE
) -> tuple[list[Case], int]:
    """(the cases of page ``page``, how many match), most recently opened first."""
    query = select(Case)
    if filters.status:
        query = query.where(Case.status == filters.status)
    if filters.case_type:
        query = query.where(Case.case_type == filters.case_type)
    if filters.unit:
        query = query.where(Case.unit == filters.unit)
    if filters.opened_from:
        query = query.where(Case.opened_on >= filters.opened_from)
    if filters.opened_to:
        query = query.where(Case.opened_on <= filters.opened_to)
    if filters.officer:
        query = query.where(Case.id.in_(_cases_of_officer(filters.officer, protected_access)))
    if filters.held:
        held = _held()
        item_held = exists().where(
            CaseItem.case_id == Case.id,
            CaseItem.unlinked_at.is_(None),
            or_(
                CaseItem.item_no.in_(held),
                CaseItem.recording_id.in_(select(Recording.id).where(Recording.archive_no.in_(held))),
            ),
        )
        query = query.where(or_(Case.case_key.in_(held), item_held))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(Case.opened_on.desc(), Case.id.desc())
        .limit(per_page)
        .offset((max(page, 1) - 1) * per_page)
    ).scalars()
    return list(rows), total


def held_keys(session: Session, cases: list[Case]) -> set[str]:
    """Which of these cases are held (the case itself, or one of its items)."""
    if not cases:
        return set()
    held = set(session.execute(_held()).scalars())
    keys = {c.case_key for c in cases if c.case_key in held}
    rows = session.execute(
        select(Case.case_key, CaseItem.item_no, Recording.archive_no)
        .join(CaseItem, CaseItem.case_id == Case.id)
        .outerjoin(Recording, Recording.id == CaseItem.recording_id)
        .where(Case.id.in_([c.id for c in cases]), CaseItem.unlinked_at.is_(None))
    )
    keys |= {key for key, item_no, archive_no in rows if item_no in held or archive_no in held}
    return keys


def find_number(session: Session, text: str, *, protected_access: bool) -> Found | None:
    """What a number names; None when it names nothing this account may be led to."""
    case = session.execute(select(Case).where(or_(Case.number == text, Case.case_key == text))).scalar()
    if case is not None:
        return Found(case_key=case.case_key)
    item = session.execute(
        select(CaseItem.item_no, CaseItem.recording_id, CaseItem.document_id).where(CaseItem.item_no == text)
    ).first()
    if item is not None:
        return Found(item_no=item.item_no)  # the item page itself shows a protected one as such
    recording = session.execute(
        select(Recording).where(Recording.archive_no == text, _visible_recordings(protected_access))
    ).scalar()
    if recording is not None:
        linked = session.execute(
            select(CaseItem.item_no)
            .where(CaseItem.recording_id == recording.id, CaseItem.unlinked_at.is_(None))
            .order_by(CaseItem.id.desc())
        ).scalar()
        return Found(item_no=linked) if linked else Found()
    case_ids = set(session.execute(_cases_of_officer(text, protected_access)).scalars())
    case_ids |= set(
        session.execute(
            select(CaseItem.case_id)
            .join(Recording, Recording.id == CaseItem.recording_id)
            .join(Device, Device.id == Recording.device_id)
            .where(
                Device.serial == text, CaseItem.unlinked_at.is_(None), _visible_recordings(protected_access)
            )
        ).scalars()
    )
    if not case_ids:
        return None
    keys = tuple(
        session.execute(
            select(Case.case_key).where(Case.id.in_(case_ids)).order_by(Case.opened_on.desc(), Case.id.desc())
        ).scalars()
    )
    return Found(case_key=keys[0]) if len(keys) == 1 else Found(cases=keys)
