"""Storing an original recording: bytes, manifest, catalog row and custody events.

Steps 3-5 of the ingest flow. The caller hashed the file first (step 2) and
reserved the archive number (step 3, committed at once). Here the bytes are
streamed to the store while being hashed again; the store is told to commit
them only if they give the step-2 digest, and proves receipt; then the
manifest goes beside them; then one catalog transaction records the
recording with its custody events. A crash anywhere before that commit leaves
the station copy untouched, and the retry (with the same archive number)
finds what was already stored and completes the remaining steps.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy.orm import Session

from catalog import custody
from catalog.actions import Action
from catalog.canonical import format_instant
from catalog.errors import InvalidInput
from catalog.models import Recording
from catalog.numbering import local_day
from catalog.recordings import device_row, officer_row, station_row

from .context import ServiceContext
from .digest import Digests, Hasher
from .errors import ObjectExists, ObjectMissing, ReceiptMismatch, StoreError
from .files import Source, encryption_note, put_file
from .layout import extension, manifest_key, original_key
from .local_store import LocalStore, Staged
from .records import put_json
from .retention import counted_from, lock_until
from .store import ObjectStore, PutResult


@dataclass(frozen=True)
class OriginalFacts:
    """What is known about a recording at ingest, each value with its source."""

    station: str
    unit: str
    kind: Literal["video", "audio", "photo"]
    original_name: str
    content_type: str = "application/octet-stream"
    start_time: datetime | None = None
    duration_s: float | None = None
    device: str | None = None
    officer: str | None = None
    important: bool = False
    protected: bool = False
    damaged: bool = False
    damage_reason: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    media_info: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


def manifest(
    archive_no: str,
    facts: OriginalFacts,
    digests: Digests,
    stored: PutResult,
    *,
    encrypted: dict[str, str] | None,
    retain_until: datetime,
    ingested_at: datetime,
) -> dict[str, Any]:
    """The self-describing record stored beside an original (a catalog can be rebuilt from it)."""
    return {
        "v": 1,
        "type": "original",
        "archive_no": archive_no,
        "kind": facts.kind,
        "sha256": digests.sha256,
        "sm3": digests.sm3,
        "size": digests.size,
        "original_name": facts.original_name,
        "content_type": facts.content_type,
        "station": facts.station,
        "unit": facts.unit,
        "device": facts.device,
        "officer": facts.officer,
        "start_time": format_instant(facts.start_time) if facts.start_time else None,
        "duration_s": facts.duration_s,
        "ingested_at": format_instant(ingested_at),
        "important": facts.important,
        "protected": facts.protected,
        "damaged": facts.damaged,
        "damage_reason": facts.damage_reason,
        "flags": facts.flags,
        "media": facts.media_info,
        "sources": facts.sources,
        "encryption": encrypted,
        "stored": {"key": stored.key, "sha256": stored.digests.sha256, "size": stored.digests.size},
        "retain_until": format_instant(retain_until),
    }


def _adopt(store: ObjectStore, key: str, digests: Digests) -> PutResult | None:
    """An object stored by an attempt that died before its catalog commit is adopted,
    not stored again. A credential that may not look (a station on S3) stores again: the
    new version has the same bytes, and the catalog records the one it committed."""
    try:
        store.stat(key)
    except ObjectMissing:
        return None
    except StoreError:
        return None  # no permission to look
    return _already_stored(store, key, digests)


def _already_stored(store: ObjectStore, key: str, digests: Digests) -> PutResult:
    """A retry found the object from an attempt that died later: accept it if it is ours."""
    info = store.stat(key)
    if info.metadata.get("sha256") != digests.sha256:
        raise ReceiptMismatch(
            f"{key} holds other content (sha256 {info.metadata.get('sha256')}) "
            f"than this recording ({digests.sha256})",
            hint="two files were given the same archive number; report this",
        )
    stored = Hasher()
    for chunk in store.read(key, info.version):
        stored.update(chunk)
    return PutResult(key, info.version, stored.digests())


def stored_already(ctx: ServiceContext, facts: OriginalFacts, archive_no: str) -> bool:
    """Whether an earlier attempt may have stored this original's bytes under ``archive_no``
    (a store that will not say counts as yes: recording a copy beats leaving one unrecorded)."""
    recorded = facts.start_time or ctx.now()
    key = original_key(archive_no, local_day(recorded, ctx.policy.zone), extension(facts.original_name))
    try:
        ctx.store.stat(key)
    except ObjectMissing:
        return False
    except StoreError:
        return True
    return True


def store_original(
    ctx: ServiceContext,
    path: Source,
    digests: Digests,
    facts: OriginalFacts,
    *,
    archive_no: str,
    after_put: Callable[[], None] | None = None,
    claim: Callable[[Session], None] | None = None,
    staged: Staged | None = None,
) -> Recording:
    """``path`` is a path, an open binary file or a callable giving one from offset 0
    (``archive.files.Source``); ``after_put`` is called once the bytes are stored, before the
    catalog commit; ``claim`` inside the commit's transaction, first (it may refuse the commit
    by raising). ``staged``: the bytes are in the store already (``LocalStore.stage``, an
    unencrypted original only), so they are given their key instead of being read again."""
    sessions, store, policy, actor, now = ctx.sessions, ctx.store, ctx.policy, ctx.actor, ctx.now()
    recorded = facts.start_time or now
    key = original_key(archive_no, local_day(recorded, policy.zone), extension(facts.original_name))
    # From the later of recording and archiving: a recorder's clock may be years off.
    until = lock_until(counted_from(facts.start_time, now), policy.routine, now=now, minimum=policy.min_lock)
    encrypt = (ctx.kek(), policy.algorithm) if policy.encrypts(facts.protected) else None
    stored = _adopt(store, key, digests)
    if stored is None and staged is not None:
        if encrypt is not None or staged.digests.sha256 != digests.sha256:
            raise InvalidInput(f"{archive_no}: staged bytes are stored only unencrypted, as hashed")
        try:
            stored = cast(LocalStore, store).commit_staged(
                staged,
                key,
                content_type=facts.content_type,
                metadata={"sha256": digests.sha256, "archive-no": archive_no},
                retain_until=until,
            )
        except ObjectExists:
            stored = _already_stored(store, key, digests)
    elif stored is None:
        try:
            stored = put_file(
                store,
                key,
                path,
                digests,
                content_type=facts.content_type,
                metadata={"sha256": digests.sha256, "archive-no": archive_no},
                retain_until=until,
                label=archive_no,
                sm3=policy.sm3,
                encrypt=encrypt,
            )
        except ObjectExists:
            stored = _already_stored(store, key, digests)
    if after_put is not None:
        after_put()
    encrypted = encryption_note(encrypt)
    record = manifest(
        archive_no, facts, digests, stored, encrypted=encrypted, retain_until=until, ingested_at=now
    )
    put_json(store, manifest_key(archive_no, local_day(recorded, policy.zone)), record, lock_until=until)

    with sessions.begin() as session:
        if claim is not None:
            claim(session)
        station_row(session, facts.station, facts.unit, now)
        recording = Recording(
            archive_no=archive_no,
            kind=facts.kind,
            sha256=digests.sha256,
            sm3=digests.sm3,
            size=digests.size,
            original_name=facts.original_name,
            station_id=facts.station,
            device_id=device_row(session, facts.device).id if facts.device else None,
            officer_id=officer_row(session, facts.officer).id if facts.officer else None,
            start_time=facts.start_time,
            duration_s=facts.duration_s,
            ingested_at=now,
            storage_key=key,
            storage_version=stored.version,
            manifest_key=manifest_key(archive_no, local_day(recorded, policy.zone)),
            content_type=facts.content_type,
            status="archived",
            damaged=facts.damaged,
            damage_reason=facts.damage_reason,
            important=facts.important,
            protected=facts.protected,
            encrypted=encrypted is not None,
            stored_sha256=stored.digests.sha256,
            stored_size=stored.digests.size,
            flags=json.dumps(facts.flags, ensure_ascii=False),
            media_info=json.dumps(facts.media_info, ensure_ascii=False),
            sources=json.dumps(facts.sources, ensure_ascii=False),
            retain_until=until,
        )
        session.add(recording)
        session.flush()
        custody.append(
            session,
            actor=actor,
            action=Action.INGESTED,
            subject=archive_no,
            details={
                k: record[k]
                for k in (
                    "sha256",
                    "sm3",
                    "size",
                    "original_name",
                    "station",
                    "device",
                    "officer",
                    "start_time",
                    "kind",
                    "important",
                    "protected",
                    "damaged",
                    "sources",
                )
            },
        )
        custody.append(
            session,
            actor=actor,
            action=Action.STORED,
            subject=archive_no,
            details={
                "key": key,
                "version": stored.version,
                "stored_sha256": stored.digests.sha256,
                "stored_size": stored.digests.size,
                "etag": stored.digests.etag,
                "encrypted": encrypted,
                "retain_until": record["retain_until"],
                "lock_mode": store.lock_mode,
            },
        )
    return recording
