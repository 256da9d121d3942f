"""Legal holds in the catalog: what a subject names, and what is held."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import cases
from .errors import NotFound
from .models import Case, CaseItem, Document, Hold, Recording

_Linked = TypeVar("_Linked", Recording, Document)


@dataclass(frozen=True)
class Held:
    """A subject resolved to the records (and so the stored objects) it covers."""

    subject: str  # canonical: archive number, item number or case key
    case: Case | None
    recordings: tuple[Recording, ...]
    documents: tuple[Document, ...]

    def objects(self) -> set[tuple[str, str | None]]:
        found: set[tuple[str, str | None]] = set()
        for r in self.recordings:
            found.add((r.storage_key, r.storage_version))
            if r.manifest_key:
                found.add((r.manifest_key, None))
        for d in self.documents:
            found.add((d.storage_key, d.storage_version))
            if d.manifest_key:
                found.add((d.manifest_key, None))
        return found


def resolve(session: Session, subject: str) -> Held:
    """An archive number, an item number, or a case (its bureau number or key)."""
    recording = session.execute(select(Recording).where(Recording.archive_no == subject)).scalar()
    if recording is not None:
        return Held(recording.archive_no, None, (recording,), ())
    item = session.execute(select(CaseItem).where(CaseItem.item_no == subject)).scalar()
    if item is not None:
        if item.recording_id is not None:
            return Held(item.item_no, None, (_linked(session, Recording, item.recording_id),), ())
        return Held(item.item_no, None, (), (_linked(session, Document, item.document_id),))
    case = cases.find_case(session, subject)
    if case is None:
        raise NotFound(
            f"{subject!r} names no recording, item or case",
            hint="give an archive number, an item number, or a case number or key",
        )
    linked = (
        session.execute(select(CaseItem).where(CaseItem.case_id == case.id, CaseItem.unlinked_at.is_(None)))
        .scalars()
        .all()
    )
    return Held(
        case.case_key,
        case,
        tuple(_linked(session, Recording, i.recording_id) for i in linked if i.recording_id),
        tuple(_linked(session, Document, i.document_id) for i in linked if i.document_id),
    )


def _linked(session: Session, model: type[_Linked], id_: int | None) -> _Linked:
    """The recording or document a case item links (its foreign key guarantees one)."""
    row = session.get(model, id_)
    assert row is not None, f"a case item links {model.__name__} {id_}, which the catalog lacks"
    return row


def active_holds(session: Session, subject: str | None = None) -> list[Hold]:
    query = select(Hold).where(Hold.released_at.is_(None)).order_by(Hold.id)
    if subject is not None:
        query = query.where(Hold.subject == subject)
    return list(session.execute(query).scalars())


def held_objects(
    session: Session, *, excluding: AbstractSet[int] = frozenset()
) -> set[tuple[str, str | None]]:
    """Every stored object some active hold (other than ``excluding``) covers."""
    found: set[tuple[str, str | None]] = set()
    for hold in active_holds(session):
        if hold.id not in excluding:
            found |= resolve(session, hold.subject).objects()
    return found
