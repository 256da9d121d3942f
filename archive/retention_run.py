"""The retention cron: mark what is due as pending, purge what stayed pending through its grace.

Two phases. A recording whose retention ended (``archive.retention.decide``)
becomes *pending deletion*; after the grace period it is purged with a
tombstone (``archive.purge``). Before each step the policy is asked again, so
a recording linked, held or flagged meanwhile is simply kept. Safeguards
against losing evidence by mistake:

- a pending recording whose due date moved *earlier* since it became pending
  (a shortened retention class) is refused unless ``confirm``;
- more purges in one run than ``max_purges`` are all refused unless ``confirm``;
- the storage lock runs on the real clock: a purge it refuses stays pending,
  is listed as refused, and is tried again next run;
- nothing is ever deleted because a disk is full;
- one run at a time (a lease in the catalog); a run killed halfway resumes.

``now`` is the policy clock (plans, drills, tests); storage always uses its own.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from catalog import custody, holds, locks
from catalog.actions import Action
from catalog.errors import InvalidInput, NotFound, Refused
from catalog.models import Case, CaseItem, Recording
from catalog.recordings import get_recording

from .context import ServiceContext
from .errors import ObjectLocked, StoreUnavailable
from .purge import purge_recording
from .retention import CaseLink, Decision, Facts, Rules, decide, lock_until

LOCK = "retention"
REFRESH_LOCKS_WITHIN = timedelta(days=365)


@dataclass
class Entry:
    subject: str
    reason: str
    due_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "reason": self.reason,
            "due_at": self.due_at.isoformat() if self.due_at else None,
        }


@dataclass
class RunResult:
    now: datetime
    due: list[Entry] = field(default_factory=list)
    pending: list[Entry] = field(default_factory=list)
    purged: list[Entry] = field(default_factory=list)
    refused: list[Entry] = field(default_factory=list)
    restored: list[Entry] = field(default_factory=list)
    kept: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "kept": self.kept,
            **{
                name: [e.to_json() for e in getattr(self, name)]
                for name in ("due", "pending", "purged", "refused", "restored")
            },
        }


def _facts(session: Session) -> list[tuple[Recording, Facts]]:
    recordings = list(
        session.execute(
            select(Recording).where(Recording.status.in_(["archived", "pending_deletion"]))
        ).scalars()
    )
    links: dict[int, list[CaseLink]] = {}
    for rid, status, closed_on, case_type, major in session.execute(
        select(CaseItem.recording_id, Case.status, Case.closed_on, Case.case_type, Case.major)
        .join(Case, Case.id == CaseItem.case_id)
        .where(CaseItem.recording_id.is_not(None), CaseItem.unlinked_at.is_(None))
    ):
        closed = datetime.combine(closed_on, time.min, tzinfo=UTC) if closed_on else None
        if rid is not None:  # guaranteed by the query: a check for the type checker
            links.setdefault(rid, []).append(CaseLink(status, closed, case_type, major))
    held = set()
    for hold in holds.active_holds(session):
        held |= {r.id for r in holds.resolve(session, hold.subject).recordings}
    out = []
    for r in recordings:
        flags = json.loads(r.flags or "{}")
        restored = flags.get("restored_at")
        out.append(
            (
                r,
                Facts(
                    recorded=r.start_time or r.ingested_at,
                    archived=r.ingested_at,
                    important=r.important,
                    flags=frozenset(k for k, v in flags.items() if v is True),
                    held=r.id in held,
                    cases=tuple(links.get(r.id, ())),
                    restored_at=datetime.fromisoformat(restored) if restored else None,
                ),
            )
        )
    return out


def run(
    ctx: ServiceContext,
    rules: Rules,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    confirm: bool = False,
    max_purges: int = 200,
) -> RunResult:
    """``now`` moves only the policy clock (drills, tests); storage locks and purges use the
    context's real clock. ``dry_run`` (and ``retention plan``) computes everything and changes
    nothing."""
    policy_now = now or ctx.now()
    if dry_run:
        return _run(ctx, rules, policy_now, True, confirm, max_purges)
    with locks.held(ctx.sessions, LOCK, f"{ctx.actor}@{socket.gethostname()}:{os.getpid()}"):
        result = _run(ctx, rules, policy_now, False, confirm, max_purges)
        # The run itself is on the record, so `evidence doctor` can tell a retention cron
        # that stopped running from one that found nothing to do.
        with ctx.sessions.begin() as session:
            custody.append(
                session,
                actor=ctx.actor,
                action=Action.RETENTION_RUN,
                subject=None,
                details={
                    "now": policy_now.isoformat(),
                    "kept": result.kept,
                    **{
                        name: len(getattr(result, name))
                        for name in ("due", "pending", "purged", "refused", "restored")
                    },
                },
            )
        return result


def _run(
    ctx: ServiceContext, rules: Rules, now: datetime, dry_run: bool, confirm: bool, max_purges: int
) -> RunResult:
    sessions, actor = ctx.sessions, ctx.actor
    result = RunResult(now=now)
    candidates: list[tuple[Recording, Decision]] = []
    with sessions() as session:
        evaluated = [(r, decide(facts, rules)) for r, facts in _facts(session)]
    for rec, decision in evaluated:
        entry = Entry(rec.archive_no, decision.reason, decision.due_at)
        due = decision.due_at is not None and decision.due_at <= now
        if rec.status == "archived":
            if due:
                if rec.due_at is not None and rec.due_at > now:
                    entry.reason += f" (was due {rec.due_at.isoformat()}: a retention setting changed)"
                result.due.append(entry)
                if not dry_run:
                    _mark_pending(sessions, rec, decision, now, actor)
            else:
                result.kept += 1
                if not dry_run:
                    _keep(ctx, rec, decision)
            continue
        # pending deletion
        if not due:
            result.restored.append(Entry(rec.archive_no, f"kept again: {decision.reason}", decision.due_at))
            if not dry_run:
                _restore(sessions, rec, f"policy now keeps it: {decision.reason}", actor, None)
        elif (
            rec.due_at is not None
            and decision.due_at is not None
            and decision.due_at < rec.due_at
            and not confirm
        ):
            entry.reason = (
                f"due date moved earlier ({rec.due_at.isoformat()} -> "
                f"{decision.due_at.isoformat()}) since it became pending: review the "
                "retention settings, then run with --confirm"
            )
            result.refused.append(entry)
        elif rec.pending_since is not None and rec.pending_since + rules.grace > now:
            entry.reason += f"; grace period until {(rec.pending_since + rules.grace).isoformat()}"
            result.pending.append(entry)
        else:
            candidates.append((rec, decision))
    if len(candidates) > max_purges and not confirm:
        result.refused += [
            Entry(
                r.archive_no,
                f"{len(candidates)} purges in one run exceed the limit of "
                f"{max_purges}: review `evidence retention plan`, then run with --confirm",
                d.due_at,
            )
            for r, d in candidates
        ]
        return result
    for rec, decision in candidates:
        entry = Entry(rec.archive_no, decision.reason, decision.due_at)
        if dry_run:
            result.purged.append(entry)
            continue
        try:
            purge_recording(ctx, rec.archive_no, reason=decision.reason, due_at=decision.due_at)
            result.purged.append(entry)
        except ObjectLocked as exc:
            entry.reason = f"storage refused the purge ({exc.message}); tried again next run"
            result.refused.append(entry)
        except (Refused, StoreUnavailable) as exc:
            entry.reason = f"not purged: {exc.message}"
            result.refused.append(entry)
    return result


def _row(session: Session, rec: Recording) -> Recording:
    row = session.get(Recording, rec.id)
    if row is None:  # recordings are never deleted, only marked purged
        raise NotFound(f"recording {rec.archive_no} is no longer in the catalog")
    return row


def _mark_pending(
    sessions: sessionmaker[Session], rec: Recording, decision: Decision, now: datetime, actor: str
) -> None:
    assert decision.due_at is not None, "only a due recording becomes pending"
    with sessions.begin() as session:
        row = _row(session, rec)
        row.status, row.pending_since, row.due_at = "pending_deletion", now, decision.due_at
        custody.append(
            session,
            actor=actor,
            action=Action.PENDING_DELETION,
            subject=rec.archive_no,
            details={"reason": decision.reason, "due_at": decision.due_at.isoformat()},
        )


def _keep(ctx: ServiceContext, rec: Recording, decision: Decision) -> None:
    """Record the current due date; keep the storage lock ahead of a kept recording."""
    sessions, store, real_now = ctx.sessions, ctx.store, ctx.now()
    if rec.due_at != decision.due_at:  # a write per changed row, not per recording per night
        with sessions.begin() as session:
            _row(session, rec).due_at = decision.due_at
    if rec.retain_until is None or rec.retain_until > real_now + REFRESH_LOCKS_WITHIN:
        return
    wanted = (
        lock_until(real_now, None, now=real_now)
        if decision.due_at is None
        else max(decision.due_at, real_now + timedelta(days=1))
    )
    if wanted <= rec.retain_until:
        return
    store.extend_retention(rec.storage_key, rec.storage_version, wanted)
    if rec.manifest_key:
        store.extend_retention(rec.manifest_key, None, wanted)
    with sessions.begin() as session:
        _row(session, rec).retain_until = wanted


def _restore(
    sessions: sessionmaker[Session], rec: Recording, reason: str, actor: str, restored_at: datetime | None
) -> None:
    with sessions.begin() as session:
        row = _row(session, rec)
        row.status, row.pending_since = "archived", None
        if restored_at is not None:
            flags = json.loads(row.flags or "{}")
            flags["restored_at"] = restored_at.isoformat()
            row.flags = json.dumps(flags, ensure_ascii=False)
        custody.append(
            session, actor=actor, action=Action.RESTORED, subject=rec.archive_no, details={"reason": reason}
        )


def restore(ctx: ServiceContext, archive_no: str, *, reason: str) -> None:
    """Bring a pending recording back; it is then kept at least another routine period."""
    if not reason or not reason.strip():
        raise InvalidInput("restoring needs a reason", hint="--reason '…'")
    with ctx.sessions() as session:
        rec = get_recording(session, archive_no)
    if rec.status != "pending_deletion":
        raise InvalidInput(f"{archive_no} is {rec.status}, not pending deletion")
    _restore(ctx.sessions, rec, reason.strip(), ctx.actor, ctx.now())
