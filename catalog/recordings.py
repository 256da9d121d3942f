"""Recordings in the catalog: numbers, look-ups, and the people and devices they name."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from . import sequences
from .db import insert_missing
from .errors import InvalidInput, NotFound
from .models import Device, DeviceAssignment, Officer, Recording, Station
from .numbering import NumberingFormats, local_day


def reserve_archive_number(
    engine: Engine, formats: NumberingFormats, zone: ZoneInfo, *, unit: str, station: str, now: datetime
) -> str:
    """Draw the next archive number of the register day (committed at once, never reused)."""
    day = local_day(now, zone)
    seq = sequences.allocate(engine, formats.archive_scope(unit, day, station))
    return formats.format_archive_number(unit, day, station, seq)


def find_by_sha256(session: Session, sha256: str) -> Recording | None:
    """An archived (not purged) recording with this content, if any."""
    return (
        session.execute(
            select(Recording)
            .where(Recording.sha256 == sha256, Recording.status != "purged")
            .order_by(Recording.id)
        )
        .scalars()
        .first()
    )


def get_recording(session: Session, archive_no: str) -> Recording:
    found = session.execute(select(Recording).where(Recording.archive_no == archive_no)).scalar()
    if found is None:
        raise NotFound(
            f"no recording has archive number {archive_no!r}", hint="`evidence recordings list` shows them"
        )
    return found


def station_row(session: Session, station_id: str, unit: str, now: datetime) -> Station:
    """The station's row, created if new (safe while other workers create it too)."""
    row = session.get(Station, station_id)
    if row is None:
        insert_missing(
            session, Station.__table__, {"id": station_id, "unit": unit, "created_at": now}, ["id"]
        )
        row = session.get(Station, station_id)
    assert row is not None, "a station row inserted or found a moment ago"
    return row


def device_row(session: Session, serial: str) -> Device:
    return _get_or_insert(session, Device, "serial", serial)


def officer_row(session: Session, number: str) -> Officer:
    return _get_or_insert(session, Officer, "number", number)


_Named = TypeVar("_Named", Device, Officer)


def _get_or_insert(session: Session, model: type[_Named], key: str, value: str) -> _Named:
    column = getattr(model, key)
    row = session.execute(select(model).where(column == value)).scalar()
    if row is None:
        insert_missing(session, model.__table__, {key: value}, [key])
        row = session.execute(select(model).where(column == value)).scalar_one()
    return row


def assign_device(
    session: Session, serial: str, officer: str, *, valid_from: datetime, valid_to: datetime | None = None
) -> DeviceAssignment:
    """Record that ``officer`` carried ``serial`` from ``valid_from`` (until ``valid_to``).

    An open assignment of the same device is closed where the new one starts, so a
    device is in one officer's hands at a time.
    """
    if valid_to is not None and valid_to <= valid_from:
        raise InvalidInput("an assignment must end after it starts")
    device, person = device_row(session, serial), officer_row(session, officer)
    for current in session.execute(
        select(DeviceAssignment).where(
            DeviceAssignment.device_id == device.id,
            DeviceAssignment.valid_to.is_(None),
            DeviceAssignment.valid_from < valid_from,
        )
    ).scalars():
        current.valid_to = valid_from
    row = DeviceAssignment(
        device_id=device.id, officer_id=person.id, valid_from=valid_from, valid_to=valid_to
    )
    session.add(row)
    session.flush()
    return row
