"""Reservations of content being archived: one owner at a time per digest, across processes.

Two stations docking the same file at once would otherwise both find no recording with its
digest and both store it (on S3 neither copy could be removed). Before it looks for a twin,
the pipeline reserves the digest here:

- the owner renews its lease while it works (``kept``: a heartbeat thread), so a
  reservation lasts exactly as long as a live owner;
- the row is deleted in the transaction that commits the recording (``Lease.confirm``),
  so there is never a moment with neither a reservation nor a recording; a failure
  releases it;
- a killed owner's reservation lapses when its lease ends, or at once when the owner
  ran on this host and its process is gone; whoever reserves next takes it over;
- an owner that stalled past its lease (and was taken over) finds out before it stores
  (``Lease.check``) and again when it commits (``ReservationLost``), never silently.

Leases run on each host's own clock (UTC); hosts are expected to keep time within a small
part of the lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import cast

from sqlalchemy import Table, delete, select, text, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from .db import changed_rows, insert_missing
from .errors import EvidenceError
from .models import DigestReservation

log = logging.getLogger("evidence.ingest")

LEASE = timedelta(minutes=2)
_TABLE = cast(Table, DigestReservation.__table__)


class ReservationLost(EvidenceError):
    """This owner stalled past its lease and another one took the content over."""

    exit_code = 1


@dataclass(frozen=True)
class Reservation:
    sha256: str
    owner: str
    lease: timedelta


@dataclass(frozen=True)
class Holder:
    """Who holds a digest another owner asked for (empty when it could not be read)."""

    station: str
    owner: str
    expires_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


@cache
def this_host() -> str:
    """The host as far as process ids mean anything: name, boot and pid namespace."""
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8])
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        parts.append("?")  # without them no process on this host is ever judged gone
    return "/".join(parts)[:200]


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (None: no such process, or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) "
    return None if fields[0] in ("Z", "X") else fields[19]


def this_process() -> str:
    return f"{os.getpid()}:{_start_time(os.getpid()) or '?'}"


def _gone(host: str, process: str) -> bool:
    """True only when the owner certainly ran here and has ended (a reused pid has another
    start time); anything uncertain counts as alive, and the lease decides."""
    if host != this_host() or host.endswith("/?"):
        return False
    pid, _, started = process.partition(":")
    if started == "?" or not pid.isdigit():
        return False
    return _start_time(int(pid)) != started


# Owners at work in this process: a row of this process whose owner is not among them
# was left behind (its release failed) and is taken over at once.
_working: set[str] = set()
_working_guard = threading.Lock()


def reserve(
    sessions: sessionmaker[Session], sha256: str, *, station: str, lease: timedelta = LEASE
) -> Reservation | Holder:
    """Take the digest for this process, or say who holds it. The caller keeps it with
    ``kept`` (which releases it), or releases it."""
    mine = Reservation(
        sha256, f"{station}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}", lease
    )
    try:
        return _reserve(sessions, mine, station)
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_timeout: the holder is at work
            return Holder("", "", _now())
        raise


def _reserve(sessions: sessionmaker[Session], mine: Reservation, station: str) -> Reservation | Holder:
    sha256, lease = mine.sha256, mine.lease
    host, process = this_host(), this_process()
    with sessions.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            # A holder frozen in the middle of a renewal must not hang this station as well.
            session.execute(text("SET LOCAL lock_timeout = '5s'"))
        for _ in range(3):  # a row released between our insert and our look is simply retried
            now = _now()
            values = {
                "owner": mine.owner,
                "station": station,
                "host": host,
                "process": process,
                "taken_at": now,
                "expires_at": now + lease,
            }
            if insert_missing(session, _TABLE, {"sha256": sha256, **values}, ["sha256"]):
                return _working_on(mine)
            row = session.execute(
                select(_TABLE).where(_TABLE.c.sha256 == sha256).with_for_update()
            ).one_or_none()
            if row is None:
                continue
            with _working_guard:
                left_here = (row.host, row.process) == (host, process) and row.owner not in _working
            why = (
                "its lease ended"
                if row.expires_at <= now
                else "left behind by this process"
                if left_here
                else "its process is gone"
                if _gone(row.host, row.process)
                else None
            )
            if why is not None:
                session.execute(update(_TABLE).where(_TABLE.c.sha256 == sha256).values(**values))
                log.warning(
                    "content reservation taken over",
                    extra={"sha256": sha256, "station": station, "previous_owner": row.owner, "why": why},
                )
                return _working_on(mine)
            return Holder(row.station, row.owner, row.expires_at)
    return Holder("", "", _now())


def _working_on(reservation: Reservation) -> Reservation:
    with _working_guard:
        _working.add(reservation.owner)
    return reservation


def renew(sessions: sessionmaker[Session], reservation: Reservation) -> bool:
    """Extend the lease; False when the reservation is no longer this owner's."""
    with sessions.begin() as session:
        return (
            changed_rows(
                session.execute(
                    update(_TABLE)
                    .where(_TABLE.c.sha256 == reservation.sha256, _TABLE.c.owner == reservation.owner)
                    .values(expires_at=_now() + reservation.lease)
                )
            )
            == 1
        )


def release(sessions: sessionmaker[Session], reservation: Reservation) -> None:
    try:
        with sessions.begin() as session:
            session.execute(
                delete(_TABLE).where(
                    _TABLE.c.sha256 == reservation.sha256, _TABLE.c.owner == reservation.owner
                )
            )
    finally:
        with _working_guard:
            _working.discard(reservation.owner)


def confirm(session: Session, reservation: Reservation) -> None:
    """In the transaction that commits the recording: end the reservation, or refuse the
    commit when another owner took it over (it may be storing the same content)."""
    gone = changed_rows(
        session.execute(
            delete(_TABLE).where(_TABLE.c.sha256 == reservation.sha256, _TABLE.c.owner == reservation.owner)
        )
    )
    if gone != 1:
        raise ReservationLost(_lost(reservation))


def _lost(reservation: Reservation) -> str:
    return (
        f"stalled past its reservation lease ({reservation.lease.total_seconds():.0f} s) and "
        "another station took over the same content; retried on the next pass"
    )


class Lease:
    """A reservation kept alive by a heartbeat while its owner works."""

    def __init__(self, sessions: sessionmaker[Session], reservation: Reservation) -> None:
        self.sessions, self.reservation = sessions, reservation
        self.lost = threading.Event()
        self._stop = threading.Event()

    def _beat(self) -> None:
        every = self.reservation.lease.total_seconds() / 4
        while not self._stop.wait(every):
            try:
                if not renew(self.sessions, self.reservation):
                    self.lost.set()
                    log.error(
                        "content reservation lost while working", extra={"sha256": self.reservation.sha256}
                    )
                    return
            except SQLAlchemyError as exc:  # the catalog may be back before the lease ends
                log.warning(
                    "content reservation not renewed",
                    extra={"sha256": self.reservation.sha256, "reason": str(getattr(exc, "orig", exc))},
                )

    def check(self) -> None:
        """Right before storing: still this owner's (and renewed), or ``ReservationLost``."""
        if self.lost.is_set() or not renew(self.sessions, self.reservation):
            self.lost.set()
            raise ReservationLost(_lost(self.reservation))

    def confirm(self, session: Session) -> None:
        confirm(session, self.reservation)


@contextmanager
def kept(sessions: sessionmaker[Session], reservation: Reservation) -> Iterator[Lease]:
    """Renew the reservation while the block runs; release it afterwards (a no-op once
    ``confirm`` ended it with the recording's commit)."""
    lease = Lease(sessions, reservation)
    beat = threading.Thread(target=lease._beat, name=f"lease-{reservation.sha256[:12]}", daemon=True)
    beat.start()
    try:
        yield lease
    finally:
        lease._stop.set()
        beat.join()
        try:
            release(sessions, reservation)
        except SQLAlchemyError as exc:  # it lapses with its lease
            log.warning(
                "content reservation not released",
                extra={"sha256": reservation.sha256, "reason": str(getattr(exc, "orig", exc))},
            )
