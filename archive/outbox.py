"""Storage records committed together with the catalog change they describe.

A case event or tombstone is first written to the ``outbox`` table in the
same transaction as the change, then copied to storage and removed from the
table. A process killed in between leaves the row, and the next ``flush``
(every command that changes cases runs one) writes it: the catalog and the
store never disagree for longer than until the next run.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from catalog.canonical import canonical_bytes
from catalog.models import OutboxRecord

from .records import put_json
from .store import ObjectStore

log = logging.getLogger(__name__)


def enqueue(
    session: Session, key: str, value: dict[str, Any], *, lock_until: datetime | None, now: datetime
) -> None:
    session.add(
        OutboxRecord(key=key, body=canonical_bytes(value).decode(), lock_until=lock_until, created_at=now)
    )


def flush(sessions: sessionmaker[Session], store: ObjectStore) -> int:
    """Write every pending record to storage; returns how many were written."""
    with sessions() as session:
        pending = session.execute(select(OutboxRecord).order_by(OutboxRecord.id)).scalars().all()
    for record in pending:
        put_json(store, record.key, json.loads(record.body), lock_until=record.lock_until)
        with sessions.begin() as session:
            session.execute(delete(OutboxRecord).where(OutboxRecord.id == record.id))
        log.info("storage record written", extra={"key": record.key})
    return len(pending)
