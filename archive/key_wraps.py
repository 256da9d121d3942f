"""Wrap objects: each data key wrapped under each KEK, kept apart from the encrypted object.

A version 2 object's data key exists only in its wraps (``archive.encryption`` documents
both formats), so the first wrap is stored and recorded before a byte of the object is:
an object whose wrap was lost could never be read. Each wrap is an object of its own,
``keys/wraps/{object key}/{KEK id}``, locked for ``wrap_lock`` (a rolling lock, so that a
wrap superseded by a KEK rotation can be deleted once it ends), with its version pinned
and a copy of its bytes in the catalog (``key_wraps``). Readers take the catalog's copy;
the catalog rebuild restores the copies from storage, refusing a wrap that is damaged or
belongs to another object.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from catalog.db import changed_rows, insert_missing
from catalog.models import KeyWrap

from . import encryption
from .errors import ObjectExists, ObjectMissing
from .store import ObjectInfo, ObjectStore

WRAP_FOLDER = "keys/wraps/"
DEFAULT_WRAP_LOCK = timedelta(days=365)


def wrap_key(object_key: str, kek_id: str) -> str:
    return f"{WRAP_FOLDER}{object_key}/{kek_id}"


def parse_wrap_key(key: str) -> tuple[str, str] | None:
    """(object key, KEK id) of a wrap object's key, or None if it is not one."""
    if not key.startswith(WRAP_FOLDER):
        return None
    object_key, _, last = key[len(WRAP_FOLDER) :].rpartition("/")
    kid = last.split(".", 1)[0]
    if not object_key or len(kid) != 16 or any(c not in "0123456789abcdef" for c in kid):
        return None
    return object_key, kid


@dataclass(frozen=True)
class CatalogWraps:
    """Where wraps are kept: storage (the wrap objects) and the catalog (their copies)."""

    sessions: sessionmaker[Session]
    store: ObjectStore
    clock: Callable[[], datetime]
    lock: timedelta = DEFAULT_WRAP_LOCK

    def now(self) -> datetime:
        return self.clock()

    def lookup(self, object_key: str) -> list[bytes]:
        """The catalog's copies of every wrap of ``object_key``, newest first."""
        with self.sessions() as session:
            rows = session.execute(
                select(KeyWrap.wrap).where(KeyWrap.object_key == object_key).order_by(KeyWrap.id.desc())
            ).scalars()
            return [bytes(r) for r in rows]

    def save(self, object_key: str, kek_id: str, wrap: bytes) -> None:
        """Store ``wrap`` and record it (object first: a copy in the catalog always has its
        object). Storing the same wrap again (a resumed rotation) records it once."""
        parsed = encryption.parse_wrap(wrap)
        key = wrap_key(object_key, kek_id)
        now = self.now()
        until = now + self.lock
        put = None
        # The local store writes a key once: an earlier attempt at storing the object (or this
        # wrap, when a rotation resumes) may hold the name. Same bytes: it is this wrap; else
        # the name with the wrap's binding, which only this very wrap can hold.
        for candidate in (key, f"{key}.{parsed.binding.hex()}"):
            key = candidate
            try:
                put = self.store.put(
                    key,
                    io.BytesIO(wrap),
                    content_type="application/octet-stream",
                    metadata={},
                    retain_until=until,
                )
                break
            except ObjectExists:
                if _stored_bytes(self.store, key) == wrap:
                    break
        version = put.version if put is not None else self.store.stat(key).version
        row = {
            "object_key": object_key,
            "kek_id": kek_id,
            "binding": parsed.binding.hex(),
            "storage_key": key,
            "storage_version": version,
            "wrap": wrap,
            "created_at": now,
            "retain_until": until,
            "superseded_at": None,
        }
        with self.sessions.begin() as session:
            insert_missing(session, KeyWrap.__table__, row, ["storage_key", "binding"])

    def ring(
        self, keks: Iterable[bytes] | dict[str, bytes], current: str | None = None
    ) -> encryption.Keyring:
        keys = dict(keks) if isinstance(keks, dict) else {encryption.kek_id(k): k for k in keks}
        if not keys:
            raise encryption.EncryptionKeyError(
                "no key-encryption key is loaded", hint="check [encryption] in the settings"
            )
        return encryption.Keyring(
            keys,
            current or next(iter(keys)),
            wraps=self.lookup,
            save=self.save,
        )


def _stored_bytes(store: ObjectStore, key: str) -> bytes | None:
    try:
        return b"".join(store.read(key))
    except ObjectMissing:
        return None


def check_stored_wrap(
    store: ObjectStore, key: str, version: str | None, header: encryption.EnvelopeHeader, object_key: str
) -> encryption.Wrap:
    """Read a wrap object and refuse it unless it is a wrap of ``object_key``'s data key
    (structure and binding: no key is needed, so a rebuild checks every wrap it restores)."""
    raw = b"".join(store.read(key, version))
    wrap = encryption.parse_wrap(raw, where=f"wrap object {key}")
    encryption.check_wrap_belongs(wrap, header, object_key, where=f"wrap object {key}")
    return wrap


def read_object_header(store: ObjectStore, key: str, version: str | None) -> encryption.EnvelopeHeader:
    return encryption.read_header(
        b"".join(store.read(key, version, start=0, length=encryption.MAX_HEADER_SIZE))
    )


def mark_superseded(session: Session, object_key: str, current: str, now: datetime) -> int:
    """Every wrap of ``object_key`` under another KEK than ``current`` is superseded now."""
    result = session.execute(
        update(KeyWrap)
        .where(KeyWrap.object_key == object_key, KeyWrap.kek_id != current, KeyWrap.superseded_at.is_(None))
        .values(superseded_at=now)
    )
    return changed_rows(result)


def supersede_covered(session: Session, current: str, now: datetime) -> int:
    """Every wrap under another KEK of an object that has a wrap under ``current`` is
    superseded now (catches objects whose batch died between their new wrap and its mark)."""
    covered = select(KeyWrap.object_key).where(KeyWrap.kek_id == current).scalar_subquery()
    result = session.execute(
        update(KeyWrap)
        .where(KeyWrap.kek_id != current, KeyWrap.superseded_at.is_(None), KeyWrap.object_key.in_(covered))
        .values(superseded_at=now)
        .execution_options(synchronize_session=False)
    )
    return changed_rows(result)


def restore_rows(store: ObjectStore, session: Session) -> tuple[int, list[str]]:
    """The catalog's copies of the wraps, from storage (the catalog rebuild): every wrap
    object is checked against the header of the object it names and refused (listed as a
    problem, not restored) if it is no wrap or belongs to another object. Of an object's
    wraps for the same header, the newest is current and the older ones superseded.
    Returns (rows restored, problems)."""
    problems: list[str] = []
    found: list[tuple[str, str, ObjectInfo, datetime, bytes, str]] = []
    headers: dict[str, encryption.EnvelopeHeader] = {}  # an object's header, read once for its wraps
    for info in store.list(WRAP_FOLDER):
        parsed = parse_wrap_key(info.key)
        if parsed is None:
            problems.append(f"{info.key}: not a key wrap's name")
            continue
        object_key, kid = parsed
        try:
            if object_key not in headers:
                headers[object_key] = read_object_header(store, object_key, None)
            wrap = check_stored_wrap(store, info.key, info.version, headers[object_key], object_key)
        except (encryption.DecryptionFailed, ObjectMissing) as exc:
            problems.append(f"{info.key}: {exc.message}")
            continue
        if wrap.kek_id != kid:
            problems.append(f"{info.key}: holds a wrap made with key {wrap.kek_id}, not {kid}")
            continue
        when = info.last_modified or datetime.min.replace(tzinfo=UTC)
        found.append((object_key, kid, info, when, wrap.raw, wrap.binding.hex()))
    newest: dict[tuple[str, str], datetime] = {}
    for object_key, _kid, _info, when, _raw, bound in found:
        newest[(object_key, bound)] = max(when, newest.get((object_key, bound), when))
    for object_key, kid, info, when, raw, bound in found:
        insert_missing(
            session,
            KeyWrap.__table__,
            {
                "object_key": object_key,
                "kek_id": kid,
                "binding": bound,
                "storage_key": info.key,
                "storage_version": info.version,
                "wrap": raw,
                "created_at": when,
                "retain_until": info.retention.until if info.retention else None,
                "superseded_at": None if when >= newest[(object_key, bound)] else newest[(object_key, bound)],
            },
            ["storage_key", "binding"],
        )
    return len(found), problems


@dataclass(frozen=True)
class WrapProblem:
    """A disagreement between a wrap the catalog records and storage."""

    subject: str  # the storage key it is about: the wrap's, or the object's it names
    problem: str  # "missing" or "mismatch", as the fixity sweep names them
    message: str  # what is wrong, in words


def wrap_problems(sessions: sessionmaker[Session], store: ObjectStore) -> tuple[int, list[WrapProblem]]:
    """Every wrap the catalog records against storage: its pinned version must hold the
    catalog's copy byte for byte and be bound to the object it names (no key needed).
    Returns (wraps checked, problems)."""
    problems: list[WrapProblem] = []
    with sessions() as session:
        rows = list(session.execute(select(KeyWrap).order_by(KeyWrap.id)).scalars())
    headers: dict[str, encryption.EnvelopeHeader | None] = {}
    for row in rows:
        if row.object_key not in headers:
            try:
                headers[row.object_key] = read_object_header(store, row.object_key, None)
            except (encryption.DecryptionFailed, ObjectMissing) as exc:
                headers[row.object_key] = None
                missing = isinstance(exc, ObjectMissing)
                problems.append(
                    WrapProblem(
                        row.object_key,
                        "missing" if missing else "mismatch",
                        f"{row.object_key}: {exc.message}",
                    )
                )
        try:
            stored = b"".join(store.read(row.storage_key, row.storage_version))
        except ObjectMissing:
            problems.append(
                WrapProblem(
                    row.storage_key,
                    "missing",
                    f"{row.storage_key}: the wrap object is missing (the catalog keeps a copy)",
                )
            )
            continue
        if stored != bytes(row.wrap):
            problems.append(
                WrapProblem(
                    row.storage_key,
                    "mismatch",
                    f"{row.storage_key}: the stored wrap differs from the catalog's copy",
                )
            )
        header = headers[row.object_key]
        if header is None:
            continue
        for what, raw in (("stored wrap", stored), ("catalog's copy", bytes(row.wrap))):
            try:
                wrap = encryption.parse_wrap(raw, where=f"{what} {row.storage_key}")
                encryption.check_wrap_belongs(wrap, header, row.object_key, where=f"{what} {row.storage_key}")
            except encryption.WrapRefused as exc:
                if exc.message not in (p.message for p in problems):
                    problems.append(WrapProblem(row.storage_key, "mismatch", exc.message))
    return len(rows), problems


def check_all(sessions: sessionmaker[Session], store: ObjectStore) -> tuple[int, list[str]]:
    """``wrap_problems`` in words (`evidence keys check`)."""
    checked, problems = wrap_problems(sessions, store)
    return checked, [p.message for p in problems]
