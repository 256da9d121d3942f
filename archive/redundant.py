"""Removing proxies that are redundant now that the page plays the original itself.

Before originals were played as they are, every H.264 recording got a remux proxy: the same
picture stored a second time. :func:`prune_redundant` finds the proxies of recordings that
browsers play as they are (:func:`catalog.playback.plays_as_is`) and, when confirmed, deletes
each stored version and then its catalog row with a custody event, one proxy at a time.

A proxy follows its original's lock, so most are refused by the store until the lock runs
out: those are reported (``refused``, with the store's reason) and left untouched for a later
run. Proxies of a recording under legal hold are left too. The store deletes first and the
catalog follows, as a purge does: a process killed in between leaves a row whose object is
gone, which the next run finds missing and completes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from catalog import custody, holds
from catalog.actions import Action
from catalog.models import Derivative, Recording
from catalog.playback import plays_as_is

from .context import ServiceContext
from .errors import ObjectLocked, ObjectMissing, StoreUnavailable

__all__ = ["PruneResult", "Redundant", "prune_redundant", "redundant_proxies"]

REASON = "the original plays in browsers as it is"


@dataclass(frozen=True)
class Redundant:
    archive_no: str
    derivative_id: int
    key: str
    version: str | None
    sha256: str | None
    size: int | None


@dataclass
class PruneResult:
    found: list[Redundant] = field(default_factory=list)
    pruned: list[Redundant] = field(default_factory=list)
    refused: list[tuple[Redundant, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def one(r: Redundant) -> dict[str, Any]:
            return {"archive_no": r.archive_no, "key": r.key, "size": r.size}

        return {
            "found": [one(r) for r in self.found],
            "pruned": [one(r) for r in self.pruned],
            "refused": [one(r) | {"reason": why} for r, why in self.refused],
            "bytes_pruned": sum(r.size or 0 for r in self.pruned),
        }


def redundant_proxies(ctx: ServiceContext) -> list[Redundant]:
    """Stored proxies of archived recordings whose original plays as it is, oldest first."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(Recording, Derivative)
            .join(Derivative, Derivative.recording_id == Recording.id)
            .where(
                Recording.status == "archived",
                Derivative.kind == "proxy",
                Derivative.status == "ok",
                Derivative.storage_key.is_not(None),
            )
            .order_by(Derivative.id)
        ).all()
        return [
            Redundant(rec.archive_no, d.id, d.storage_key, d.storage_version, d.sha256, d.size)
            for rec, d in rows
            if d.storage_key is not None
            and plays_as_is(rec.kind, json.loads(rec.media_info or "{}"), damaged=rec.damaged)
        ]


def prune_redundant(ctx: ServiceContext, *, confirm: bool) -> PruneResult:
    """Find the redundant proxies; with ``confirm``, delete every one the store lets go.

    Raises :class:`~archive.errors.StoreUnavailable` when the store cannot be reached (what
    was pruned before stays pruned, with its event).
    """
    result = PruneResult(found=redundant_proxies(ctx))
    if not confirm:
        return result
    with ctx.sessions() as session:
        held = {key for key, _ in holds.held_objects(session)}
        originals = dict(
            session.execute(
                select(Recording.archive_no, Recording.storage_key).where(
                    Recording.archive_no.in_({r.archive_no for r in result.found})
                )
            ).all()
        )
    for r in result.found:
        if originals.get(r.archive_no) in held:
            result.refused.append((r, f"{r.archive_no} is under legal hold; run again once released"))
            continue
        try:
            ctx.store.delete(r.key, r.version)
        except ObjectLocked as exc:
            result.refused.append((r, f"{exc}; run again once the lock has run out"))
            continue
        except ObjectMissing:
            pass  # deleted by an earlier run that died before its catalog commit
        except StoreUnavailable:
            raise
        _forget(ctx, r)
        result.pruned.append(r)
    return result


def _forget(ctx: ServiceContext, r: Redundant) -> None:
    with ctx.sessions.begin() as session:
        row = session.get(Derivative, r.derivative_id)
        if row is None:
            return  # another run forgot it first; its event is written
        session.delete(row)
        custody.append(
            session,
            actor=ctx.actor,
            action=Action.DERIVATIVE_PRUNED,
            subject=r.archive_no,
            details={"kind": "proxy", "key": r.key, "sha256": r.sha256, "size": r.size, "reason": REASON},
        )
