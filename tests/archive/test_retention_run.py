"""The retention cron across years of policy clock, on both stores (locks on the real clock)."""

import json
import time
from datetime import timedelta

import pytest

from archive.cases import close_case
from archive.holds import set_hold
from archive.links import link_recordings
from archive.retention import Rules
from archive.retention_run import restore, run
from catalog import custody, locks
from catalog.errors import Refused
from catalog.models import Recording, Tombstone

RULES = Rules(routine=(6, "months"), case_types={"简易程序": (1, "years")}, grace=timedelta(days=7))


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
    # The recordings were made 400 days ago: routine ones are due now; plan changes nothing.
    plan = run(env.as_("cron"), RULES, now=env.now(), dry_run=True)
    assert [e.subject for e in plan.due] == [routine.archive_no] and plan.kept == 3
    assert statuses(env)[routine.archive_no] == "archived"
    first = cron(env, 0)
    assert [e.subject for e in first.due] == [routine.archive_no] and first.purged == []
    assert cron(env, 0.01).pending[0].subject == routine.archive_no  # within the grace period
    time.sleep(3.5)  # the storage locks (a few seconds here) run out on the real clock
    later = cron(env, 0.05)
    assert [e.subject for e in later.purged] == [routine.archive_no] and later.refused == []
    assert statuses(env) == {routine.archive_no: "purged", linked.archive_no: "archived",
                             held.archive_no: "archived", important.archive_no: "archived"}
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
    cron(env, 0)
    # Storage holds this one for an hour: the policy clock cannot move the real one.
    env.store.extend_retention(rec.storage_key, rec.storage_version, env.now() + timedelta(hours=1))
    result = cron(env, 1)
    assert [e.subject for e in result.refused] == [rec.archive_no]
    assert "storage refused" in result.refused[0].reason
    assert statuses(env)[rec.archive_no] == "pending_deletion"


def test_a_shortened_class_and_too_many_purges_need_confirm(env) -> None:
    a, b, c = (env.recording(n) for n in range(3))
    long_rules = Rules(routine=(12, "months"))
    cron(env, 0, rules=long_rules)  # 400-day-old recordings: due under 12 months too
    with env.sessions.begin() as s:  # pretend they became due later under a longer class
        for r in s.query(Recording):
            r.due_at = r.due_at + timedelta(days=200)
    time.sleep(3.5)
    refused = cron(env, 1)
    assert {e.subject for e in refused.refused} == {a.archive_no, b.archive_no, c.archive_no}
    assert "moved earlier" in refused.refused[0].reason and refused.purged == []
    with env.sessions.begin() as s:  # settings reviewed: due dates as the policy computes them
        for r in s.query(Recording):
            r.due_at = None
    limited = cron(env, 1, confirm=False, max_purges=1)
    assert len(limited.refused) == 3 and "exceed the limit" in limited.refused[0].reason
    confirmed = cron(env, 1, confirm=True)
    assert len(confirmed.purged) == 3


def test_restore_and_the_lock_against_two_runs(env) -> None:
    rec = env.recording(1)
    cron(env, 0)
    restore(env.as_("legal"), rec.archive_no, reason="复核需要")
    assert statuses(env)[rec.archive_no] == "archived"
    assert cron(env, 0).due == []  # kept another routine period after the restore
    with env.sessions() as s:
        flags = json.loads(s.get(Recording, rec.id).flags)
    assert "restored_at" in flags
    locks.acquire(env.sessions, "retention", "someone-else", timedelta(minutes=5))
    with pytest.raises(Refused, match="in progress"):
        cron(env, 0)
    locks.release(env.sessions, "retention", "someone-else")
    cron(env, 0)
