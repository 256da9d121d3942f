"""The custody chain in the catalog: append, read, checkpoint, verify.

Appenders lock the single ``custody_head`` row (``SELECT … FOR UPDATE`` on
PostgreSQL; SQLite's write lock does the same), so concurrent writers queue
and the chain never forks. The event is written in the caller's transaction:
it commits, or rolls back, with the change it records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .actions import Action
from .canonical import canonical_bytes
from .chain import GENESIS_HASH, CustodyEvent, check_chain, seal
from .checkpoint import Checkpoint, sign_checkpoint
from .models import CheckpointRow, CustodyEventRow, CustodyHead

READ_BATCH = 1000


def utcnow() -> datetime:
    return datetime.now(UTC)


_EVENT_COLUMNS = (
    CustodyEventRow.seq,
    CustodyEventRow.time,
    CustodyEventRow.actor,
    CustodyEventRow.action,
    CustodyEventRow.subject,
    CustodyEventRow.details,
    CustodyEventRow.prev_hash,
    CustodyEventRow.hash,
)


def _to_event(row: Any) -> CustodyEvent:
    seq, time, actor, action, subject, details, prev_hash, digest = row
    return CustodyEvent(seq, time, actor, action, subject, json.loads(details), prev_hash, digest)


def _lock_head(session: Session) -> CustodyHead:
    return session.execute(select(CustodyHead).where(CustodyHead.id == 1).with_for_update()).scalar_one()


def append(
    session: Session,
    *,
    actor: str,
    action: Action,
    subject: str | None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> CustodyEvent:
    """Append one event in the session's transaction and return it."""
    action = Action(action)  # an action without a name in ``catalog.actions`` is refused
    head = _lock_head(session)
    event = seal(head.seq + 1, now or utcnow(), actor, action.value, subject, details or {}, head.hash)
    session.add(
        CustodyEventRow(
            seq=event.seq,
            time=event.time,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            details=canonical_bytes(event.details).decode(),
            prev_hash=event.prev_hash,
            hash=event.hash,
        )
    )
    head.seq, head.hash = event.seq, event.hash
    session.flush()
    return event


def events(
    session: Session, *, subject: str | None = None, after_seq: int = 0, limit: int | None = None
) -> Iterator[CustodyEvent]:
    """Events in chain order, streamed in batches."""
    # Plain rows, not ORM objects: a full walk reads millions of events.
    query = select(*_EVENT_COLUMNS).where(CustodyEventRow.seq > after_seq).order_by(CustodyEventRow.seq)
    if subject is not None:
        query = query.where(CustodyEventRow.subject == subject)
    if limit is not None:
        query = query.limit(limit)
    for row in session.execute(query.execution_options(yield_per=READ_BATCH)):
        yield _to_event(row)


def head(session: Session) -> tuple[int, str]:
    row = session.get(CustodyHead, 1)
    return (row.seq, row.hash) if row else (0, GENESIS_HASH)


def checkpoints(session: Session) -> list[Checkpoint]:
    rows = session.execute(select(CheckpointRow).order_by(CheckpointRow.n)).scalars()
    return [Checkpoint(r.n, r.seq, r.head, r.time, r.key_id, r.public_key, r.signature) for r in rows]


def make_checkpoint(
    session: Session, key: Ed25519PrivateKey, *, actor: str, now: datetime | None = None
) -> Checkpoint:
    """Sign the current head, keep the checkpoint, and record that as an event."""
    locked = _lock_head(session)
    n = (session.execute(select(func.max(CheckpointRow.n))).scalar() or 0) + 1
    checkpoint = sign_checkpoint(key, n=n, seq=locked.seq, head=locked.hash, time=now or utcnow())
    session.add(
        CheckpointRow(
            n=checkpoint.n,
            seq=checkpoint.seq,
            head=checkpoint.head,
            time=checkpoint.time,
            key_id=checkpoint.key_id,
            public_key=checkpoint.public_key,
            signature=checkpoint.signature,
        )
    )
    session.flush()
    append(
        session,
        actor=actor,
        action=Action.CHECKPOINT,
        subject=f"checkpoint:{n}",
        details={"n": n, "seq": checkpoint.seq, "head": checkpoint.head, "key_id": checkpoint.key_id},
        now=now,
    )
    return checkpoint


@dataclass
class AuditReport:
    events: int = 0
    checkpoints: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_event(self) -> int | None:
        return min((p["seq"] for p in self.problems if p.get("seq") is not None), default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "ok": self.ok,
            "first_bad_event": self.first_bad_event,
            "checkpoints": self.checkpoints,
            "problems": self.problems,
        }


def verify(session: Session, trusted: Ed25519PublicKey | None = None) -> AuditReport:
    """Walk the whole chain, its head and every checkpoint; report every break.

    ``trusted`` is the public key checkpoints must be signed with; without it,
    each checkpoint is checked against the key it embeds.
    """
    chain = check_chain(events(session))
    report = AuditReport(events=chain.events)
    report.problems += [{"seq": p.seq, "problem": p.problem, "detail": p.detail} for p in chain.problems]

    head_seq, head_hash = head(session)
    if (head_seq, head_hash) != (chain.last_seq, chain.last_hash):
        report.problems.append(
            {
                "seq": min(head_seq, chain.last_seq) + 1 if head_seq != chain.last_seq else head_seq,
                "problem": "truncated" if head_seq > chain.last_seq else "head_mismatch",
                "detail": f"the chain head records event {head_seq} ({head_hash[:16]}…) but the "
                f"last event is {chain.last_seq} ({chain.last_hash[:16]}…)",
            }
        )

    for cp in checkpoints(session):
        report.checkpoints += 1
        if not cp.signature_valid(trusted):
            report.problems.append(
                {
                    "seq": None,
                    "checkpoint": cp.n,
                    "problem": "bad_signature",
                    "detail": f"checkpoint {cp.n} has no valid signature"
                    f"{' by the trusted key' if trusted else ''}",
                }
            )
        row = session.get(CustodyEventRow, cp.seq) if cp.seq else None
        found = row.hash if row else (GENESIS_HASH if cp.seq == 0 else None)
        if found != cp.head:
            report.problems.append(
                {
                    "seq": cp.seq,
                    "checkpoint": cp.n,
                    "problem": "checkpoint_mismatch",
                    "detail": f"checkpoint {cp.n} signed event {cp.seq} as {cp.head[:16]}…, "
                    f"the catalog has {found[:16] + '…' if found else 'no such event'}",
                }
            )
    report.problems.sort(key=lambda p: (p["seq"] is None, p["seq"] or 0))
    return report
