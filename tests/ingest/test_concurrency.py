"""Several stations at once on one catalog: the same content is stored once, first scans never
fail on rows another worker creates, and a dead or stalled station's reservation lapses.

Races are reproduced for real: threads or processes held at a pipeline step until all are
there (the pipeline's fault hook), a child process killed with SIGKILL or frozen with SIGSTOP.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from archive.context import ServiceContext
from archive.local_store import LocalStore
from archive.policy import ArchivePolicy
from catalog.db import make_engine, session_factory
from config.settings import DEFAULT_FILENAME_PATTERNS
from ingest.names import compile_patterns
from ingest.pipeline import Pipeline, StationSetup
from tests.concurrency import at_once, raised
from tests.conftest import FORMATS, ROOT, ZONE, run_evidence

POLICY = ArchivePolicy(zone=ZONE, routine=(0, "days"), min_lock=timedelta(seconds=3))
NAME = "TA00716_JX0227_20201105093621_{n}.JPG"  # recorder TA00716, officer JX0227


def photo(path: Path, n: int) -> Path:
    """A tiny JPEG, different for each ``n`` (Pillow only: no ffmpeg, no ffprobe)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (n * 37 % 256, n * 11 % 256, n // 256 % 256)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue())
    return path


def pipeline(engine, store, station: str, hook=None, lease: float | None = None) -> Pipeline:
    ctx = ServiceContext(engine, session_factory(engine), store, FORMATS, POLICY, f"station:{station}")
    setup = StationSetup(
        station=station,
        unit="KZCG",
        zone=ZONE,
        patterns=compile_patterns(DEFAULT_FILENAME_PATTERNS),
        stable_seconds=0.0,
    )
    made = Pipeline(ctx, setup, fault_hook=hook)
    if lease is not None:
        made.content_lease = timedelta(seconds=lease)
    return made


def originals(store) -> list[str]:
    return [i.key for i in store.list("originals/") if not i.key.endswith(".manifest.json")]


def count(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"select count(*) from {table}")).scalar_one()


def test_the_same_content_at_two_stations_at_once_is_stored_once(engine, store, tmp_path) -> None:
    inboxes = [tmp_path / "ST01", tmp_path / "ST02"]
    files = [photo(inbox / NAME.format(n=1), 1) for inbox in inboxes]
    both_hashed = threading.Barrier(2)

    def hold(step: str) -> None:
        if step == "hashed":  # both have the digest before either looks for a twin
            both_hashed.wait(30)

    stations = [pipeline(engine, store, f"ST0{i + 1}", hold) for i in range(2)]
    outcomes = at_once(2, lambda i: stations[i].process(inboxes[i], files[i], wait=False))
    assert raised(outcomes) == []
    kinds = sorted(o.kind for o in outcomes)
    assert kinds in (["archived", "waiting"], ["archived", "duplicate"]), outcomes
    assert len(originals(store)) == 1 and count(engine, "recordings") == 1
    archived = next(o for o in outcomes if o.kind == "archived")
    # A station told to wait takes the file as a duplicate on its next pass.
    for i, outcome in enumerate(outcomes):
        if outcome.kind == "waiting":
            assert "same content" in outcome.reason
            again = pipeline(engine, store, f"ST0{i + 1}").process(inboxes[i], files[i], wait=False)
            assert (again.kind, again.archive_no) == ("duplicate", archived.archive_no)
    assert len(originals(store)) == 1 and count(engine, "recordings") == 1
    assert count(engine, "digest_reservations") == 0


# --- a station that dies or stalls while it holds the content ------------------------------


def _store_spec(store, request) -> tuple:
    if isinstance(store, LocalStore):
        return ("local", str(store.root), store.lock_mode)
    access, secret = request.getfixturevalue("rgw").users["admin"]
    return ("s3", request.getfixturevalue("rgw").endpoint, store.bucket, access, secret, store.lock_mode)


def _open_store(spec: tuple):
    if spec[0] == "local":
        return LocalStore(Path(spec[1]), lock_mode=spec[2])
    from archive.s3_store import S3Store

    _, endpoint, bucket, access, secret, mode = spec
    return S3Store(endpoint, bucket, access, secret, secure=False, lock_mode=mode, part_size=5 << 20)


def _station_child(
    url: str, spec: tuple, work: list[tuple[str, str]], step: str, lease: float, ready, go, results
) -> None:
    """ST01 in its own process: archives ``work`` (inbox, file) in threads, each held at
    ``step`` until the test lets it go (or kills or freezes the process meanwhile)."""
    engine = make_engine(url)
    arrived = threading.Barrier(len(work), action=ready.set)

    def hold(at: str) -> None:
        if at == step:
            arrived.wait(60)
            go.wait(120)

    station = pipeline(engine, _open_store(spec), "ST01", hold, lease)
    outcomes = at_once(len(work), lambda i: station.process(Path(work[i][0]), Path(work[i][1]), wait=False))
    results.put(
        [(o.kind, o.reason) if not isinstance(o, BaseException) else ("raised", repr(o)) for o in outcomes]
    )
    engine.dispose()


def _start_child(db_url, store, request, work, step: str, lease: float):
    ctx = multiprocessing.get_context("spawn")
    ready, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    child = ctx.Process(
        target=_station_child,
        args=(
            db_url,
            _store_spec(store, request),
            [(str(i), str(f)) for i, f in work],
            step,
            lease,
            ready,
            go,
            results,
        ),
    )
    child.start()
    assert ready.wait(90), "the child never reached its step"
    return child, go, results


def _until_not_waiting(station: Pipeline, inbox: Path, path: Path, within: float):
    deadline = time.monotonic() + within
    while (outcome := station.process(inbox, path, wait=False)).kind == "waiting":
        assert time.monotonic() < deadline, outcome
        time.sleep(0.2)
    return outcome


def test_a_killed_stations_reservation_lapses_and_the_next_pass_archives(
    engine, db_url, store, request, tmp_path
) -> None:
    here, there = tmp_path / "ST01", tmp_path / "ST02"
    work = [(here, photo(here / NAME.format(n=n), n)) for n in (1, 2)]
    twins = [photo(there / NAME.format(n=n), n) for n in (1, 2)]
    child, _, _ = _start_child(db_url, store, request, work, "content reserved", lease=2.0)
    os.kill(child.pid, signal.SIGKILL)  # holding both reservations
    child.join(30)
    assert count(engine, "digest_reservations") == 2
    with engine.begin() as conn:  # pretend the second ran on another host: only its lease frees it
        conn.execute(
            text(
                "update digest_reservations set host = 'another-host' where sha256 = "
                "(select max(sha256) from digest_reservations)"
            )
        )
        moved = conn.execute(text("select max(sha256) from digest_reservations")).scalar_one()
    st02 = pipeline(engine, store, "ST02")
    first, second = sorted(twins, key=lambda p: hashlib.sha256(p.read_bytes()).hexdigest() == moved)
    # Its process is gone from this host: taken over at once.
    assert st02.process(there, first, wait=False).kind == "archived"
    # On another host: waiting until the lease (2 s) ends, then archived.
    assert st02.process(there, second, wait=False).kind == "waiting"
    assert _until_not_waiting(st02, there, second, within=10).kind == "archived"
    assert len(originals(store)) == 2 and count(engine, "recordings") == 2
    assert count(engine, "digest_reservations") == 0
    # The killed station's own next pass: duplicates, nothing stored twice.
    st01 = pipeline(engine, store, "ST01")
    assert sorted(st01.process(here, f, wait=False).kind for _, f in work) == ["duplicate"] * 2
    assert len(originals(store)) == 2


def _frozen_outside_a_transaction(child: multiprocessing.Process, engine) -> None:
    """SIGSTOP the child where it holds no database lock (not in the middle of a renewal)."""
    for _ in range(50):
        os.kill(child.pid, signal.SIGSTOP)
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                busy = conn.execute(
                    text(
                        "select count(*) from pg_stat_activity where datname = current_database() "
                        "and pid <> pg_backend_pid() and state <> 'idle'"
                    )
                ).scalar_one()
        else:
            raw = engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA busy_timeout = 0")
                try:
                    raw.driver_connection.execute("BEGIN IMMEDIATE")
                    raw.driver_connection.execute("ROLLBACK")
                    busy = 0
                except Exception:  # noqa: BLE001 - "database is locked"
                    busy = 1
            finally:
                raw.close()
        if not busy:
            return
        os.kill(child.pid, signal.SIGCONT)
        time.sleep(0.05)
    pytest.fail("the child never stopped outside a transaction")


def test_a_stalled_station_finds_out_and_stores_nothing(engine, db_url, store, request, tmp_path) -> None:
    here, there = tmp_path / "ST01", tmp_path / "ST02"
    mine, twin = photo(here / NAME.format(n=3), 3), photo(there / NAME.format(n=3), 3)
    # ST01 drew its number and is about to store when it freezes (a paused VM, a swap storm).
    child, go, results = _start_child(db_url, store, request, [(here, mine)], "reserved", lease=2.0)
    try:
        _frozen_outside_a_transaction(child, engine)
        st02 = pipeline(engine, store, "ST02")
        assert st02.process(there, twin, wait=False).kind == "waiting"  # alive: its lease holds
        archived = _until_not_waiting(st02, there, twin, within=10)
        assert archived.kind == "archived"
    finally:
        os.kill(child.pid, signal.SIGCONT)
        go.set()
    ((kind, reason),) = results.get(timeout=60)
    child.join(30)
    # Thawed, it notices before storing anything: reported, retried, never a second copy.
    assert kind == "failed" and "took over" in reason
    assert len(originals(store)) == 1 and count(engine, "recordings") == 1
    again = pipeline(engine, store, "ST01").process(here, mine, wait=False)
    assert (again.kind, again.archive_no) == ("duplicate", archived.archive_no)
    assert len(originals(store)) == 1 and count(engine, "digest_reservations") == 0


# --- four stations' first scans at once, the real command ---------------------------------

DEVICES, OFFICERS = ["TA00716", "TA00717", "TA00718"], ["JX0227", "JX0228"]


@pytest.mark.postgres
def test_four_stations_first_scans_at_once(pg_url: str, tmp_path: Path) -> None:
    """Four `evidence ingest scan` processes (two workers each) on a new PostgreSQL catalog,
    the same recorders and officers docking at all four, and three files docked at all four.
    (SQLite queues writers, so only PostgreSQL ever raced here; the content reservation is
    tested on both above.)"""
    db_url = pg_url
    config = tmp_path / "evidence.toml"
    config.write_text('unit = "KZCG"\n[ingest]\nstable_seconds = 0.0\nworkers = 2\n', encoding="utf-8")
    env = {
        "EVIDENCE_CONFIG": str(config),
        "EVIDENCE_DATA_DIR": str(tmp_path / "data"),
        "EVIDENCE_DATABASE_URL": db_url,
    }
    assert run_evidence("init", "--json", env=env).returncode == 0
    stations = [f"ST0{s}" for s in range(1, 5)]
    for s, station in enumerate(stations):
        for n in range(25):
            shared = n < 3  # the same bytes at every station
            name = f"{DEVICES[n % 3]}_{OFFICERS[n % 2]}_2020110509{n // 60:02d}{n % 60:02d}_{n}.JPG"
            photo(tmp_path / station / name, n if shared else 1000 + s * 100 + n)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")} | env
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "config.cli",
                "ingest",
                "scan",
                "--station",
                station,
                str(tmp_path / station),
                "--json",
            ],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for station in stations
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err + out
        reports.append(json.loads(out))
    assert [r["failed"] for r in reports] == [[]] * 4 and [r["quarantined"] for r in reports] == [[]] * 4
    archived = [n for r in reports for n in r["archived"]]
    others = sum(len(r["duplicates"]) + len(r["waiting"]) for r in reports)
    assert len(archived) == 4 * 22 + 3 and others == 3 * 3
    engine = make_engine(db_url)
    try:
        assert count(engine, "recordings") == len(archived)
        assert count(engine, "stations") == 4 and count(engine, "devices") == 3
        assert count(engine, "officers") == 2 and count(engine, "digest_reservations") == 0
        with engine.connect() as conn:
            assert conn.execute(text("select count(distinct sha256) from recordings")).scalar_one() == len(
                archived
            )
    finally:
        engine.dispose()
    root = tmp_path / "data" / "store" / "objects" / "originals"
    stored = [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".manifest.json")]
    assert len(stored) == len(archived)
