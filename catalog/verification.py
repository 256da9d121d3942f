"""When each stored object was last found intact (``last_verified_at``).

Fixity sweeps, case replays and the item page all re-read stored bytes; each records a
successful check here, the same way. Only checks that found the bytes intact are recorded:
a problem is a custody event, never a change of this date.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from .db import changed_rows
from .errors import InvalidInput
from .models import Derivative, Document, DocumentPage, Recording

BATCH = 500  # rows named in one UPDATE: well under any database's limit on bound parameters


def mark_verified(
    session: Session,
    *,
    at: datetime,
    archive_nos: Iterable[str] = (),
    document_keys: Iterable[str] = (),
    recording_ids: Iterable[int] = (),
    document_ids: Iterable[int] = (),
    derivative_ids: Iterable[int] = (),
    page_ids: Iterable[int] = (),
) -> int:
    """Record that these rows' stored objects were found intact at ``at``.

    Recordings are named by archive number or id, documents by storage key or id,
    derivatives and document pages by id; names that match no row are ignored. Returns the number of rows
    updated. Runs in the caller's transaction.
    """
    if at.tzinfo is None:
        raise InvalidInput("a verification time must carry its offset")
    targets = (
        (Recording, Recording.archive_no, archive_nos),
        (Document, Document.storage_key, document_keys),
        (Recording, Recording.id, recording_ids),
        (Document, Document.id, document_ids),
        (Derivative, Derivative.id, derivative_ids),
        (DocumentPage, DocumentPage.id, page_ids),
    )
    updated = 0
    for model, column, values in targets:
        names = list(dict.fromkeys(values))  # once each, in the order given
        for start in range(0, len(names), BATCH):
            result = session.execute(
                update(model).where(column.in_(names[start : start + BATCH])).values(last_verified_at=at)
            )
            updated += changed_rows(result)
    return updated
