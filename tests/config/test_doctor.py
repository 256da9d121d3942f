"""What `evidence doctor` judges, as values in and findings out (no I/O)."""

from datetime import UTC, datetime, timedelta

import pytest

from config import doctor
from config.doctor import (
    exit_code,
    judge_age,
    judge_bucket,
    judge_clock,
    judge_credential,
    judge_free_space,
    judge_key_id,
    judge_schema,
    judge_signing_history,
    judge_tool,
    span,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_exit_codes_follow_the_worst_finding() -> None:
    good = doctor.ok("catalog", "fine")
    warn = doctor.warning("fixity", "no fixity sweep yet")
    bad = doctor.problem("clock", "off", "sync it")
    settings = doctor.problem(doctor.SETTINGS_CHECK, "unknown key", "fix it")
    assert exit_code([good, warn, doctor.skipped("clock", "sqlite")]) == 0
    assert exit_code([good, warn, bad]) == 1
    assert exit_code([settings, bad]) == 2
    assert doctor.summary([good, warn, bad, bad]) == {"ok": 1, "warning": 1, "problem": 2, "skipped": 0}


def test_every_problem_says_what_to_do() -> None:
    with pytest.raises(TypeError):
        doctor.problem("x", "broken")  # type: ignore[call-arg]
    assert judge_schema(None, "0010", ["0010"]).hint == "run `evidence init`"


@pytest.mark.parametrize(
    ("current", "status", "words"),
    [
        ("0010", "ok", "newest"),
        ("0009", "problem", "run `evidence init`"),
        ("9999", "problem", "newer version"),
        (None, "problem", "not initialized"),
    ],
)
def test_schema(current: str | None, status: str, words: str) -> None:
    found = judge_schema(current, "0010", ["0009", "0010"])
    assert found.status == status
    assert words in found.message + found.hint


def test_a_job_is_judged_against_its_cadence() -> None:
    day = timedelta(days=1)
    assert judge_age("checkpoint", "checkpoint", NOW - timedelta(hours=23), NOW, day, "h").status == "ok"
    late = judge_age("checkpoint", "checkpoint", NOW - timedelta(hours=25), NOW, day, "check the timer")
    assert late.status == "problem" and late.hint == "check the timer"
    assert "1 d 1 h ago, more than 1 d" in late.message
    assert late.data["age_hours"] == 25.0
    never = judge_age("fixity", "fixity sweep", None, NOW, day, "h")
    assert never.status == "warning" and never.message == "no fixity sweep yet"


def test_spans_read_as_people_write_them() -> None:
    assert span(timedelta(days=8, hours=3)) == "8 d 3 h"
    assert span(timedelta(hours=5, minutes=12)) == "5 h 12 min"
    assert span(timedelta(minutes=2)) == "2 min"
    assert span(timedelta(seconds=40)) == "40 s"
    assert span(timedelta(days=2)) == "2 d"


@pytest.mark.parametrize(
    ("role", "answer", "may_read", "status"),
    [
        ("station", "AccessDenied", False, "ok"),
        ("station", "InvalidAccessKeyId", False, "problem"),
        ("station", "SignatureDoesNotMatch", False, "problem"),
        ("station", "NoSuchKey", False, "warning"),  # a station that can read: too much
        ("reader", "NoSuchKey", True, "ok"),
        ("reader", "AccessDenied", True, "problem"),
        ("reader", "SignatureDoesNotMatch", True, "problem"),
        ("curator", "SlowDown", True, "problem"),
    ],
)
def test_a_credential_is_judged_by_what_a_read_of_a_missing_key_answers(
    role: str, answer: str, may_read: bool, status: str
) -> None:
    found = judge_credential(role, answer, may_read=may_read)
    assert found.status == status
    assert found.data["answer"] == answer


def test_the_bucket_must_be_versioned_and_locked_in_the_configured_mode() -> None:
    def statuses(*args):
        return {f.check: f.status for f in judge_bucket(*args)}

    assert statuses("Enabled", True, "COMPLIANCE", "COMPLIANCE") == {
        "storage.versioning": "ok",
        "storage.object_lock": "ok",
    }
    assert statuses("Enabled", True, None, "COMPLIANCE")["storage.object_lock"] == "warning"
    assert statuses("Enabled", True, "GOVERNANCE", "COMPLIANCE")["storage.object_lock"] == "problem"
    assert statuses(None, False, None, "COMPLIANCE") == {
        "storage.versioning": "problem",
        "storage.object_lock": "problem",
    }
    assert statuses("Suspended", True, "COMPLIANCE", "COMPLIANCE")["storage.versioning"] == "problem"


def test_keys_against_the_catalog_and_the_checkpoints() -> None:
    assert judge_key_id("keys.kek", "KEK", "abc", "abc").status == "ok"
    assert judge_key_id("keys.kek", "KEK", "abc", "def").status == "problem"
    assert judge_key_id("keys.kek", "KEK", None, "def").status == "warning"
    assert judge_signing_history("K2", []).status == "ok"
    assert judge_signing_history("K2", ["K1", "K2"]).status == "ok"
    assert judge_signing_history("K1", ["K1", "K2"]).status == "warning"
    replaced = judge_signing_history("K3", ["K1", "K2"])
    assert replaced.status == "problem" and "backup" in replaced.hint


def test_space_tools_and_clock() -> None:
    gib = 1 << 30
    assert judge_free_space("data folder", "/srv", 11 * gib, 10).status == "ok"
    low = judge_free_space("data folder", "/srv", 9 * gib, 10)
    assert low.status == "warning" and low.data == {"path": "/srv", "free_gib": 9.0}
    assert judge_tool("ffmpeg", "ffmpeg version 5.1", True).status == "ok"
    assert judge_tool("ffmpeg", None, True).status == "problem"
    assert judge_tool("ffmpeg", None, False).status == "warning"
    assert judge_clock(None, 60, "sqlite").status == "skipped"
    assert judge_clock(59.9, 60, "postgresql").status == "ok"
    assert judge_clock(-61, 60, "postgresql").status == "problem"
