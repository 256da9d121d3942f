"""Times as people give them and as the command prints them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from .errors import InvalidInput


def parse_user_time(text: str, zone: ZoneInfo, *, end_of_day: bool = False) -> datetime:
    """A date or date-time; without an offset it is read in ``zone``.

    A bare date means its first instant, or with ``end_of_day`` its last one,
    so that ranges given as dates include both ends.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time.max if end_of_day else time.min)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not a date or date-time",
            hint="write 2020-11-05, 2020-11-05T08:50:56 or 2020-11-05T08:50:56+08:00",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def parse_user_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date", hint="write 2020-11-05") from None


def local_iso(moment: datetime | None, zone: ZoneInfo) -> str | None:
    """ISO 8601 with the zone's offset, or None."""
    return None if moment is None else moment.astimezone(zone).isoformat()
