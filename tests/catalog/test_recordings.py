"""Get-or-create in the catalog under concurrency: stations, recorders, officers, jobs.

Four stations' first scans at once once failed with ``duplicate key value violates unique
constraint "pk_stations"`` on PostgreSQL: every worker saw no row and inserted one.
"""

import multiprocessing
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from catalog import jobs
from catalog.db import make_engine, session_factory
from catalog.models import Device, DeviceAssignment, IngestJob, Officer, Station
from catalog.recordings import assign_device, device_row, officer_row, station_row
from tests.concurrency import at_once, raised

NOW = datetime(2026, 3, 1, 9, tzinfo=UTC)
ROUNDS = 5  # names per round are new, so every round races on an empty table


def _rows(sessions, name: str) -> tuple[str, int, int]:
    with sessions.begin() as session:
        station = station_row(session, f"ST{name}", "KZCG", NOW)
        device, officer = device_row(session, f"A{name}"), officer_row(session, f"JX{name}")
        assign_device(session, f"A{name}", f"JX{name}", valid_from=NOW)
        return station.id, device.id, officer.id


def _counts(engine) -> dict[str, int]:
    with session_factory(engine)() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (Station, Device, Officer, DeviceAssignment, IngestJob)
        }


def test_many_threads_create_the_same_rows_at_once(engine) -> None:
    sessions = session_factory(engine)
    for n in range(ROUNDS):
        results = at_once(12, lambda _i, n=n: _rows(sessions, f"{n:02d}"))
        assert raised(results) == []
        assert len(set(results)) == 1  # every worker got the same rows
        found = at_once(
            12, lambda _i, n=n: jobs.job_for(sessions, "ST01", f"f{n}.mp4", (1, 2, 10, 20, 30), NOW).id
        )
        assert raised(found) == [] and len(set(found)) == 1
    counts = _counts(engine)
    assert counts == {
        "stations": ROUNDS,
        "devices": ROUNDS,
        "officers": ROUNDS,
        "device_assignments": ROUNDS * 12,
        "ingest_jobs": ROUNDS,
    }


def _in_a_process(url: str, barrier, queue) -> None:
    engine = make_engine(url)
    sessions = session_factory(engine)
    try:
        out = []
        for n in range(ROUNDS):
            barrier.wait(60)
            try:
                out.append(_rows(sessions, f"{n:02d}"))
            except Exception as exc:  # noqa: BLE001 - reported to the test
                out.append(repr(exc))
        queue.put(out)
    finally:
        engine.dispose()


def test_processes_create_the_same_rows_at_once(engine, db_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = 4
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_in_a_process, args=(db_url, barrier, queue)) for _ in range(workers)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for n in range(ROUNDS):
        assert len({tuple(r[n]) if isinstance(r[n], tuple) else r[n] for r in results}) == 1, [
            r[n] for r in results
        ]
    counts = _counts(engine)
    assert counts["stations"] == counts["devices"] == counts["officers"] == ROUNDS


def test_an_assignment_closes_the_open_one_of_the_device(engine) -> None:
    sessions = session_factory(engine)
    with sessions.begin() as session:
        first = assign_device(session, "A123456", "JX0227", valid_from=NOW)
        assign_device(session, "A123456", "JX0301", valid_from=NOW + timedelta(days=3))
        assert first.valid_to == NOW + timedelta(days=3)
