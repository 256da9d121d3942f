"""The custody chain in the catalog: append, read, checkpoint, verify.

Appenders lock the single ``custody_head`` row (``SELECT … FOR UPDATE`` on
PostgreSQL; SQLite's write lock does the same), so concurrent writers queue
and the chain never forks. The event is written in the caller's transaction:
it commits, or rolls back, with the change it records.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import jcs, keyhistory
from .actions import Action
from .chain import GENESIS_HASH, CustodyEvent, check_chain, seal_v2
from .checkpoint import Anchors, Checkpoint, from_statement, sign_checkpoint_v2
from .models import CheckpointRow, CustodyEventRow, CustodyHead, KeyStatement

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
    CustodyEventRow.v,
    CustodyEventRow.body,
    CustodyEventRow.body_hash,
)


def _to_event(row: Any) -> CustodyEvent:
    seq, time, actor, action, subject, details, prev_hash, digest, v, body, body_hash = row
    return CustodyEvent(
        seq,
        time,
        actor,
        action,
        subject,
        json.loads(details),
        prev_hash,
        digest,
        v=v or 1,
        body=body.encode("utf-8") if body is not None else None,
        body_hash=body_hash,
    )


def lock_head(session: Session) -> CustodyHead:
    """Lock the chain's head row until the transaction ends: appenders wait."""
    return _lock_head(session)


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
    """Append one v2 event in the session's transaction and return it.

    Refused (``InvalidInput``, nothing written): an action not named in ``catalog.actions``,
    details holding a float or an integer beyond ±(2**53 − 1) (``catalog.jcs``).
    """
    action = Action(action)  # an action without a name in ``catalog.actions`` is refused
    head = _lock_head(session)
    subject_prev = (
        session.execute(
            select(CustodyEventRow.hash)
            .where(CustodyEventRow.subject == subject)
            .order_by(CustodyEventRow.seq.desc())
            .limit(1)
        ).scalar()
        if subject is not None
        else None
    )
    event = seal_v2(
        head.seq + 1, now or utcnow(), actor, action.value, subject, details or {}, head.hash, subject_prev
    )
    assert event.body is not None
    session.add(
        CustodyEventRow(
            seq=event.seq,
            time=event.time,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            details=json.dumps(event.details, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
            prev_hash=event.prev_hash,
            hash=event.hash,
            v=2,
            body=event.body.decode("utf-8"),
            body_hash=event.body_hash,
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


def events_about(
    session: Session, subjects: Iterable[str], *, after_seq: int = 0, upto_seq: int | None = None
) -> Iterator[CustodyEvent]:
    """The events about any of ``subjects`` (after ``after_seq``, up to ``upto_seq``), a few
    hundred subjects a query: in chain order for each subject, not across the batches."""
    wanted = sorted(set(subjects))
    for start in range(0, len(wanted), 500):
        query = (
            select(*_EVENT_COLUMNS)
            .where(CustodyEventRow.subject.in_(wanted[start : start + 500]), CustodyEventRow.seq > after_seq)
            .order_by(CustodyEventRow.seq)
        )
        if upto_seq is not None:
            query = query.where(CustodyEventRow.seq <= upto_seq)
        for row in session.execute(query.execution_options(yield_per=READ_BATCH)):
            yield _to_event(row)


def events_at(session: Session, seqs: Iterable[int]) -> Iterator[CustodyEvent]:
    """The events with these numbers, in chain order (a few hundred at a time)."""
    wanted = sorted(set(seqs))
    for start in range(0, len(wanted), 500):
        batch = wanted[start : start + 500]
        query = select(*_EVENT_COLUMNS).where(CustodyEventRow.seq.in_(batch)).order_by(CustodyEventRow.seq)
        for row in session.execute(query):
            yield _to_event(row)


def head(session: Session) -> tuple[int, str]:
    row = session.get(CustodyHead, 1)
    return (row.seq, row.hash) if row else (0, GENESIS_HASH)


def checkpoint_from_row(r: CheckpointRow) -> Checkpoint:
    """The checkpoint a row holds: for v2, read from the signed statement bytes themselves
    (``row_disagrees`` says whether the row's other columns agree with them)."""
    if r.v == 2 and r.statement is not None:
        try:
            signature = base64.b64decode(r.signature, validate=True)
        except ValueError:
            signature = b""
        try:
            return from_statement(r.statement.encode("utf-8"), signature, public_key=r.public_key)
        except jcs.NotCanonical:
            pass  # reported by ``verify``; read as the columns say so that the walk goes on
        return Checkpoint(r.n, r.seq, r.head, r.time, r.key_id, r.public_key, r.signature, v=2, key=r.key)
    return Checkpoint(r.n, r.seq, r.head, r.time, r.key_id, r.public_key, r.signature)


def row_disagrees(r: CheckpointRow, cp: Checkpoint) -> list[str]:
    """Columns of a v2 checkpoint row that differ from its statement (or ["statement"])."""
    if r.v != 2:
        return []
    if cp.statement_bytes is None:
        return ["statement"]
    return [
        name
        for name, column, signed in (
            ("n", r.n, cp.n),
            ("seq", r.seq, cp.seq),
            ("head", r.head, cp.head),
            ("key", r.key, cp.key),
        )
        if column != signed
    ]


def checkpoints(session: Session) -> list[Checkpoint]:
    rows = session.execute(select(CheckpointRow).order_by(CheckpointRow.n)).scalars()
    return [checkpoint_from_row(r) for r in rows]


def checkpoint_row(cp: Checkpoint, storage_key: str | None = None) -> CheckpointRow:
    return CheckpointRow(
        n=cp.n,
        seq=cp.seq,
        head=cp.head,
        time=cp.time,
        key_id=cp.key_id,
        public_key=cp.public_key,
        signature=cp.signature,
        storage_key=storage_key,
        v=cp.v,
        statement=cp.statement_bytes.decode("utf-8") if cp.statement_bytes is not None else None,
        key=cp.key,
    )


def nothing_new(session: Session) -> bool:
    """True when nothing happened since the last checkpoint but its own ``checkpoint`` event."""
    last = session.execute(select(CheckpointRow).order_by(CheckpointRow.n.desc()).limit(1)).scalar()
    if last is None:
        return False
    seq, _ = head(session)
    if seq == last.seq:
        return True
    if seq != last.seq + 1:
        return False
    action = session.execute(select(CustodyEventRow.action).where(CustodyEventRow.seq == seq)).scalar()
    return action == Action.CHECKPOINT.value


def make_checkpoint(
    session: Session, key: Ed25519PrivateKey, *, actor: str, now: datetime | None = None
) -> Checkpoint:
    """Sign the current head (v2, chained to the previous checkpoint), keep the checkpoint,
    and record that as an event."""
    locked = _lock_head(session)
    last = session.execute(select(CheckpointRow).order_by(CheckpointRow.n.desc()).limit(1)).scalar()
    n = (last.n if last else 0) + 1
    prev = checkpoint_from_row(last).digest() if last else None
    checkpoint = sign_checkpoint_v2(
        key, n=n, seq=locked.seq, head=locked.hash, time=now or utcnow(), prev=prev
    )
    session.add(checkpoint_row(checkpoint))
    session.flush()
    append(
        session,
        actor=actor,
        action=Action.CHECKPOINT,
        subject=f"checkpoint:{n}",
        details={"n": n, "seq": checkpoint.seq, "head": checkpoint.head, "signer": checkpoint.key},
        now=now,
    )
    return checkpoint


@dataclass
class AuditReport:
    events: int = 0
    checkpoints: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    signers: list[str] = field(default_factory=list)
    trusted: list[str] = field(
        default_factory=list
    )  # the signers trust reaches (pinned, or along the history)

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
            "signers": self.signers,
            "problems": self.problems,
        }


def verify(
    session: Session,
    anchors: Anchors | None = None,
    stored: Iterable[Checkpoint] | None = None,
    *,
    statements: keyhistory.Statements | None = None,
    existed_by: dict[int, datetime] | None = None,
) -> AuditReport:
    """Walk the whole chain, its head and every checkpoint; report every break.

    Each checkpoint must be signed by a pinned key (``anchors``), chain to the one before
    (v2 ``prev``), with no gap in ``n``, and sign the event the catalog holds at its ``seq``.
    ``stored`` are the checkpoints found in storage: each must be in the catalog, the same
    (a catalog row that is missing, or differs, is reported); a catalog checkpoint that was
    published (``storage_key`` set) must be in storage.

    Trust flows from the pinned keys along the key history (``catalog.keyhistory``): the
    catalog's statements and ``statements`` (those in storage, as
    ``archive.keyrotation.stored_statements`` reads them); ``existed_by`` gives, per
    checkpoint, the time a trusted time-stamp shows it existed by (for retired keys).
    """
    anchors = anchors if anchors is not None else Anchors()  # nothing pinned: nothing trusted
    history, history_problems = _history(session, anchors, statements)
    existed_by = existed_by or {}
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

    rows = {r.n: r for r in session.execute(select(CheckpointRow)).scalars()}
    cps = [checkpoint_from_row(rows[n]) for n in sorted(rows)]
    report.signers = sorted({cp.fingerprint or "?" for cp in cps})
    previous: Checkpoint | None = None
    for row_n, cp in zip(sorted(rows), cps, strict=True):
        report.checkpoints += 1

        def problem(kind: str, detail: str, seq: int | None = None, n: int = cp.n) -> None:
            report.problems.append({"seq": seq, "checkpoint": n, "problem": kind, "detail": detail})

        differs = row_disagrees(rows[row_n], cp)
        if differs:
            problem(
                "bad_signature",
                f"checkpoint row {row_n}: {', '.join(differs)} differ from the signed statement",
            )

        verdict = history.judge(cp, _carried(cp), existed_by.get(cp.n))
        if verdict is not None:
            problem(
                "untrusted" if "not trusted" in verdict else "bad_signature", f"checkpoint {cp.n}: {verdict}"
            )
        expected_n = previous.n + 1 if previous else 1
        if cp.n != expected_n:
            problem("checkpoint_gap", f"checkpoints {expected_n} to {cp.n - 1} are missing from the catalog")
        if cp.v == 2 and cp.prev != (previous.digest() if previous else None):
            problem(
                "checkpoint_chain",
                f"checkpoint {cp.n} names {str(cp.prev)[:16]}… as the previous statement, "
                f"the catalog's checkpoint {previous.n if previous else '-'} hashes to "
                f"{previous.digest()[:16] if previous else 'nothing'}…",
            )
        row = session.get(CustodyEventRow, cp.seq) if cp.seq else None
        found = row.hash if row else (GENESIS_HASH if cp.seq == 0 else None)
        if found != cp.head:
            problem(
                "checkpoint_mismatch",
                f"checkpoint {cp.n} signed event {cp.seq} as {cp.head[:16]}…, "
                f"the catalog has {found[:16] + '…' if found else 'no such event'}",
                seq=cp.seq,
            )
        previous = cp
    if stored is not None:
        _compare_stored(report, rows, list(stored))
    history_problems += history.check_committed(cps)
    report.trusted = sorted(fp for fp in report.signers if fp in history.anchors.trusted)
    report.problems += [
        {"seq": None, "problem": "key_history", "detail": f"{name}: {what}"}
        for name, what in history_problems
    ]
    report.problems.sort(key=lambda p: (p["seq"] is None, p["seq"] or 0))
    return report


def _history(
    session: Session,
    anchors: Anchors,
    extra: keyhistory.Statements | None,
) -> tuple[keyhistory.History, list[tuple[str, str]]]:
    """The key history of the catalog's statements and ``extra`` ones (the same statement in
    both counts once; a different one is a fork or a second retirement)."""
    kh = keyhistory
    changes, retirements, problems = kh.recorded(session)
    if extra is not None:
        more_changes, more_retirements, more_problems = extra
        ours: list[kh.KeyChange | kh.Retirement] = [*changes, *retirements]
        theirs: list[kh.KeyChange | kh.Retirement] = [*more_changes, *more_retirements]
        known = {x.digest() for x in ours}
        changes += [c for c in more_changes if c.digest() not in known]
        retirements += [r for r in more_retirements if r.digest() not in known]
        problems += [(f"storage {name}", what) for name, what in more_problems]
        in_storage = {x.digest() for x in theirs}
        stored_names = set(
            session.execute(select(KeyStatement.name).where(KeyStatement.stored.is_(True))).scalars()
        )
        both: list[kh.KeyChange | kh.Retirement] = [*changes, *retirements]
        for statement in both:
            if statement.name in stored_names and statement.digest() not in in_storage:
                problems.append((statement.name, "recorded as stored but not in storage"))
    material = Anchors(set(anchors.trusted), dict(anchors.keys))
    kh.add_keys(material, session)
    history = kh.resolve(material, changes, retirements)
    return history, problems + history.problems


def _carried(cp: Checkpoint) -> bytes | None:
    try:
        return base64.b64decode(cp.public_key, validate=True) or None
    except ValueError:
        return None


def _compare_stored(report: AuditReport, rows: dict[int, CheckpointRow], stored: list[Checkpoint]) -> None:
    by_n: dict[int, Checkpoint] = {}
    for cp in stored:
        by_n[cp.n] = cp

    def problem(n: int, kind: str, detail: str) -> None:
        report.problems.append({"seq": None, "checkpoint": n, "problem": kind, "detail": detail})

    for n, cp in sorted(by_n.items()):
        row = rows.get(n)
        if row is None:
            problem(n, "checkpoint_missing", f"checkpoint {n} is in storage but not in the catalog")
            continue
        ours = checkpoint_from_row(row)
        if (ours.seq, ours.head, ours.digest()) != (cp.seq, cp.head, cp.digest()):
            problem(
                n,
                "checkpoint_differs",
                f"checkpoint {n}: storage signs event {cp.seq} as {cp.head[:16]}…, "
                f"the catalog has event {ours.seq} as {ours.head[:16]}… (statements differ)",
            )
    for n, row in sorted(rows.items()):
        if n not in by_n and row.storage_key is not None:
            problem(n, "checkpoint_unstored", f"checkpoint {n} was published but is not in storage")
    if by_n:
        numbers = sorted(by_n)
        gaps = [n for n in range(1, numbers[-1] + 1) if n not in by_n and n not in rows]
        if gaps:
            problem(
                gaps[0], "checkpoint_gap", f"checkpoint(s) {gaps} are neither in storage nor in the catalog"
            )
