"""KEK rotation: a new key-encryption key, and a new wrap of every data key under it.

Every encrypted object (originals, derivatives, written records, their page images) gets
a wrap object under the new KEK beside the wraps it has; version 1 objects too (their
header, with the wrap made under the KEK of their day, stays as it is: it is authenticated
data). The run is resumable: an object is done once the catalog records its new wrap, and
wraps are deterministic (the same key, binding and KEK give the same bytes), so a run
killed at any point and run again writes what is missing and nothing twice. The new KEK
becomes current first, so objects stored during the run are wrapped under it already.
Each batch is one custody event; when the run ends, the old KEK files can be destroyed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select, union_all, update
from sqlalchemy.orm import Session

from catalog import custody, keys
from catalog.actions import Action
from catalog.models import CustodyEventRow, Derivative, Document, DocumentPage, KeyWrap, Recording

from . import encryption
from .context import ServiceContext
from .errors import ObjectLocked, ObjectMissing
from .key_wraps import mark_superseded, read_object_header, supersede_covered

KEK_PURPOSE = "key-encryption"
ROTATION_PURPOSE = "key-encryption-next"  # the KEK a rotation in progress wraps under
DEFAULT_BATCH = 200


def protected_objects(session: Session) -> list[tuple[str, str | None]]:
    """(storage key, version) of every encrypted object the catalog records (purged ones
    excepted: their objects are gone)."""
    kept = Recording.status != "purged"  # a purged recording's objects are deleted
    parts = [
        select(Recording.storage_key, Recording.storage_version).where(Recording.encrypted.is_(True), kept),
        select(Derivative.storage_key, Derivative.storage_version)
        .join(Recording, Derivative.recording_id == Recording.id)
        .where(Derivative.encrypted.is_(True), Derivative.storage_key.is_not(None), kept),
        select(Document.storage_key, Document.storage_version).where(Document.encrypted.is_(True)),
        select(DocumentPage.storage_key, DocumentPage.storage_version).where(
            DocumentPage.encrypted.is_(True)
        ),
    ]
    rows = session.execute(union_all(*parts)).all()
    return sorted({(str(k), v) for k, v in rows})


def _missing(session: Session, kek_id: str) -> list[tuple[str, str | None]]:
    done = set(session.execute(select(KeyWrap.object_key).where(KeyWrap.kek_id == kek_id)).scalars())
    return [(k, v) for k, v in protected_objects(session) if k not in done]


@dataclass
class RotationResult:
    kek_id: str
    previous: list[str]
    resumed: bool
    rewrapped: int = 0
    batches: int = 0
    total: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "kek_id": self.kek_id,
            "previous": self.previous,
            "resumed": self.resumed,
            "rewrapped": self.rewrapped,
            "batches": self.batches,
            "objects": self.total,
            "failed": [{"key": k, "error": e} for k, e in self.failed],
        }


def start(
    ctx: ServiceContext, make_kek: Callable[[], bytes], now: datetime, *, use: str | None = None
) -> tuple[str, bool]:
    """The KEK this rotation wraps under: the one of a rotation in progress (resumed), else
    ``use`` (a loaded KEK made beforehand and copied to every machine that stores protected
    records), else a new one from ``make_kek`` (which stores its file); made current at once.
    Returns (id, resumed)."""
    with ctx.sessions() as session:
        unfinished = in_progress(session)
    if unfinished:
        if use is not None and use != unfinished:
            raise encryption.EncryptionKeyError(
                f"a rotation to key {unfinished} is unfinished",
                hint="run `evidence keys rotate-kek` without --kek-id to finish it first",
            )
        return unfinished, True
    ring = ctx.kek()
    previous = ring.current
    if use is not None:
        if use not in ring.keks:
            raise encryption.EncryptionKeyError(
                f"key-encryption key {use} is not loaded", hint=f"put {use}.key in the key folder"
            )
        if use == previous:
            raise encryption.EncryptionKeyError(f"key-encryption key {use} is the current one already")
        new = use
    else:
        new = encryption.kek_id(make_kek())
    with ctx.sessions.begin() as session:
        recorded = keys.record_key_id(session, ROTATION_PURPOSE, new, now)
        if recorded != new:  # another rotation started at the same moment: join it
            return recorded, True
        keys.set_key_id(session, KEK_PURPOSE, new, now)
        custody.append(
            session,
            actor=ctx.actor,
            action=Action.KEK_ROTATED,
            subject=None,
            details={"kek_id": new, "previous": previous},
            now=now,
        )
    return new, False


def rewrap_all(
    ctx: ServiceContext,
    kek_id: str,
    *,
    batch: int = DEFAULT_BATCH,
    on_object: Callable[[int, int], None] | None = None,
) -> RotationResult:
    """Write a wrap under ``kek_id`` for every encrypted object that has none yet, in
    batches of ``batch`` (one custody event each); then the rotation is finished."""
    ring = ctx.kek()
    if kek_id not in ring.keks:
        raise encryption.EncryptionKeyError(
            f"the new key-encryption key {kek_id} of the rotation in progress is not loaded",
            hint=f"restore {kek_id}.key into the key folder and run `evidence keys rotate-kek` again",
        )
    new = ring.keks[kek_id]
    wraps = ctx.wraps()
    with ctx.sessions() as session:
        todo = _missing(session, kek_id)
    result = RotationResult(
        kek_id, sorted(k for k in ring.keks if k != kek_id), resumed=False, total=len(todo)
    )
    for first in range(0, len(todo), batch):
        done: list[str] = []
        for key, version in todo[first : first + batch]:
            try:
                header = read_object_header(ctx.store, key, version)
                data_key = encryption.object_data_key(header, ring, key)
                wraps.save(key, kek_id, encryption.make_wrap(new, data_key, header, key))
            except (encryption.DecryptionFailed, encryption.EncryptionKeyError, ObjectMissing) as exc:
                result.failed.append((key, exc.message))
                continue
            done.append(key)
            if on_object is not None:
                on_object(len(done) + result.rewrapped, result.total)
        now = ctx.now()
        with ctx.sessions.begin() as session:
            for key in done:
                mark_superseded(session, key, kek_id, now)
            custody.append(
                session,
                actor=ctx.actor,
                action=Action.KEYS_REWRAPPED,
                subject=None,
                details={
                    "kek_id": kek_id,
                    "objects": len(done),
                    "first": done[0] if done else None,
                    "last": done[-1] if done else None,
                    "failed": len(todo[first : first + batch]) - len(done),
                },
                now=now,
            )
        result.rewrapped += len(done)
        result.batches += 1
    with ctx.sessions.begin() as session:
        supersede_covered(session, kek_id, ctx.now())
    if not result.failed:
        with ctx.sessions.begin() as session:
            if keys.recorded_key_id(session, ROTATION_PURPOSE) == kek_id:
                keys.forget_key_id(session, ROTATION_PURPOSE)
    return result


def restore_current(session: Session, now: datetime) -> str | None:
    """In a catalog rebuilt from storage: record which KEK is current, the one the last
    rotation in the custody chain made current or the one of the newest wrap in storage,
    whichever came later (a rotation after the last checkpoint left wraps, not events), and,
    when that rotation left encrypted objects without a wrap under it, that it is unfinished
    (`evidence keys rotate-kek` finishes it). None, recording nothing, when storage holds no
    trace of either: the key file is then current, as on the first `init`."""
    seen: list[tuple[datetime, str]] = []
    rotated = session.execute(
        select(CustodyEventRow.time, CustodyEventRow.details)
        .where(CustodyEventRow.action == Action.KEK_ROTATED.value)
        .order_by(CustodyEventRow.seq.desc())
        .limit(1)
    ).first()
    rotated_to = None
    if rotated is not None:
        rotated_to = str(json.loads(rotated.details)["kek_id"])
        seen.append((rotated.time, rotated_to))
    wrap = session.execute(
        select(KeyWrap.created_at, KeyWrap.kek_id).order_by(KeyWrap.created_at.desc()).limit(1)
    ).first()
    if wrap is not None:
        seen.append((wrap.created_at, wrap.kek_id))
    if not seen:
        return None
    _, kek_id = max(seen)
    keys.set_key_id(session, KEK_PURPOSE, kek_id, now)
    if kek_id == rotated_to and _missing(session, kek_id):
        keys.record_key_id(session, ROTATION_PURPOSE, kek_id, now)
    return kek_id


def in_progress(session: Session) -> str | None:
    """The KEK of an unfinished rotation, if there is one."""
    return keys.recorded_key_id(session, ROTATION_PURPOSE)


@dataclass
class DeleteResult:
    deleted: list[str] = field(default_factory=list)
    waiting: list[tuple[str, datetime | None]] = field(default_factory=list)  # still locked
    kept: list[tuple[str, str]] = field(default_factory=list)  # not safe to delete

    def to_json(self) -> dict[str, object]:
        return {
            "deleted": self.deleted,
            "waiting": [{"key": k, "retain_until": u.isoformat() if u else None} for k, u in self.waiting],
            "kept": [{"key": k, "why": w} for k, w in self.kept],
        }


def _superseded(session: Session, current: str) -> Iterator[KeyWrap]:
    yield from session.execute(
        select(KeyWrap)
        .where(KeyWrap.superseded_at.is_not(None), KeyWrap.kek_id != current)
        .order_by(KeyWrap.id)
    ).scalars()


def delete_superseded(ctx: ServiceContext, *, confirm: bool) -> DeleteResult:
    """Delete the wraps a rotation superseded, each once its lock has ended and only while
    its object has a wrap under the current KEK for the same header; the catalog's copy
    goes with it. One custody event for the run. Nothing is deleted without ``confirm``."""
    ring = ctx.kek()
    current = ring.current
    now = ctx.now()
    result = DeleteResult()
    with ctx.sessions() as session:
        rows = list(_superseded(session, current))
        good = {
            (key, binding)
            for key, binding in session.execute(
                select(KeyWrap.object_key, KeyWrap.binding).where(KeyWrap.kek_id == current)
            )
        }
    for row in rows:
        if (row.object_key, row.binding) not in good:
            result.kept.append((row.storage_key, f"no wrap under the current key {current} for this object"))
            continue
        if row.retain_until is not None and row.retain_until > now:
            result.waiting.append((row.storage_key, row.retain_until))
            continue
        if not confirm:
            result.deleted.append(row.storage_key)
            continue
        try:
            ctx.store.delete(row.storage_key, row.storage_version)
        except ObjectLocked:
            result.waiting.append((row.storage_key, row.retain_until))
            continue
        except ObjectMissing:
            pass  # deleted by a run that died before its catalog change
        with ctx.sessions.begin() as session:
            session.execute(delete(KeyWrap).where(KeyWrap.id == row.id))
        result.deleted.append(row.storage_key)
    if confirm and (result.deleted or result.waiting or result.kept):
        with ctx.sessions.begin() as session:
            custody.append(
                session,
                actor=ctx.actor,
                action=Action.KEY_WRAPS_DELETED,
                subject=None,
                details={
                    "current": current,
                    "deleted": len(result.deleted),
                    "waiting": len(result.waiting),
                    "kept": len(result.kept),
                },
                now=now,
            )
    return result


def renew_locks(ctx: ServiceContext) -> list[str]:
    """Extend the lock of every wrap not superseded whose lock ends within half of
    ``wrap_lock`` to ``wrap_lock`` from now (run nightly: a current wrap must outlive any
    gap between runs). Superseded wraps are left to expire. Returns the wrap keys renewed."""
    now = ctx.now()
    until = now + ctx.wrap_lock
    renewed: list[str] = []
    with ctx.sessions() as session:
        due = list(
            session.execute(
                select(KeyWrap).where(
                    KeyWrap.superseded_at.is_(None),
                    (KeyWrap.retain_until.is_(None)) | (KeyWrap.retain_until < now + ctx.wrap_lock / 2),
                )
            ).scalars()
        )
    for row in due:
        kept = ctx.store.extend_retention(row.storage_key, row.storage_version, until)
        with ctx.sessions.begin() as session:
            session.execute(update(KeyWrap).where(KeyWrap.id == row.id).values(retain_until=kept.until))
        renewed.append(row.storage_key)
    return renewed
