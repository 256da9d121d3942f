"""Derive jobs on both catalogs: one claim per job however many workers ask at once, leases
renewed and taken over once lapsed, failures counted up to failed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from catalog import derive_jobs
from catalog.db import session_factory
from catalog.models import DeriveJob, Recording

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def _recordings(sessions, n: int) -> list[int]:
    with sessions.begin() as s:
        rows = [
            Recording(
                archive_no=f"KZCG-20261130-ST01-{i:04d}",
                kind="video",
                sha256=f"{i:064x}",
                size=1,
                original_name=f"{i}.mp4",
                ingested_at=T0,
                storage_key=f"originals/2026/11/30/{i}.mp4",
            )
            for i in range(1, n + 1)
        ]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def _job(sessions, recording_id: int) -> DeriveJob:
    with sessions() as s:
        return s.execute(select(DeriveJob).where(DeriveJob.recording_id == recording_id)).scalar_one()


def test_a_job_is_queued_once_and_claimed_by_one_worker(engine) -> None:
    sessions = session_factory(engine)
    (rid,) = _recordings(sessions, 1)
    for _ in range(2):
        with sessions.begin() as s:
            derive_jobs.enqueue(s, rid, "proxy", T0)
    assert derive_jobs.claim(sessions, "w1", T0, kinds=["poster"]) is None  # not a kind it takes
    job = derive_jobs.claim(sessions, "w1", T0, kinds=["proxy"], lease=LEASE)
    assert job is not None and (job.kind, job.owner, job.failures) == ("proxy", "w1", 0)
    assert job.archive_no == "KZCG-20261130-ST01-0001"
    assert derive_jobs.claim(sessions, "w2", T0 + LEASE / 2, lease=LEASE) is None  # leased
    assert derive_jobs.renew(sessions, job, T0 + LEASE / 2, LEASE)
    assert derive_jobs.claim(sessions, "w2", T0 + LEASE, lease=LEASE) is None  # renewed: still leased
    assert derive_jobs.finish(sessions, job, T0 + LEASE)
    assert _job(sessions, rid).state == "done"
    assert derive_jobs.claim(sessions, "w2", T0 + 10 * LEASE) is None


def test_a_lapsed_lease_is_taken_over_and_the_stalled_owner_finds_out(engine) -> None:
    sessions = session_factory(engine)
    (rid,) = _recordings(sessions, 1)
    with sessions.begin() as s:
        derive_jobs.enqueue(s, rid, "proxy", T0)
    dead = derive_jobs.claim(sessions, "w1", T0, lease=LEASE)
    assert dead is not None
    later = T0 + LEASE + timedelta(seconds=1)
    taken = derive_jobs.claim(sessions, "w2", later, lease=LEASE)
    assert taken is not None and taken.id == dead.id and taken.failures == 1
    assert _job(sessions, rid).last_error == derive_jobs.LAPSED
    # The first owner comes back: it can neither renew, nor finish, nor fail the job.
    assert not derive_jobs.renew(sessions, dead, later, LEASE)
    assert not derive_jobs.finish(sessions, dead, later)
    assert derive_jobs.fail(sessions, dead, "late", later) == "lost"
    assert derive_jobs.finish(sessions, taken, later)


def test_three_failures_and_the_job_is_failed_with_its_reason(engine) -> None:
    sessions = session_factory(engine)
    (rid,) = _recordings(sessions, 1)
    with sessions.begin() as s:
        derive_jobs.enqueue(s, rid, "proxy", T0)
    now = T0
    states = []
    for n in range(3):
        job = derive_jobs.claim(sessions, "w", now, lease=LEASE)
        assert job is not None and job.failures == n
        states.append(derive_jobs.fail(sessions, job, f"ffmpeg failed ({n})", now, retry_after=LEASE))
        assert derive_jobs.claim(sessions, "w", now + LEASE / 2) is None  # waits before a retry
        now += LEASE
    assert states == ["queued", "queued", "failed"]
    assert derive_jobs.claim(sessions, "w", now + 100 * LEASE) is None
    with sessions() as s:
        assert derive_jobs.failed_jobs(s) == [
            {
                "archive_no": "KZCG-20261130-ST01-0001",
                "station": None,
                "kind": "proxy",
                "failures": 3,
                "reason": "ffmpeg failed (2)",
            }
        ]
        assert derive_jobs.counts(s) == {"failed": 1}


def test_lapses_count_as_failures_too(engine) -> None:
    sessions = session_factory(engine)
    (rid,) = _recordings(sessions, 1)
    with sessions.begin() as s:
        derive_jobs.enqueue(s, rid, "proxy", T0)
    now = T0
    for n in range(3):
        assert derive_jobs.claim(sessions, f"w{n}", now, lease=LEASE) is not None
        now += 2 * LEASE  # each owner dies holding it
    assert derive_jobs.claim(sessions, "w9", now, lease=LEASE) is None
    job = _job(sessions, rid)
    assert (job.state, job.failures, job.last_error) == ("failed", 3, derive_jobs.LAPSED)


def test_many_workers_at_once_claim_each_job_exactly_once(engine) -> None:
    sessions = session_factory(engine)
    ids = _recordings(sessions, 24)
    with sessions.begin() as s:
        for rid in ids:
            derive_jobs.enqueue(s, rid, "proxy", T0)
    claimed: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def worker(name: str) -> None:
        start.wait()
        while (job := derive_jobs.claim(sessions, name, T0, lease=LEASE)) is not None:
            with lock:
                claimed.append(job.recording_id)
            assert derive_jobs.finish(sessions, job, T0)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)
    with sessions() as s:
        assert derive_jobs.counts(s) == {"done": 24}
