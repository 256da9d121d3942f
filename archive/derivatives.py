"""Storing derivatives (proxy, poster, contact sheet, waveform) of an archived recording.

Each goes to ``derivatives/{archive_no}/{kind}-{sha256[:12]}.{ext}``: the
digest in the key means a retried or remade derivative gets a new key and
nothing is ever overwritten. Derivatives follow their original: the same
lock, and encrypted when the original is.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, select

from catalog import custody
from catalog.actions import Action
from catalog.db import insert_missing
from catalog.models import Derivative, Recording

from .context import ServiceContext
from .digest import hash_file
from .errors import ObjectExists
from .files import put_file
from .layout import derivative_key


def store_derivative(
    ctx: ServiceContext,
    recording: Recording,
    *,
    kind: str,
    path: Path,
    ext: str,
    content_type: str,
    method: str,
) -> Derivative:
    store, now = ctx.store, ctx.now()
    digests = hash_file(path)
    key = derivative_key(recording.archive_no, kind, digests.sha256, ext)
    until = recording.retain_until if recording.retain_until and recording.retain_until > now else None
    encrypt = (ctx.kek(), ctx.policy.algorithm) if recording.encrypted else None
    try:
        stored = put_file(
            store,
            key,
            path,
            digests,
            content_type=content_type,
            metadata={"sha256": digests.sha256, "archive-no": recording.archive_no},
            retain_until=until,
            label=f"{recording.archive_no} {kind}",
            encrypt=encrypt,
        )
        version = stored.version
    except ObjectExists:
        version = store.stat(key).version  # same digest, same key: stored by an earlier attempt
    with ctx.sessions.begin() as session:
        # Two passes may store the same derivative at once (a daemon and a manual scan):
        # the row is created once, never a unique violation, and both fill in the same values.
        same = (
            Derivative.recording_id == recording.id,
            Derivative.kind == kind,
            Derivative.sha256 == digests.sha256,
        )
        insert_missing(
            session,
            Derivative.__table__,
            {
                "recording_id": recording.id,
                "kind": kind,
                "sha256": digests.sha256,
                "status": "pending",
                "encrypted": False,
                "created_at": now,
            },
            ["recording_id", "kind", "sha256"],
        )
        row = session.execute(select(Derivative).where(*same).with_for_update()).scalar_one()
        row.status, row.size, row.storage_key, row.storage_version = "ok", digests.size, key, version
        row.content_type, row.encrypted, row.error = content_type, encrypt is not None, None
        # Earlier failed attempts of this kind are superseded (a statement, not per-row
        # deletes that would fail when the other pass removed them first).
        session.execute(
            delete(Derivative).where(
                Derivative.recording_id == recording.id,
                Derivative.kind == kind,
                Derivative.status == "failed",
            )
        )
        session.flush()
        custody.append(
            session,
            actor=ctx.actor,
            action=Action.DERIVATIVE_STORED,
            subject=recording.archive_no,
            details={
                "kind": kind,
                "key": key,
                "sha256": digests.sha256,
                "size": digests.size,
                "method": method,
            },
        )
    return row


def record_failure(ctx: ServiceContext, recording: Recording, *, kind: str, error: str) -> None:
    """A derivative that could not be made: kept as 'failed' for a later retry."""
    now = ctx.now()
    with ctx.sessions.begin() as session:
        exists = (
            session.execute(
                select(Derivative).where(
                    Derivative.recording_id == recording.id,
                    Derivative.kind == kind,
                    Derivative.status.in_(["ok", "failed"]),
                )
            )
            .scalars()
            .first()
        )
        if exists is None:
            session.add(
                Derivative(
                    recording_id=recording.id, kind=kind, status="failed", created_at=now, error=error[:4000]
                )
            )
        elif exists.status == "failed":
            exists.error = error[:4000]
