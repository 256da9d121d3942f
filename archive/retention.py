"""Retention periods as values: calendar arithmetic, no clocks, no I/O."""

from __future__ import annotations

import calendar
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


def lock_until(recorded: datetime, period: Period, *, now: datetime,
               minimum: timedelta = timedelta(days=1)) -> datetime:
    """The storage lock for a record: its period's end, never less than ``now + minimum``.

    A recording docked long after it was made may already be past its routine
    period; it still gets a lock (object stores refuse a retain-until in the
    past), and the retention cron decides about it with its grace period.
    """
    end = add_period(recorded, period)
    if end is None:
        end = add_months(now, 12 * PERMANENT_LOCK_YEARS)
    return max(end, now + minimum)
