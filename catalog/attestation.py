"""The custody v2 upgrade's ``attested`` events: recordings and documents from before v2.

A package binds its payload to the chain through digests in v2 events. A recording or
document ingested before v2 has only v1 events, whose links a package cannot recompute; one
v2 ``attested`` event per such item (its number, SHA-256, size, SM3 when known) binds it to
v2 links. Appended by ``evidence init`` after the migration, once: an item that already has
a v2 ``ingested``, ``document_added`` or ``attested`` event is left alone, so running it again
appends nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import custody
from .actions import Action
from .models import CaseItem, CustodyEventRow, Document, Recording

BINDING_ACTIONS = (Action.INGESTED.value, Action.DOCUMENT_ADDED.value, Action.ATTESTED.value)


def attest_pre_v2(session: Session, *, actor: str, now: datetime) -> int:
    """Append the missing ``attested`` events in the session's transaction; returns how many."""
    bound = set(
        session.execute(
            select(CustodyEventRow.subject)
            .where(CustodyEventRow.v == 2, CustodyEventRow.action.in_(BINDING_ACTIONS))
            .distinct()
        ).scalars()
    )
    added = 0
    recordings = session.execute(
        select(Recording.archive_no, Recording.sha256, Recording.sm3, Recording.size)
        .where(Recording.status != "purged")
        .order_by(Recording.id)
    )
    for archive_no, sha256, sm3, size in recordings:
        if archive_no in bound:
            continue
        details = {"archive_no": archive_no, "sha256": sha256, "size": size} | ({"sm3": sm3} if sm3 else {})
        custody.append(
            session, actor=actor, action=Action.ATTESTED, subject=archive_no, details=details, now=now
        )
        added += 1
    documents = session.execute(
        select(CaseItem.item_no, Document.sha256, Document.sm3, Document.size)
        .join(Document, CaseItem.document_id == Document.id)
        .order_by(Document.id)
    )
    for item_no, sha256, sm3, size in documents:
        if item_no in bound:
            continue
        details = {"item_no": item_no, "sha256": sha256, "size": size} | ({"sm3": sm3} if sm3 else {})
        custody.append(
            session, actor=actor, action=Action.ATTESTED, subject=item_no, details=details, now=now
        )
        added += 1
    return added
