"""The retention cron across years of policy clock, on both stores (locks on the real clock)."""

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from archive.cases import close_case
from archive.digest import hash_file
from archive.holds import set_hold
from archive.links import link_recordings
from archive.originals import OriginalFacts, store_original
from archive.policy import ArchivePolicy
from archive.retention import Rules, add_months
from archive.retention_run import restore, run
from catalog import custody, locks
from catalog.errors import Refused
from catalog.models import Recording, Tombstone
from catalog.recordings import reserve_archive_number
from tests.conftest import FORMATS, ZONE

RULES = Rules(routine=(6, "months"), case_types={"简易程序": (1, "years")}, grace=timedelta(days=7))
# Years of policy clock after which a routine recording archived now is due: six months
# from its archiving (its recording time, 400 days ago, is earlier and does not count).
DUE = 0.51


def cron(env, years: float, **kw):
    return run(env.as_("cron"), kw.pop("rules", RULES), now=env.now() + timedelta(days=365 * years), **kw)


def statuses(env) -> dict[str, str]:
    with env.sessions() as s:
        return {r.archive_no: r.status for r in s.query(Recording)}


def test_across_the_years_only_what_may_go_goes(env) -> None:
    routine, linked, held, important = (env.recording(n) for n in range(4))
    case = env.case("案〔2020〕7号")
    link_recordings(env.as_("r"), case.number, [linked.archive_no])
    set_hold(env.as_("legal"), held.archive_no, reason="诉讼")
    with env.sessions.begin() as s:
        s.get(Recording, important.id).important = True
    # Routine ones are due six months after they were archived; plan changes nothing.
    assert run(env.as_("cron"), RULES, now=env.now() + timedelta(days=365 * 0.49), dry_run=True).due == []
    plan = run(env.as_("cron"), RULES, now=env.now() + timedelta(days=365 * DUE), dry_run=True)
    assert [e.subject for e in plan.due] == [routine.archive_no] and plan.kept == 3
    assert statuses(env)[routine.archive_no] == "archived"
    first = cron(env, DUE)
    assert [e.subject for e in first.due] == [routine.archive_no] and first.purged == []
    assert cron(env, DUE + 0.01).pending[0].subject == routine.archive_no  # within the grace period
    time.sleep(3.5)  # the storage locks (a few seconds here) run out on the real clock
    later = cron(env, DUE + 0.05)
    assert [e.subject for e in later.purged] == [routine.archive_no] and later.refused == []
    assert statuses(env) == {
        routine.archive_no: "purged",
        linked.archive_no: "archived",
        held.archive_no: "archived",
        important.archive_no: "archived",
    }
    # Ten years on, nothing more goes while the case is open; after it closes, its class counts.
    assert cron(env, 10).due == []
    close_case(env.as_("r"), case.number, closed_on=env.now().date())
    with env.sessions.begin() as s:
        from catalog.cases import get_case

        get_case(s, case.number).case_type = "简易程序"
    assert [e.subject for e in cron(env, 2).due] == [linked.archive_no]
    with env.sessions() as s:
        assert s.query(Tombstone).count() == 1 and custody.verify(s).ok


def test_the_store_refuses_a_purge_before_its_lock_ends(env) -> None:
    rec = env.recording(1)
    cron(env, DUE)
    # Storage holds this one for an hour: the policy clock cannot move the real one.
    env.store.extend_retention(rec.storage_key, rec.storage_version, env.now() + timedelta(hours=1))
    result = cron(env, 1)
    assert [e.subject for e in result.refused] == [rec.archive_no]
    assert "storage refused" in result.refused[0].reason
    assert statuses(env)[rec.archive_no] == "pending_deletion"


def test_a_shortened_class_and_too_many_purges_need_confirm(env) -> None:
    a, b, c = (env.recording(n) for n in range(3))
    long_rules = Rules(routine=(12, "months"))
    cron(env, 1.01, rules=long_rules)  # due twelve months after they were archived
    with env.sessions.begin() as s:  # pretend they became due later under a longer class
        for r in s.query(Recording):
            r.due_at = r.due_at + timedelta(days=200)
    time.sleep(3.5)
    refused = cron(env, 1.1)
    assert {e.subject for e in refused.refused} == {a.archive_no, b.archive_no, c.archive_no}
    assert "moved earlier" in refused.refused[0].reason and refused.purged == []
    with env.sessions.begin() as s:  # settings reviewed: due dates as the policy computes them
        for r in s.query(Recording):
            r.due_at = None
    limited = cron(env, 1.1, confirm=False, max_purges=1)
    assert len(limited.refused) == 3 and "exceed the limit" in limited.refused[0].reason
    confirmed = cron(env, 1.1, confirm=True)
    assert len(confirmed.purged) == 3


def test_restore_and_the_lock_against_two_runs(env) -> None:
    rec = env.recording(1)
    cron(env, DUE)
    restored_at = env.now() + timedelta(days=365 * DUE)  # on the policy clock
    restore(env.as_("legal", now=restored_at), rec.archive_no, reason="复核需要")
    assert statuses(env)[rec.archive_no] == "archived"
    assert cron(env, DUE).due == []  # kept another routine period after the restore
    with env.sessions() as s:
        flags = json.loads(s.get(Recording, rec.id).flags)
    assert "restored_at" in flags
    locks.acquire(env.sessions, "retention", "someone-else", timedelta(minutes=5))
    with pytest.raises(Refused, match="in progress"):
        cron(env, 0)
    locks.release(env.sessions, "retention", "someone-else")
    cron(env, 0)


def test_a_recording_dated_2001_is_kept_and_locked_the_routine_period_after_archiving(env) -> None:
    """A recorder whose clock was reset: its 2001 file is not due minutes after ingest."""
    path = env.tmp / "A123456@200101010000000001.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + hashlib.sha256(b"2001").digest() * 100)
    now = env.now()
    number = reserve_archive_number(env.engine, FORMATS, ZONE, unit="KZCG", station="ST01", now=now)
    station = env.as_("station:ST01", now=now, policy=ArchivePolicy(zone=ZONE, routine=(6, "months")))
    rec = store_original(
        station,
        path,
        hash_file(path),
        OriginalFacts(
            station="ST01",
            unit="KZCG",
            kind="video",
            original_name=path.name,
            start_time=datetime(2001, 1, 1, tzinfo=UTC),
            flags={"clock_suspect": "file name and container times differ"},
        ),
        archive_no=number,
    )
    routine_end = add_months(now, 6)
    # The storage lock runs to six months after the archiving, object and manifest alike.
    for key, version in ((rec.storage_key, rec.storage_version), (rec.manifest_key, None)):
        until = env.store.stat(key, version).retention.until
        assert abs((until - routine_end).total_seconds()) < 2, (key, until)
    for later in (timedelta(minutes=5), timedelta(days=1), timedelta(days=180)):
        assert run(env.as_("cron"), RULES, now=now + later, dry_run=True).due == []
    due = run(env.as_("cron"), RULES, now=routine_end + timedelta(minutes=1), dry_run=True).due
    assert [(e.subject, e.reason) for e in due] == [(number, "routine period over")]
