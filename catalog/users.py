"""Accounts of the web pages: roles, the protected-records grant, scrypt password hashes.

Roles nest: an auditor searches, replays, verifies and exports; a legal reviewer
also links, unlinks and holds; an admin also manages accounts. Access to
protected records (国家秘密、商业秘密、个人隐私) is a separate grant.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .errors import CatalogConflict, InvalidInput, NotFound
from .models import User, WebSession

ROLES = ("auditor", "legal", "admin")
RANK = {role: n for n, role in enumerate(ROLES)}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD = 10
# scrypt at N=2^17, r=8, p=1: 128 MiB and about 0.4 s per try. The cost is a setting
# (``[web] password_cost_log2``, applied by ``set_cost``) so that tests can run cheaper.
COST_LOG2 = 17
MAXMEM = 512 * 1024 * 1024
_dummies: dict[int, str] = {}


def set_cost(log2: int) -> None:
    global COST_LOG2
    COST_LOG2 = log2


def role_allows(role: str, needed: str) -> bool:
    return RANK.get(role, -1) >= RANK[needed]


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, n=2**COST_LOG2, r=8, p=1, maxmem=MAXMEM)
    return (
        f"scrypt${COST_LOG2}$8$1$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()
    )


def needs_rehash(stored: str) -> bool:
    """Whether a hash was made at another cost than today's (upgraded at the next login)."""
    return not stored.startswith(f"scrypt${COST_LOG2}$8$1$")


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, log_n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        found = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            dklen=32,
            n=2 ** int(log_n),
            r=int(r),
            p=int(p),
            maxmem=MAXMEM,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, base64.b64decode(digest))


def _check(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def add_user(
    session: Session, name: str, role: str, password: str, *, protected: bool, now: datetime
) -> User:
    if not NAME.match(name):
        raise InvalidInput(f"{name!r} is not a usable account name", hint="ASCII letters, digits, . _ -")
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}", hint=f"one of {', '.join(ROLES)}")
    if session.execute(select(User).where(User.name == name)).scalar():
        raise CatalogConflict(
            f"account {name} exists already", hint="`evidence user passwd` changes its password"
        )
    user = User(
        name=name,
        role=role,
        password_hash=hash_password(_check(password)),
        protected_access=protected,
        created_at=now,
        password_changed_at=now,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # the same name added by someone else at the same moment
        raise CatalogConflict(f"account {name} exists already") from None
    return user


def get_user(session: Session, name: str) -> User:
    user = session.execute(select(User).where(User.name == name)).scalar()
    if user is None:
        raise NotFound(f"no account is named {name!r}")
    return user


def set_password(session: Session, name: str, password: str, now: datetime) -> User:
    user = get_user(session, name)
    user.password_hash, user.password_changed_at = hash_password(_check(password)), now
    return user


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The account if the password is right and it is enabled. A hash is always computed, at
    today's cost, so a missing or disabled account takes as long as any other."""
    user = session.execute(select(User).where(User.name == name)).scalar()
    if user is None or needs_rehash(user.password_hash):
        if COST_LOG2 not in _dummies:
            _dummies[COST_LOG2] = hash_password("not-a-real-password")
        check_password(password, _dummies[COST_LOG2])
    if user is None:
        return None
    good = check_password(password, user.password_hash)
    if user.disabled or not good:
        return None
    return user


def open_session(session: Session, user: User, now: datetime) -> str:
    """A new web session of ``user``; its id goes into the (signed) cookie."""
    sid = secrets.token_urlsafe(32)
    session.add(WebSession(id=sid, user_id=user.id, created_at=now, last_seen_at=now))
    return sid


def live_session(
    session: Session, sid: str, user_id: int, now: datetime, *, idle: timedelta, lifetime: timedelta
) -> bool:
    """Whether the session still admits (not ended, not idle too long, not too old); its last
    activity is moved to now (at most once a minute, or per tenth of the idle time, to spare
    writes)."""
    row = session.get(WebSession, sid)
    if row is None or row.user_id != user_id or row.ended_at is not None:
        return False
    if now - row.last_seen_at > idle or now - row.created_at > lifetime:
        row.ended_at = now
        return False
    if now - row.last_seen_at > min(timedelta(minutes=1), idle / 10):
        row.last_seen_at = now
    return True


def end_sessions(session: Session, user_id: int, now: datetime, *, sid: str | None = None) -> int:
    """End one session (``sid``) or every open session of the account; how many were ended."""
    query = update(WebSession).where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
    if sid is not None:
        query = query.where(WebSession.id == sid)
    return int(session.execute(query.values(ended_at=now)).rowcount)  # type: ignore[attr-defined]
