"""Accounts and recorders: catalog changes that are custody events like any other."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from catalog import custody
from catalog.actions import Action
from catalog.errors import Refused
from catalog.models import User
from catalog.recordings import assign_device as record_assignment
from catalog.times import local_iso
from catalog.users import add_user, set_password

from .context import ServiceContext


def add_account(
    ctx: ServiceContext, name: str, role: str, password: str, *, protected: bool, by: User | None
) -> User:
    """Add a web account; the custody event names its role and grant (never the password).

    ``by`` is the account acting (a web administrator), or None for the machine's administrator
    at the command line. Only a holder of the protected grant may give it: otherwise an
    administrator without it could make an account to read protected records through.
    """
    if protected and by is not None and not by.protected_access:
        raise Refused(
            f"{by.name} may not give the protected grant without holding it",
            hint="add the account without it, or ask an administrator who holds the grant",
        )
    with ctx.sessions.begin() as session:
        user = add_user(session, name, role, password, protected=protected, now=ctx.now())
        custody.append(
            session,
            actor=ctx.actor,
            action=Action.USER_ADDED,
            subject=f"user:{name}",
            details={"role": role, "protected": protected},
        )
    return user


def change_password(ctx: ServiceContext, name: str, password: str) -> None:
    """Set an account's password; its open sessions end (they carry the change time)."""
    with ctx.sessions.begin() as session:
        set_password(session, name, password, ctx.now())
        custody.append(session, actor=ctx.actor, action=Action.PASSWORD_CHANGED, subject=f"user:{name}")


def assign_device(
    ctx: ServiceContext,
    serial: str,
    officer: str,
    *,
    valid_from: datetime,
    valid_to: datetime | None,
    zone: ZoneInfo,
) -> None:
    """Record who carries a recorder from when (recordings without an officer in their
    names get theirs from this); times in the event are written in ``zone``."""
    with ctx.sessions.begin() as session:
        record_assignment(session, serial, officer, valid_from=valid_from, valid_to=valid_to)
        custody.append(
            session,
            actor=ctx.actor,
            action=Action.DEVICE_ASSIGNED,
            subject=serial,
            details={
                "officer": officer,
                "from": local_iso(valid_from, zone),
                "to": local_iso(valid_to, zone),
            },
        )
