"""Fixity sweeps and reconciliation: does storage still hold what the catalog says?

A sweep re-reads stored objects (originals, derivatives, documents and their
manifests) and compares each digest and size with the catalog, least recently
verified first, boxed by volume and time so that a nightly cron makes steady
progress through any archive size. The same run lists storage and reports
objects the catalog does not know (``orphan``) and rows whose object is gone
(``missing``); nothing is ever deleted automatically. Each run is one custody
event carrying its counts and the digest of its per-item results, which are
kept as an object (``reports/fixity/…``); each problem is an event of its own.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.context import ServiceContext
from archive.encryption import Keys
from archive.errors import ObjectMissing
from archive.key_wraps import wrap_problems
from archive.layout import report_key
from archive.reading import hash_stored
from archive.records import put_json
from archive.retention import lock_until
from archive.store import ObjectStore
from catalog import custody
from catalog.actions import Action
from catalog.canonical import canonical_bytes
from catalog.models import Derivative, Document, DocumentPage, Recording, Tombstone
from catalog.verification import mark_verified

Kind = Literal["original", "manifest", "derivative", "document"]
PREFIXES = ("originals/", "derivatives/", "documents/")


@dataclass(frozen=True)
class Target:
    subject: str  # archive number, item number, or the key of a manifest or derivative
    kind: Kind
    key: str
    version: str | None
    sha256: str | None  # of the plaintext; None for manifests (checked against their metadata)
    size: int | None
    encrypted: bool
    table: type | None
    row_id: int | None


@dataclass
class FixityReport:
    checked: int = 0
    ok: int = 0
    bytes_read: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str | None = None  # "volume" or "time" when the budget ended the sweep
    key_wraps: int = 0  # key wraps checked against the catalog's copies (with reconciliation)

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "ok": self.ok,
            "bytes": self.bytes_read,
            "problems": self.problems,
            "stopped_by": self.stopped_by,
            "key_wraps": self.key_wraps,
        }


def _targets(session: Session, *, older_than: datetime | None, sample: int | None) -> Iterator[Target]:
    """Least recently verified first; each kind in turn by that order."""

    def ordered(model, query):
        if older_than is not None:
            query = query.where((model.last_verified_at.is_(None)) | (model.last_verified_at < older_than))
        if sample is not None:
            return query.order_by(func.random()).limit(sample)
        return query.order_by(model.last_verified_at.is_not(None), model.last_verified_at, model.id)

    for r in session.execute(
        ordered(Recording, select(Recording).where(Recording.status != "purged"))
    ).scalars():
        yield Target(
            r.archive_no,
            "original",
            r.storage_key,
            r.storage_version,
            r.sha256,
            r.size,
            r.encrypted,
            Recording,
            r.id,
        )
        if r.manifest_key:
            yield Target(r.manifest_key, "manifest", r.manifest_key, None, None, None, False, None, None)
    for d in session.execute(ordered(Document, select(Document))).scalars():
        yield Target(
            d.storage_key,
            "document",
            d.storage_key,
            d.storage_version,
            d.sha256,
            d.size,
            d.encrypted,
            Document,
            d.id,
        )
        if d.manifest_key:
            yield Target(d.manifest_key, "manifest", d.manifest_key, None, None, None, False, None, None)
    for v in session.execute(
        ordered(
            Derivative,
            select(Derivative).where(Derivative.status == "ok", Derivative.storage_key.is_not(None)),
        )
    ).scalars():
        yield Target(
            v.storage_key,
            "derivative",
            v.storage_key,
            v.storage_version,
            v.sha256,
            v.size,
            v.encrypted,
            Derivative,
            v.id,
        )
    # A written record's pages as images: derivatives too, kept in their own table.
    for page in session.execute(ordered(DocumentPage, select(DocumentPage))).scalars():
        yield Target(
            page.storage_key,
            "derivative",
            page.storage_key,
            page.storage_version,
            page.sha256,
            page.size,
            page.encrypted,
            DocumentPage,
            page.id,
        )


def _check(
    store: ObjectStore, target: Target, kek: Keys | None, on_bytes: Callable[[int], None] | None = None
) -> tuple[str | None, str, str, int]:
    """(problem or None, expected, found, bytes read)."""
    expected = target.sha256
    try:
        if expected is None:  # a manifest: compare with the digest stored beside it
            expected = store.stat(target.key, target.version).metadata.get("sha256")
    except ObjectMissing:
        return "missing", "", "no object", 0
    got = hash_stored(
        store,
        target.key,
        target.version,
        encrypted=target.encrypted,
        kek=kek if target.encrypted else None,
        sink=(lambda chunk: on_bytes(len(chunk))) if on_bytes is not None else None,
    )
    if got.problem == "missing":
        return "missing", expected or "", "no object", got.size
    if got.problem == "undecryptable":
        return "mismatch", expected or "", f"undecryptable: {got.reason}", got.size
    if got.verdict(expected, target.size) != "ok":
        return (
            "mismatch",
            f"{expected} ({target.size} bytes)" if target.size else str(expected),
            f"{got.sha256} ({got.size} bytes)",
            got.size,
        )
    return None, expected or "", got.sha256 or "", got.size


def _known_keys(session: Session) -> set[str]:
    keys: set[str] = set()
    for a, b in session.execute(
        select(Recording.storage_key, Recording.manifest_key).where(Recording.status != "purged")
    ):
        keys.update(k for k in (a, b) if k)
    for c, d in session.execute(select(Document.storage_key, Document.manifest_key)):
        keys.update(k for k in (c, d) if k)
    keys.update(
        k
        for (k,) in session.execute(
            select(Derivative.storage_key).where(
                Derivative.storage_key.is_not(None), Derivative.status == "ok"
            )
        )
        if k
    )
    keys.update(k for (k,) in session.execute(select(DocumentPage.storage_key)))
    return keys


def reconcile(session: Session, store: ObjectStore) -> list[dict[str, Any]]:
    """Objects under the evidence prefixes that no catalog row names (never deleted here)."""
    known = _known_keys(session)
    purged = {s for (s,) in session.execute(select(Tombstone.subject))}
    problems = []
    for prefix in PREFIXES:
        for info in store.list(prefix):
            if info.key in known:
                continue
            owner = info.key.split("/")[1] if prefix == "derivatives/" else None
            why = "a derivative of a purged recording" if owner in purged else "not in the catalog"
            problems.append(
                {
                    "subject": info.key,
                    "problem": "orphan",
                    "expected": "no object",
                    "found": f"{info.size} bytes ({why})",
                }
            )
    return problems


def sweep(
    ctx: ServiceContext,
    *,
    sample: int | None = None,
    older_than_days: float | None = None,
    budget_bytes: int | None = None,
    budget_seconds: float | None = None,
    reconcile_storage: bool = True,
    progress=None,
    planned: Callable[[int, int], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> FixityReport:
    """Check the targets least recently verified first, within the budgets.

    ``planned(items, bytes)`` is told the totals once known, ``on_bytes(n)`` every chunk
    read, ``progress(target, size)`` every target checked."""
    sessions, store, actor, now = ctx.sessions, ctx.store, ctx.actor, ctx.now()
    kek = ctx.kek() if ctx.load_kek else None
    report = FixityReport()
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    older = now - timedelta(days=older_than_days) if older_than_days is not None else None
    verified: dict[type, list[int]] = {}
    with sessions() as session:
        targets = list(_targets(session, older_than=older, sample=sample))
    if sample is not None and len(targets) > sample:
        targets = random.sample(targets, sample)  # at most N of each kind were drawn; N in all
    if planned is not None:
        planned(len(targets), sum(t.size or 0 for t in targets))
    for target in targets:
        if budget_bytes is not None and report.bytes_read >= budget_bytes:
            report.stopped_by = "volume"
            break
        if budget_seconds is not None and time.monotonic() - started >= budget_seconds:
            report.stopped_by = "time"
            break
        problem, expected, found, size = _check(store, target, kek, on_bytes)
        report.checked += 1
        report.bytes_read += size
        results.append(
            {
                "subject": target.subject,
                "kind": target.kind,
                "key": target.key,
                "result": problem or "ok",
                "sha256": found if not problem else None,
            }
        )
        if problem is None:
            report.ok += 1
            if target.table is not None and target.row_id is not None:
                verified.setdefault(target.table, []).append(target.row_id)
        else:
            report.problems.append(
                {"subject": target.subject, "problem": problem, "expected": expected, "found": found}
            )
        if progress is not None:
            progress(target, size)
    if reconcile_storage:
        with sessions() as session:
            orphans = reconcile(session, store)
        report.problems += orphans
        results += [
            {"subject": o["subject"], "kind": "orphan", "key": o["subject"], "result": "orphan"}
            for o in orphans
        ]
        # The key wraps (format v2) agree with the catalog's copies too: a lost or altered wrap
        # is harmless while the catalog keeps its copy, and found here before it is not.
        report.key_wraps, wrong = wrap_problems(sessions, store)
        for w in wrong:
            report.problems.append(
                {
                    "subject": w.subject,
                    "problem": w.problem,
                    "expected": "the key wrap the catalog records",
                    "found": w.message,
                }
            )
            results.append({"subject": w.subject, "kind": "key_wrap", "key": w.subject, "result": w.problem})
    body = canonical_bytes({"v": 1, "type": "fixity_run", "time": now.isoformat(), "results": results})
    digest = hashlib.sha256(body).hexdigest()
    key = report_key("fixity", now.strftime("%Y%m%dT%H%M%SZ"), digest)
    put_json(
        store,
        key,
        {"v": 1, "type": "fixity_run", "time": now.isoformat(), "results": results},
        lock_until=lock_until(now, (1, "years"), now=now),
    )
    with sessions.begin() as session:
        mark_verified(
            session,
            at=now,
            recording_ids=verified.get(Recording, ()),
            document_ids=verified.get(Document, ()),
            derivative_ids=verified.get(Derivative, ()),
            page_ids=verified.get(DocumentPage, ()),
        )
        for found_problem in report.problems:
            custody.append(
                session,
                actor=actor,
                action=Action.FIXITY_PROBLEM,
                subject=found_problem["subject"],
                details={k: found_problem[k] for k in ("problem", "expected", "found")},
            )
        custody.append(
            session,
            actor=actor,
            action=Action.FIXITY_RUN,
            subject=None,
            details={
                "checked": report.checked,
                "ok": report.ok,
                "problems": len(report.problems),
                "bytes": report.bytes_read,
                "stopped_by": report.stopped_by,
                "results_key": key,
                "results_sha256": digest,
            },
        )
    return report
