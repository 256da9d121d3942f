from datetime import UTC, datetime, timedelta

from archive.retention import (
    PERMANENT_LOCK_YEARS,
    CaseLink,
    Facts,
    Rules,
    add_months,
    add_period,
    decide,
    lock_until,
)

UTC = UTC


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
    assert lock_until(datetime(2026, 11, 1, tzinfo=UTC), (6, "months"), now=now) == datetime(
        2027, 5, 1, tzinfo=UTC
    )
    assert lock_until(datetime(2020, 1, 1, tzinfo=UTC), (6, "months"), now=now) == now + timedelta(days=1)
    assert lock_until(datetime(2020, 1, 1, tzinfo=UTC), None, now=now).year == 2026 + PERMANENT_LOCK_YEARS


# --- the policy ---------------------------------------------------------------------------


REC = datetime(2020, 11, 5, 8, tzinfo=UTC)
RULES = Rules(case_types={"简易程序": (2, "years")})


def test_routine_recordings_go_six_calendar_months_after_recording() -> None:
    d = decide(Facts(REC), RULES)
    assert d == type(d)(datetime(2021, 5, 5, 8, tzinfo=UTC), "routine period over")


def test_holds_open_cases_and_flags_keep() -> None:
    assert decide(Facts(REC, held=True), RULES).reason == "legal hold"
    assert decide(Facts(REC, cases=(CaseLink("open", None),)), RULES).due_at is None
    assert decide(Facts(REC, important=True), RULES).due_at is None
    assert "obstruction" in decide(Facts(REC, flags=frozenset({"obstruction"})), RULES).reason
    # A closed case keeps permanently by default, and a major one always.
    closed = CaseLink("closed", datetime(2021, 3, 1, tzinfo=UTC))
    assert decide(Facts(REC, cases=(closed,)), RULES).due_at is None


def test_a_finite_case_class_counts_from_the_closing_and_the_longest_rule_wins() -> None:
    short = CaseLink("closed", datetime(2021, 3, 1, tzinfo=UTC), "简易程序")
    assert decide(Facts(REC, cases=(short,)), RULES).due_at == datetime(2023, 3, 1, tzinfo=UTC)
    longer = CaseLink("closed", datetime(2022, 1, 1, tzinfo=UTC), "简易程序")
    assert decide(Facts(REC, cases=(short, longer)), RULES).due_at == datetime(2024, 1, 1, tzinfo=UTC)
    major = CaseLink("closed", datetime(2021, 3, 1, tzinfo=UTC), "简易程序", major=True)
    assert decide(Facts(REC, cases=(short, major)), RULES).due_at is None
    still_open = CaseLink("open", None)
    assert decide(Facts(REC, cases=(short, still_open)), RULES).reason == "linked to an open case"


def test_a_restored_recording_is_kept_another_routine_period() -> None:
    restored = datetime(2021, 6, 1, tzinfo=UTC)
    assert decide(Facts(REC, restored_at=restored), RULES).due_at == datetime(2021, 12, 1, tzinfo=UTC)


def test_a_recorder_clock_in_2001_counts_from_the_archiving() -> None:
    archived = datetime(2026, 3, 1, 9, tzinfo=UTC)
    wrong_clock = Facts(
        datetime(2001, 1, 1, tzinfo=UTC), flags=frozenset({"clock_suspect"}), archived=archived
    )
    assert decide(wrong_clock, RULES).due_at == datetime(2026, 9, 1, 9, tzinfo=UTC)
    assert decide(
        Facts(datetime(2001, 1, 1, tzinfo=UTC), important=True, archived=archived),
        Rules(important=(1, "years")),
    ).due_at == datetime(2027, 3, 1, 9, tzinfo=UTC)
    # A recorder clock ahead of the archive's counts from the recording time (the later one).
    ahead = Facts(datetime(2026, 4, 1, tzinfo=UTC), archived=archived)
    assert decide(ahead, RULES).due_at == datetime(2026, 10, 1, tzinfo=UTC)
