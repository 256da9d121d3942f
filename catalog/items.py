"""Case items: the shared item number (共同编号) a record gets when it joins a case."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from . import sequences
from .models import Case, CaseItem
from .numbering import NumberingFormats


def draw_item_number(engine: Engine, formats: NumberingFormats, case_key: str, kind: str) -> tuple[int, str]:
    """The case's next item number (committed at once: a failure later leaves a gap)."""
    seq = sequences.allocate(engine, formats.item_scope(case_key))
    return seq, formats.format_item_number(case_key, seq, kind)


def active_link(session: Session, case: Case, recording_id: int) -> CaseItem | None:
    return (
        session.execute(
            select(CaseItem).where(
                CaseItem.case_id == case.id,
                CaseItem.recording_id == recording_id,
                CaseItem.unlinked_at.is_(None),
            )
        )
        .scalars()
        .first()
    )


def add_item(
    session: Session,
    case: Case,
    *,
    seq: int,
    item_no: str,
    kind: str,
    actor: str,
    now: datetime,
    recording_id: int | None = None,
    document_id: int | None = None,
) -> CaseItem:
    item = CaseItem(
        case_id=case.id,
        item_no=item_no,
        seq=seq,
        kind=kind,
        recording_id=recording_id,
        document_id=document_id,
        linked_at=now,
        linked_by=actor,
    )
    session.add(item)
    session.flush()
    return item


def items_of(session: Session, case: Case, *, include_unlinked: bool = False) -> list[CaseItem]:
    query = select(CaseItem).where(CaseItem.case_id == case.id).order_by(CaseItem.seq)
    if not include_unlinked:
        query = query.where(CaseItem.unlinked_at.is_(None))
    return list(session.execute(query).scalars())
