from datetime import datetime, timedelta, timezone

from archive.retention import PERMANENT_LOCK_YEARS, add_months, add_period, lock_until

UTC = timezone.utc


def test_calendar_months_clamp_to_the_month_end() -> None:
    assert add_months(datetime(2020, 8, 31, 10, tzinfo=UTC), 6) == datetime(2021, 2, 28, 10, tzinfo=UTC)
    assert add_months(datetime(2019, 8, 31, tzinfo=UTC), 6) == datetime(2020, 2, 29, tzinfo=UTC)
    assert add_months(datetime(2020, 11, 5, tzinfo=UTC), 14) == datetime(2022, 1, 5, tzinfo=UTC)
    assert add_months(datetime(2020, 1, 31, tzinfo=UTC), -1) == datetime(2019, 12, 31, tzinfo=UTC)


def test_periods() -> None:
    t = datetime(2020, 2, 29, tzinfo=UTC)
    assert add_period(t, (6, "months")) == datetime(2020, 8, 29, tzinfo=UTC)
    assert add_period(t, (1, "years")) == datetime(2021, 2, 28, tzinfo=UTC)
    assert add_period(t, (10, "days")) == datetime(2020, 3, 10, tzinfo=UTC)
    assert add_period(t, None) is None


def test_lock_until_never_in_the_past_and_permanent_is_far_ahead() -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    assert lock_until(datetime(2026, 11, 1, tzinfo=UTC), (6, "months"), now=now) == \
        datetime(2027, 5, 1, tzinfo=UTC)
    assert lock_until(datetime(2020, 1, 1, tzinfo=UTC), (6, "months"), now=now) == now + timedelta(days=1)
    assert lock_until(datetime(2020, 1, 1, tzinfo=UTC), None, now=now).year == 2026 + PERMANENT_LOCK_YEARS
