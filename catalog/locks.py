"""Leases for jobs that must not run twice at once, held in the catalog.

A lease expires on its own, so a run killed halfway never blocks the next one
for longer than the lease; a live run renews it as it goes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .errors import Refused
from .models import RunLock


def _now() -> datetime:
    return datetime.now(UTC)


def acquire(sessions: sessionmaker[Session], name: str, holder: str, ttl: timedelta) -> None:
    try:
        with sessions.begin() as session:
            row = session.get(RunLock, name, with_for_update=True)
            now = _now()
            if row is None:
                session.add(RunLock(name=name, holder=holder, expires_at=now + ttl))
            elif row.expires_at <= now or row.holder == holder:
                row.holder, row.expires_at = holder, now + ttl
            else:
                raise Refused(
                    f"another {name} run ({row.holder}) is in progress until {row.expires_at.isoformat()}",
                    hint="wait for it to finish; a run that died frees the lock when it expires",
                )
    except IntegrityError:
        raise Refused(f"another {name} run started at the same moment") from None


def release(sessions: sessionmaker[Session], name: str, holder: str) -> None:
    with sessions.begin() as session:
        row = session.get(RunLock, name)
        if row is not None and row.holder == holder:
            session.delete(row)


@contextmanager
def held(
    sessions: sessionmaker[Session], name: str, holder: str, ttl: timedelta = timedelta(hours=2)
) -> Iterator[None]:
    acquire(sessions, name, holder, ttl)
    try:
        yield
    finally:
        release(sessions, name, holder)
