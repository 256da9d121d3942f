"""A derive worker: claims derive jobs from the catalog and makes them from the stored original.

It runs anywhere the catalog and the store can be reached, with a credential of its own (the
``worker`` role of ``config/policies``: read originals, put derivatives, never delete) and the
key-encryption key where protected recordings are encrypted. Each job:

1. claimed under a lease (:func:`catalog.derive_jobs.claim`), renewed by a heartbeat thread
   for as long as the work runs;
2. the original read from the store (decrypted if need be) into a private temporary folder,
   its SHA-256 checked against the catalog's while it is written: a derivative is never made
   from bytes other than the evidence's;
3. probed and made (:mod:`ingest.derivatives`), stored under its digest
   (:func:`archive.derivatives.store_derivative`, with its custody event);
4. finished, or failed with its reason (after three failures it stays failed and
   ``stations status`` shows it).

What if the process dies: at 1-2 nothing was written; during 3 a temporary folder is left
behind in the system's temporary directory (cleaned by it) and the lease lapses, so the next
worker makes the derivative again; a derivative already stored is the same object (same
digest, same key) and its row is created once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath

from sqlalchemy import select

from archive.context import ServiceContext
from archive.derivatives import record_failure, store_derivative
from archive.reading import read_plain
from catalog import derive_jobs
from catalog.errors import EvidenceError
from catalog.models import Recording

from .derivatives import Derived, make_contact_sheet, make_poster, make_proxy, make_waveform
from .probe import probe

__all__ = ["KINDS", "Done", "new_owner", "work_one"]

log = logging.getLogger("evidence.worker")

KINDS = ("proxy", "poster", "sheet", "waveform")


@dataclass(frozen=True)
class Done:
    """One job handled: ``state`` is ``done``, ``queued`` (failed, retried later), ``failed``
    (for good) or ``lost`` (taken over by another worker meanwhile)."""

    archive_no: str
    kind: str
    state: str
    error: str | None = None


def new_owner() -> str:
    """A worker's name in the catalog: host, pid and a random part (unique per run)."""
    return f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _Heartbeat(threading.Thread):
    def __init__(self, ctx: ServiceContext, job: derive_jobs.Claimed, lease: timedelta) -> None:
        super().__init__(name=f"lease-{job.id}", daemon=True)
        self.ctx, self.job, self.lease = ctx, job, lease
        self.stop = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.stop.wait(self.lease.total_seconds() / 3):
            try:
                if not derive_jobs.renew(self.ctx.sessions, self.job, self.ctx.now(), self.lease):
                    self.lost = True
                    log.warning("derive job taken over", extra={"job": self.job.id})
                    return
            except Exception:  # noqa: BLE001 - a catalog hiccup: the next beat tries again
                log.warning("lease renewal failed", exc_info=True, extra={"job": self.job.id})


def _fetch_original(ctx: ServiceContext, rec: Recording, folder: Path) -> Path:
    """The original's plaintext in ``folder``, its digest checked against the catalog's."""
    suffix = PurePosixPath(rec.storage_key).suffix
    dest = folder / f"original{suffix if suffix.isascii() and len(suffix) <= 8 else ''}"
    digest = hashlib.sha256()
    with open(dest, "xb") as out:
        for chunk in read_plain(
            ctx.store,
            rec.storage_key,
            rec.storage_version,
            encrypted=rec.encrypted,
            kek=ctx.kek_for(rec.encrypted),
        ):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != rec.sha256:
        raise EvidenceError(
            f"{rec.archive_no}: the stored original does not match its SHA-256",
            hint="run `evidence verify` on it; no derivative is made from it",
        )
    return dest


def _make(kind: str, source: Path, out_dir: Path) -> Derived:
    info = probe(source)
    if kind == "proxy":
        return make_proxy(source, info, out_dir)
    if kind == "poster":
        return make_poster(source, info, out_dir)
    if kind == "sheet":
        return make_contact_sheet(source, info, out_dir)
    if kind == "waveform":
        return make_waveform(source, info, out_dir)
    raise EvidenceError(f"unknown derivative kind {kind!r}")


def work_one(
    ctx: ServiceContext,
    owner: str,
    *,
    kinds: Sequence[str] | None = None,
    lease: timedelta = derive_jobs.LEASE,
    retry_after: timedelta = timedelta(minutes=5),
) -> Done | None:
    """Claim one job and do it; None when no job is waiting."""
    job = derive_jobs.claim(ctx.sessions, owner, ctx.now(), kinds=kinds, lease=lease)
    if job is None:
        return None
    beat = _Heartbeat(ctx, job, lease)
    beat.start()
    try:
        with ctx.sessions() as session:
            rec = session.execute(select(Recording).where(Recording.id == job.recording_id)).scalar_one()
            session.expunge(rec)
        log.info("derive job claimed", extra={"archive_no": rec.archive_no, "kind": job.kind, "job": job.id})
        try:
            with tempfile.TemporaryDirectory(prefix="evidence-worker-") as work:
                source = _fetch_original(ctx, rec, Path(work))
                made = _make(job.kind, source, Path(work) / "out")
                store_derivative(
                    ctx,
                    rec,
                    kind=made.kind,
                    path=made.path,
                    ext=made.ext,
                    content_type=made.content_type,
                    method=made.method,
                )
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            error = str(exc) if isinstance(exc, EvidenceError) else f"{type(exc).__name__}: {exc}"
            state = derive_jobs.fail(ctx.sessions, job, error, ctx.now(), retry_after=retry_after)
            if state == "failed":
                record_failure(ctx, rec, kind=job.kind, error=error)
            log.warning(
                "derive job failed",
                extra={"archive_no": rec.archive_no, "kind": job.kind, "state": state, "reason": error},
            )
            return Done(rec.archive_no, job.kind, state, error)
        state = "done" if derive_jobs.finish(ctx.sessions, job, ctx.now()) else "lost"
        return Done(rec.archive_no, job.kind, state)
    finally:
        beat.stop.set()
        beat.join()
