"""Retention as values: calendar arithmetic and the policy deciding when a recording may go.

No clocks, no I/O: the retention run (``archive.retention_run``) feeds it facts.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

Period = tuple[int, str] | None  # (count, "days" | "months" | "years"); None is permanent

# S3 Object Lock has no "forever": a permanent record is locked this far ahead
# and its lock is extended again by the retention cron long before it ends.
# Ten years, not more: Ceph RGW 16 keeps retain-until dates in 32-bit seconds
# and silently wraps anything past 2038-01-19 into the past.
PERMANENT_LOCK_YEARS = 10


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months: 31 August + 6 months is 28/29 February, never 3 March."""
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def add_period(moment: datetime, period: Period) -> datetime | None:
    """``moment`` + ``period``; None for a permanent period."""
    if period is None:
        return None
    count, unit = period
    if unit == "days":
        return moment + timedelta(days=count)
    return add_months(moment, count * (12 if unit == "years" else 1))


def lock_until(
    recorded: datetime, period: Period, *, now: datetime, minimum: timedelta = timedelta(days=1)
) -> datetime:
    """The storage lock for a record: its period's end, never less than ``now + minimum``.

    A period that already ended still gives a lock (object stores refuse a
    retain-until in the past); the retention cron decides with its grace period.
    Originals pass the later of their recording and archiving times as ``recorded``
    (``counted_from``), so a recorder's wrong clock never shortens their lock.
    """
    end = add_period(recorded, period)
    if end is None:
        end = add_months(now, 12 * PERMANENT_LOCK_YEARS)
    return max(end, now + minimum)


# --- the policy: when a recording may go, and why ------------------------------------------


@dataclass(frozen=True)
class Rules:
    """Retention classes from the settings, as values."""

    routine: Period = (6, "months")
    case_default: Period = None
    case_types: dict[str, Period] = field(default_factory=dict)
    important: Period = None
    grace: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class CaseLink:
    status: str  # "open" or "closed"
    closed_on: datetime | None
    case_type: str | None = None
    major: bool = False


def counted_from(recorded: datetime | None, archived: datetime) -> datetime:
    """Where a recording's periods start: the later of its recording and archiving times.

    The recording time comes from the recorder's clock, which may be years off (a
    camera reset to 2001); counting from it could make a file due minutes after it
    was archived. The archive's own clock says when it got the file.
    """
    return archived if recorded is None else max(recorded, archived)


@dataclass(frozen=True)
class Facts:
    """What the policy needs to know about one recording."""

    recorded: datetime
    important: bool = False
    flags: frozenset[str] = frozenset()  # "obstruction", "emergency"
    held: bool = False
    cases: tuple[CaseLink, ...] = ()
    restored_at: datetime | None = None
    archived: datetime | None = None  # when the archive got it (``Recording.ingested_at``)


@dataclass(frozen=True)
class Decision:
    due_at: datetime | None  # None: kept for now (no end, or an end still unknown)
    reason: str


def decide(facts: Facts, rules: Rules) -> Decision:
    """The longest applicable rule wins; anything that keeps a recording for good wins outright."""
    if facts.held:
        return Decision(None, "legal hold")
    if any(c.status == "open" for c in facts.cases):
        return Decision(None, "linked to an open case")
    flagged = sorted(f for f in facts.flags if f in ("obstruction", "emergency"))
    start = facts.recorded if facts.archived is None else counted_from(facts.recorded, facts.archived)
    candidates: list[tuple[datetime | None, str]] = [
        (add_period(start, rules.routine), "routine period over")
    ]
    if facts.important or flagged:
        why = "important file" if facts.important else f"flagged {', '.join(flagged)}"
        candidates.append((add_period(start, rules.important), why))
    for case in facts.cases:
        period = None if case.major else rules.case_types.get(case.case_type or "", rules.case_default)
        end = add_period(case.closed_on, period) if case.closed_on else None
        candidates.append(
            (
                end,
                f"case class{' ' + case.case_type if case.case_type else ''}"
                f"{' (major case)' if case.major else ''}",
            )
        )
    if facts.restored_at is not None:
        candidates.append((add_period(facts.restored_at, rules.routine), "restored by hand"))
    forever = [why for end, why in candidates if end is None]
    if forever:
        return Decision(None, f"kept permanently: {forever[0]}")
    end, why = max(candidates, key=lambda c: c[0])  # type: ignore[arg-type, return-value]  # None-free by the filter above
    return Decision(end, why)
