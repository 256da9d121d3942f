"""Checkpoints copied out to storage, each with the custody segment it closes.

Checkpoint ``n`` signs event ``seq``; its segment holds the events after the previous
checkpoint's ``seq`` up to and including its own. A v2 checkpoint is a folder
(docs/CUSTODY-FORMAT.md)::

    custody/checkpoints/{n:08d}/events.jsonl    every event of the segment, one a line: a v2
                                                body exactly as hashed, or a v1 record
    custody/checkpoints/{n:08d}/links.tsv       "seq prev body_hash hash" a line ("-" for v1)
    custody/checkpoints/{n:08d}/checkpoint.json the exact signed statement bytes
    custody/checkpoints/{n:08d}/checkpoint.sig  the raw 64-byte Ed25519 signature
    custody/keys/{fingerprint}.pem              the signer's public key (key history)

Files named later beside a checkpoint (a time-stamp token, a key-change statement) go into
the same folder and the key history without changing these. Checkpoints from before v2 stay
as they were written: ``custody/segments/{first}-{last}.jsonl`` and
``custody/checkpoints/{n:08d}.json``.

Copying is resumable: checkpoints whose ``storage_key`` is still empty are copied by the
next run; an object a dead run wrote already is accepted when its bytes are the same.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from catalog import custody, jcs
from catalog.chain import CustodyEvent
from catalog.checkpoint import Checkpoint, fingerprint, from_statement, public_key_pem
from catalog.errors import CheckFailed
from catalog.models import CheckpointRow

from .context import ServiceContext
from .errors import ObjectExists, ObjectMissing
from .layout import checkpoint_folder, checkpoint_key, key_history_key, segment_key
from .records import put_json
from .retention import lock_until
from .store import BinaryStream, ObjectStore
from .timestamping import TimestampAuthority, TimestampUnavailable

log = logging.getLogger(__name__)

SPOOL_BYTES = 8 << 20
STATEMENT, SIGNATURE, EVENTS, LINKS = "checkpoint.json", "checkpoint.sig", "events.jsonl", "links.tsv"
TOKEN = "checkpoint.tsr"  # the RFC 3161 time-stamp token over checkpoint.json


def link_line(event: CustodyEvent) -> bytes:
    """One line of ``links.tsv``: seq, prev, body_hash ("-" for a v1 event), hash; tab-separated."""
    return b"%d\t%s\t%s\t%s\n" % (
        event.seq,
        event.prev_hash.encode(),
        (event.body_hash or "-").encode(),
        event.hash.encode(),
    )


def publish(sessions: sessionmaker[Session], store: ObjectStore, *, now: datetime) -> list[int]:
    """Copy every checkpoint not yet in storage, with its segment. Returns their numbers."""
    until = lock_until(now, None, now=now)
    with sessions() as session:
        rows = session.execute(select(CheckpointRow).order_by(CheckpointRow.n)).scalars().all()
        cps = [(row.storage_key, custody.checkpoint_from_row(row)) for row in rows]
    published, previous_seq = [], 0
    for storage_key, cp in cps:
        if storage_key is None:
            if cp.v == 2:
                key = _put_v2(sessions, store, previous_seq, cp, until)
            else:
                if cp.seq > previous_seq:
                    _put_segment(sessions, store, previous_seq, cp.seq, until)
                key = checkpoint_key(cp.n)
                put_json(store, key, cp.to_record(), lock_until=until)
            with sessions.begin() as session:
                session.execute(update(CheckpointRow).where(CheckpointRow.n == cp.n).values(storage_key=key))
            published.append(cp.n)
        previous_seq = cp.seq
    # The key history after the checkpoints that carry its events' signers' keys.
    from .keyrotation import publish_statements

    publish_statements(sessions, store, now=now)
    return published


def _put_v2(
    sessions: sessionmaker[Session], store: ObjectStore, after: int, cp: Checkpoint, until: datetime
) -> str:
    folder = checkpoint_folder(cp.n)
    with sessions() as session:
        events = list(_segment(session, after, cp.seq)) if cp.seq > after else []
    # Events and links spool to disk past a few MiB: a segment may hold millions of events.
    for name, line in ((EVENTS, CustodyEvent.line), (LINKS, link_line)):
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            digest = hashlib.sha256()
            for event in events:
                data = line(event)
                digest.update(data)
                spool.write(data)
            spool.seek(0)
            _put_once(store, f"{folder}/{name}", spool, digest.hexdigest(), until, "text/plain")
    raw = base64.b64decode(cp.public_key)
    if raw and fingerprint(raw) == cp.key:
        pem = public_key_pem(raw)
        _put_once(store, key_history_key(fingerprint(raw)), io.BytesIO(pem), _sha(pem), until, "text/plain")
    sig = cp.signature_bytes()
    _put_once(store, f"{folder}/{SIGNATURE}", io.BytesIO(sig), _sha(sig), until, "application/octet-stream")
    statement = cp.signed_bytes()
    key = f"{folder}/{STATEMENT}"
    _put_once(store, key, io.BytesIO(statement), _sha(statement), until, "application/json")
    return key


def _segment(session: Session, after: int, last: int) -> Iterator[CustodyEvent]:
    return custody.events(session, after_seq=after, limit=last - after)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _put_once(
    store: ObjectStore, key: str, data: BinaryStream, sha256: str, until: datetime, content_type: str
) -> None:
    try:
        store.put(key, data, content_type=content_type, retain_until=until, metadata={"sha256": sha256})
    except ObjectExists:
        # Written by a run that died before recording it: fine if identical.
        if hashlib.sha256(b"".join(store.read(key))).hexdigest() != sha256:
            raise


def _put_segment(
    sessions: sessionmaker[Session], store: ObjectStore, after: int, last: int, until: datetime
) -> None:
    """A v1 checkpoint's segment, in the layout of its time (v1 records, one a line)."""
    key = segment_key(after + 1, last)
    digest = hashlib.sha256()
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool, sessions() as session:
        for event in _segment(session, after, last):
            line = (
                json.dumps(
                    event.to_record(), ensure_ascii=False, sort_keys=True, separators=(",", ":")
                ).encode()
                + b"\n"
            )
            digest.update(line)
            spool.write(line)
        spool.seek(0)
        _put_once(store, key, spool, digest.hexdigest(), until, "application/x-ndjson")


def stored_checkpoints(store: ObjectStore) -> tuple[list[Checkpoint], list[str]]:
    """Every checkpoint in storage (both layouts), and what could not be read."""
    found: list[Checkpoint] = []
    problems: list[str] = []
    for info in store.list("custody/checkpoints/"):
        rest = info.key.removeprefix("custody/checkpoints/")
        try:
            if rest.endswith(".json") and "/" not in rest:
                found.append(Checkpoint.from_record(json.loads(b"".join(store.read(info.key)))))
            elif rest.endswith("/" + STATEMENT):
                folder = info.key.rsplit("/", 1)[0]
                statement = b"".join(store.read(info.key))
                try:
                    sig = b"".join(store.read(f"{folder}/{SIGNATURE}"))
                except ObjectMissing:
                    problems.append(f"{folder}/{SIGNATURE} is missing")
                    sig = b""
                found.append(from_statement(statement, sig))
        except (ValueError, KeyError, TypeError, jcs.NotCanonical) as exc:
            problems.append(f"{info.key} cannot be read: {exc}")
    return found, problems


def make_and_publish(
    ctx: ServiceContext,
    key: Ed25519PrivateKey,
    *,
    skip_if_idle: bool = False,
    tsa: TimestampAuthority | None = None,
) -> Checkpoint | None:
    """Sign the head, then copy it (and any earlier unpublished ones) to storage; with a
    ``tsa``, ask it for the tokens still missing (``stamp``: a TSA that is down never stops
    a checkpoint).

    With ``skip_if_idle`` nothing is signed when nothing happened since the last checkpoint
    but its own event (returns None); unpublished ones are still copied, missing tokens
    still asked for.
    """
    now = ctx.now()
    with ctx.sessions.begin() as session:
        if skip_if_idle and custody.nothing_new(session):
            cp = None
        else:
            cp = custody.make_checkpoint(session, key, actor=ctx.actor, now=now)
    publish(ctx.sessions, ctx.store, now=now)
    if tsa is not None:
        stamp(ctx, tsa)
    return cp


@dataclass
class StampReport:
    stamped: list[int] = field(default_factory=list)  # checkpoints that got their token now
    missing: list[int] = field(default_factory=list)  # still without one (the TSA was down)
    error: str | None = None


def stamp(ctx: ServiceContext, tsa: TimestampAuthority) -> StampReport:
    """Ask the TSA for a token over each v2 checkpoint statement that has none, keep it in the
    catalog, and copy it beside the checkpoint in storage (``TOKEN``, locked like it).

    Each token is committed as soon as it comes, so a run killed half-way keeps what it got;
    the storage copy of a token already in the catalog is written by the next run if this
    one cannot. The first unreachable answer stops the round: the rest wait for the next run.
    """
    report = StampReport()
    with ctx.sessions() as session:
        wanted = [
            (row.n, custody.checkpoint_from_row(row).signed_bytes())
            for row in session.execute(
                select(CheckpointRow)
                .where(CheckpointRow.v == 2, CheckpointRow.tsa_token.is_(None))
                .order_by(CheckpointRow.n)
            ).scalars()
        ]
    for n, statement in wanted:
        try:
            token = tsa.request(statement)
        except TimestampUnavailable as exc:
            report.error = exc.message
            log.warning("timestamp_unavailable", extra={"checkpoint": n, "error": exc.message})
            break
        with ctx.sessions.begin() as session:
            session.execute(update(CheckpointRow).where(CheckpointRow.n == n).values(tsa_token=token))
        report.stamped.append(n)
    until = lock_until(ctx.now(), None, now=ctx.now())
    with ctx.sessions() as session:
        unstored = session.execute(
            select(CheckpointRow.n, CheckpointRow.tsa_token)
            .where(CheckpointRow.tsa_token.is_not(None), CheckpointRow.tsa_stored.is_(False))
            .order_by(CheckpointRow.n)
        ).all()
        report.missing = list(
            session.execute(
                select(CheckpointRow.n)
                .where(CheckpointRow.v == 2, CheckpointRow.tsa_token.is_(None))
                .order_by(CheckpointRow.n)
            ).scalars()
        )
    for n, blob in unstored:
        assert blob is not None  # selected for having one
        _put_once(
            ctx.store,
            f"{checkpoint_folder(n)}/{TOKEN}",
            io.BytesIO(blob),
            _sha(blob),
            until,
            "application/timestamp-reply",
        )
        with ctx.sessions.begin() as session:
            session.execute(update(CheckpointRow).where(CheckpointRow.n == n).values(tsa_stored=True))
    return report


def stamped(session: Session) -> list[tuple[int, bytes, datetime, bytes | None]]:
    """Each v2 checkpoint as ``catalog.timestamp.review`` takes it: (n, statement, time, token)."""
    rows = session.execute(
        select(CheckpointRow).where(CheckpointRow.v == 2).order_by(CheckpointRow.n)
    ).scalars()
    out = []
    for row in rows:
        cp = custody.checkpoint_from_row(row)
        out.append((cp.n, cp.signed_bytes(), cp.time, row.tsa_token))
    return out


def require_covered(session: Session, seq: int) -> Checkpoint:
    """The first checkpoint that covers event ``seq``; ``CheckFailed`` when none does yet."""
    row = session.execute(
        select(CheckpointRow).where(CheckpointRow.seq >= seq).order_by(CheckpointRow.n).limit(1)
    ).scalar()
    if row is None:
        raise CheckFailed(f"no checkpoint covers event {seq} yet", hint="run `evidence audit checkpoint`")
    return custody.checkpoint_from_row(row)
