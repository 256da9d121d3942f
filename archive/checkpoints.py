"""Checkpoints copied out to storage, each with the custody segment it closes.

Checkpoint ``n`` signs event ``seq``; its segment holds the events after the
previous checkpoint's ``seq`` up to and including its own, one JSON record per
line (``catalog.chain``), so the chain in storage can be checked on its own
and a catalog rebuilt from it. Copying is resumable: checkpoints whose
``storage_key`` is still empty are copied by the next run.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from catalog import custody
from catalog.checkpoint import Checkpoint
from catalog.models import CheckpointRow

from .context import ServiceContext
from .errors import ObjectExists
from .layout import checkpoint_key, segment_key
from .records import put_json
from .retention import lock_until
from .store import ObjectStore

SPOOL_BYTES = 8 << 20


def publish(sessions: sessionmaker[Session], store: ObjectStore, *, now: datetime) -> list[int]:
    """Copy every checkpoint not yet in storage, with its segment. Returns their numbers."""
    until = lock_until(now, None, now=now)
    with sessions() as session:
        rows = session.execute(select(CheckpointRow).order_by(CheckpointRow.n)).scalars().all()
    published, previous_seq = [], 0
    for row in rows:
        if row.storage_key is None:
            if row.seq > previous_seq:
                _put_segment(sessions, store, previous_seq, row.seq, until)
            cp = Checkpoint(row.n, row.seq, row.head, row.time, row.key_id, row.public_key, row.signature)
            put_json(store, checkpoint_key(row.n), cp.to_record(), lock_until=until)
            with sessions.begin() as session:
                session.execute(
                    update(CheckpointRow)
                    .where(CheckpointRow.n == row.n)
                    .values(storage_key=checkpoint_key(row.n))
                )
            published.append(row.n)
        previous_seq = row.seq
    return published


def _put_segment(
    sessions: sessionmaker[Session], store: ObjectStore, after: int, last: int, until: datetime
) -> None:
    key = segment_key(after + 1, last)
    # Spooled to disk past a few MiB: a segment may hold millions of events.
    digest = hashlib.sha256()
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool, sessions() as session:
        for event in custody.events(session, after_seq=after, limit=last - after):
            line = (
                json.dumps(
                    event.to_record(), ensure_ascii=False, sort_keys=True, separators=(",", ":")
                ).encode()
                + b"\n"
            )
            digest.update(line)
            spool.write(line)
        spool.seek(0)
        try:
            store.put(
                key,
                spool,
                content_type="application/x-ndjson",
                retain_until=until,
                metadata={"sha256": digest.hexdigest()},
            )
        except ObjectExists:
            # Written by a run that died before recording it: fine if identical.
            if store.stat(key).metadata.get("sha256") != digest.hexdigest():
                raise


def make_and_publish(ctx: ServiceContext, key: Ed25519PrivateKey) -> Checkpoint:
    """Sign the head, then copy it (and any earlier unpublished ones) to storage."""
    now = ctx.now()
    with ctx.sessions.begin() as session:
        cp = custody.make_checkpoint(session, key, actor=ctx.actor, now=now)
    publish(ctx.sessions, ctx.store, now=now)
    return cp
