"""A hostile or busy station: names swapped for links while the pipeline works, files that grow
or are rewritten in place, names at the length limit, a folder that refuses moves.

Races are real: another thread (or process) does the swap while the pipeline is parked inside
ffprobe, the stability wait or right after the catalog commit. Every test runs on SQLite and
on PostgreSQL, since what counts as "done" lives in the catalog's job rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests import synthetic
from tests.conftest import ROOT, run_evidence
from tests.ingest.conftest import files_in, make_station, recordings, scan

NAME = "A123456@202011050850560000.mp4"


@pytest.fixture
def station(tmp_path: Path, db_url: str) -> dict:
    """The ingest fixture's station, on each catalog backend in turn."""
    return make_station(tmp_path, db_url)


@contextmanager
def pipeline(station: dict, *, fault_hook: Callable[[str], None] | None = None, **setup: object) -> Iterator:
    from config.app import App
    from config.settings import load_settings

    settings, _ = load_settings(None, station["env"])
    app = App(settings, actor="station:ST01")
    pipe = app.pipeline("ST01", fault_hook=fault_hook)
    if setup:
        pipe.setup = dataclasses.replace(pipe.setup, **setup)
    try:
        yield pipe
    finally:
        app.close()


class Attacker:
    """Another thread that acts while the pipeline is parked at one point, once."""

    def __init__(self, action: Callable[[], None]) -> None:
        self._action, self.error = action, None
        self._inside, self._done, self._used = threading.Event(), threading.Event(), False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._inside.wait(60):
            try:
                self._action()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.error = exc
        self._done.set()

    def park(self) -> None:
        """Called from the pipeline's thread: wait there until the attack is done."""
        if self._used:
            return
        self._used = True
        self._inside.set()
        assert self._done.wait(60), "the attack never finished"

    def check(self) -> None:
        assert self._used, "the pipeline never reached the point of the attack"
        assert self.error is None, self.error


def park_in(
    monkeypatch: pytest.MonkeyPatch,
    owner: object,
    attribute: str,
    attacker: Attacker,
    *,
    method: bool = False,
) -> None:
    real = getattr(owner, attribute)
    if method:

        def parked(self, *args, **kwargs):
            attacker.park()
            return real(self, *args, **kwargs)
    else:

        def parked(*args, **kwargs):
            attacker.park()
            return real(*args, **kwargs)

    monkeypatch.setattr(owner, attribute, parked)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def catalog_count(station: dict, table: str) -> int:
    engine = create_engine(station["env"]["EVIDENCE_DATABASE_URL"])
    with engine.connect() as conn:
        count = conn.execute(text(f"select count(*) from {table}")).scalar_one()
    engine.dispose()
    return count


def age_jobs(station: dict) -> None:
    engine = create_engine(station["env"]["EVIDENCE_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(text("update ingest_jobs set updated_at = '2020-01-01 00:00:00.000000'"))
    engine.dispose()


def stored_path(station: dict, recording: dict) -> Path:
    return station["tmp"] / "data" / "store" / "objects" / recording["storage_key"]


# --- 1. a file swapped for a link after the checks ---------------------------------------------


def test_a_file_swapped_for_a_link_during_ffprobe_is_not_what_gets_archived(
    station: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.pipeline

    inbox, tmp = station["inbox"], station["tmp"]
    foreign = synthetic.make_video(tmp / "elsewhere" / "foreign.mp4", tone=880)
    foreign_bytes = foreign.read_bytes()
    video = synthetic.make_video(inbox / NAME)

    def swap() -> None:
        os.rename(video, tmp / "taken-away.mp4")
        video.symlink_to(foreign)

    attacker = Attacker(swap)
    park_in(monkeypatch, ingest.pipeline, "probe", attacker)
    with pipeline(station) as pipe:
        outcome = pipe.process(inbox, video)
        attacker.check()
        # The file read was taken away meanwhile (its ctime changed): nothing is archived.
        assert outcome.kind == "waiting" and "changed" in (outcome.reason or ""), outcome
        assert recordings(station) == []
        # What stands there now is a link: quarantined as one, never followed.
        again = pipe.process(inbox, video)
    assert again.kind == "quarantined" and "symbolic link" in (again.reason or ""), again
    assert recordings(station) == [] and foreign.read_bytes() == foreign_bytes
    assert (inbox / ".quarantine" / NAME).is_symlink()


def fake_ffprobe(tmp_path: Path) -> tuple[Path, Path]:
    """An ffprobe on PATH that, the first time, waits for a "go" file before running the real one."""
    park, bin_dir = tmp_path / "park", tmp_path / "bin"
    park.mkdir()
    bin_dir.mkdir()
    fake = bin_dir / "ffprobe"
    fake.write_text(
        f'#!/bin/sh\nif mkdir "{park}/entered" 2>/dev/null; then\n'
        f'  while [ ! -e "{park}/go" ]; do sleep 0.05; done\nfi\n'
        f'exec {shutil.which("ffprobe")} "$@"\n'
    )
    fake.chmod(0o755)
    return park, bin_dir


def test_a_folder_swapped_while_the_real_ffprobe_runs_gets_no_foreign_file_archived(
    station: dict, tmp_path: Path
) -> None:
    """The whole command: ffprobe (a separate process) and the digest read the file held open,
    not what the path leads to after its folder was swapped for a link."""
    inbox = station["inbox"]
    elsewhere = tmp_path / "elsewhere"
    foreign = synthetic.make_video(elsewhere / NAME, seconds=4, tone=880)
    video = synthetic.make_video(inbox / "sub" / NAME, seconds=2)
    read = video.read_bytes()
    park, bin_dir = fake_ffprobe(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(station["env"], PATH=f"{bin_dir}:{os.environ['PATH']}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "config.cli", "ingest", "scan", "--station", "ST01", str(inbox), "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (park / "entered").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        os.rename(inbox / "sub", inbox / "sub-was-here")
        (inbox / "sub").symlink_to(elsewhere)
        (park / "go").touch()
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    report = json.loads(out)
    assert len(report["archived"]) == 1, err
    (rec,) = recordings(station)
    assert rec["sha256"] == sha256(read)
    assert json.loads(rec["media_info"])["duration_s"] < 3  # ffprobe read the 2 s file held open
    # Its folder is not where it was: the station copy stays, reported; nothing is moved.
    assert [left["path"] for left in report["left_in_place"]] == [f"sub/{NAME}"]
    assert files_in(inbox / ".archived") == [] and foreign.exists()


# --- 2. a folder swapped for a link ---------------------------------------------------------------


def test_a_folder_swapped_for_a_link_to_the_keys_moves_no_key(
    station: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.pipeline import Pipeline

    inbox = station["inbox"]
    keys = station["tmp"] / "data" / "keys"
    before = {p.name: p.read_bytes() for p in keys.iterdir()}
    assert before, "init made no keys"
    sub = inbox / "sub"
    sub.mkdir()
    for name in before:
        (sub / name).write_bytes(b"not a recording, only a decoy\n")

    def swap() -> None:
        os.rename(sub, inbox / "sub-was-here")
        sub.symlink_to(keys)

    attacker = Attacker(swap)
    park_in(monkeypatch, Pipeline, "_stable", attacker, method=True)
    with pipeline(station) as pipe:
        outcomes = [pipe.process(inbox, sub / name) for name in sorted(before)]
    attacker.check()
    assert {p.name: p.read_bytes() for p in keys.iterdir()} == before
    assert not any(k in {p.name for p in (inbox / ".quarantine").rglob("*")} for k in before)
    assert all(o.kind == "failed" for o in outcomes), outcomes
    # A reason never quotes a file's content.
    for outcome in outcomes:
        for key in before.values():
            assert key[:8].hex(" ") not in (outcome.reason or "")
            assert key[:8].decode("latin-1") not in (outcome.reason or "")


def test_a_folder_swapped_for_a_link_into_the_store_moves_no_stored_original(
    station: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.pipeline

    inbox = station["inbox"]
    video = synthetic.make_video(inbox / NAME)
    scan(station, expect=0)
    (rec,) = recordings(station)
    stored = stored_path(station, rec)
    content = stored.read_bytes()
    sub = inbox / "sub"
    sub.mkdir()
    decoy = sub / stored.name  # the stored original's name, the same content: a duplicate
    shutil.copy(inbox / ".archived" / video.name, decoy)

    def swap() -> None:
        os.rename(sub, inbox / "sub-was-here")
        sub.symlink_to(stored.parent)

    attacker = Attacker(swap)
    park_in(monkeypatch, ingest.pipeline, "probe", attacker)
    with pipeline(station) as pipe:
        outcome = pipe.process(inbox, decoy)
        assert pipe.prune_archived([inbox]) == 0
    attacker.check()
    assert stored.read_bytes() == content
    assert files_in(inbox / ".archived") == [video.name]
    assert outcome.kind == "duplicate" and "replaced" in (outcome.left or ""), outcome


def test_a_station_folder_holding_or_inside_the_archive_is_refused(station: dict) -> None:
    data = station["tmp"] / "data"
    keys = {p: p.read_bytes() for p in (data / "keys").iterdir()}
    for folder, says in [
        (data / "keys", "lies inside the data folder"),
        (station["tmp"], "contains the data folder"),
    ]:
        result = run_evidence(
            "ingest", "scan", "--station", "ST01", str(folder), "--json", env=station["env"]
        )
        assert result.returncode == 2 and says in result.stderr, (result.stdout, result.stderr)
    assert {p: p.read_bytes() for p in keys} == keys
    from ingest.station_files import StationFolderRefused
    from ingest.watcher import StationWatcher

    with pipeline(station) as pipe, pytest.raises(StationFolderRefused, match="inside the data folder"):
        StationWatcher(pipe, [data / "store"]).run()
    config = station["config"]
    config.write_text(config.read_text() + f'[[stations]]\nid = "ST02"\nfolders = ["{data}/store"]\n')
    result = run_evidence("config", "show", env=station["env"])
    assert result.returncode == 2 and "stations[0].folders[0]" in result.stderr, result.stderr


# --- 3. a file that grows after it was read -------------------------------------------------------


def free_box(size: int) -> bytes:
    return struct.pack(">I", size) + b"free" + b"\0" * (size - 8)


def test_a_file_that_grows_after_it_was_read_is_left_and_archived_again(station: dict) -> None:
    inbox = station["inbox"]
    video = synthetic.make_video(inbox / NAME)
    read = video.read_bytes()
    tail = free_box(4096)

    def grow() -> None:
        with open(video, "ab") as f:
            f.write(tail)

    attacker = Attacker(grow)
    with pipeline(station, fault_hook=lambda step: step == "committed" and attacker.park()) as pipe:
        first = pipe.process(inbox, video)
        attacker.check()
        assert first.kind == "archived" and video.read_bytes() == read + tail  # left, whole
        again = pipe.process(inbox, video)
    assert again.kind == "archived" and again.archive_no != first.archive_no
    assert {r["sha256"] for r in recordings(station)} == {sha256(read), sha256(read + tail)}
    assert (inbox / ".archived" / NAME).read_bytes() == read + tail and not video.exists()


def test_pruning_deletes_only_copies_that_are_still_as_archived(station: dict) -> None:
    inbox, archived = station["inbox"], station["inbox"] / ".archived"
    # One worker: this is about pruning, not about two first recordings racing to create
    # the station's catalog row.
    config = station["config"]
    config.write_text(config.read_text() + "workers = 1\n")
    names = [f"A123456@20201105085{i}000000.mp4" for i in range(3)]
    for i, name in enumerate(names):
        synthetic.make_video(inbox / name, tone=300 + 100 * i)
    scan(station, expect=0)
    unchanged, grown, touched = (archived / name for name in names)
    with open(grown, "ab") as f:  # written to after the move: no longer what was archived
        f.write(free_box(1024))
    time.sleep(0.05)
    touched.chmod(0o600)  # a new ctime, the same content: read, found archived, deleted
    age_jobs(station)
    with pipeline(station) as pipe:
        assert pipe.prune_archived([inbox]) == 2
    assert files_in(archived) == [grown.name]


# --- 4. rewritten in place with the same name, size and mtime -------------------------------------


def test_a_file_rewritten_in_place_with_the_same_name_size_and_mtime_is_archived(station: dict) -> None:
    config = station["config"]
    config.write_text(config.read_text() + 'after_archive = "keep"\n')
    video = synthetic.make_video(station["inbox"] / NAME)
    _, first = scan(station, expect=0)
    assert len(first["archived"]) == 1
    first_sha = recordings(station)[0]["sha256"]
    before = video.stat()
    data = bytearray(video.read_bytes())
    at = data.index(b"mdat") + 64
    data[at : at + 64] = bytes(255 - b for b in data[at : at + 64])
    with open(video, "r+b") as f:  # in place: the same inode
        f.write(data)
    os.utime(video, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = video.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    _, second = scan(station, expect=0)
    assert len(second["archived"]) == 1 and second["archived"] != first["archived"]
    assert {r["sha256"] for r in recordings(station)} == {first_sha, sha256(bytes(data))}
    assert first_sha != sha256(bytes(data))
    _, third = scan(station, expect=0)
    assert third["archived"] == [] and third["duplicates"] == [] and len(recordings(station)) == 2


def test_a_file_only_touched_in_place_is_not_seen_again(station: dict) -> None:
    config = station["config"]
    config.write_text(config.read_text() + 'after_archive = "keep"\n')
    video = synthetic.make_video(station["inbox"] / NAME)
    scan(station, expect=0)
    events = catalog_count(station, "custody_events")
    video.chmod(0o600)  # a new ctime only: read again, found archived from this very path
    _, again = scan(station, expect=0)
    assert again["archived"] == [] and again["duplicates"] == []
    assert catalog_count(station, "custody_events") == events and len(recordings(station)) == 1


# --- 7. names at the length limit -----------------------------------------------------------------


@pytest.mark.parametrize("stem", ["A" * 251, "录" * 83], ids=["ascii", "cjk"])
def test_a_name_near_the_length_limit_is_archived(station: dict, stem: str) -> None:
    inbox = station["inbox"]
    name = stem + ".mp4"
    assert 253 <= len(name.encode()) <= 255
    os.rename(synthetic.make_video(inbox / "short.mp4"), inbox / name)
    text_name = "B" * 251 + ".mp4"
    (inbox / text_name).write_text("not a recording")
    result, report = scan(station, expect=1)
    assert len(report["archived"]) == 1 and report["failed"] == [], report
    assert [q["path"] for q in report["quarantined"]] == [text_name]
    assert files_in(inbox / ".archived") == [name]
    notes = [p for p in files_in(inbox / ".quarantine") if p.endswith(".reason.txt")]
    assert len(notes) == 1 and len(notes[0].encode()) <= 255


# --- 8. a folder that refuses moves ---------------------------------------------------------------


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    if subprocess.run(["mount", "--bind", str(folder), str(folder)]).returncode:
        pytest.fail("cannot bind-mount here")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)]).returncode:
            pytest.fail("cannot remount read-only here")
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)])


def test_a_read_only_inbox_is_reported_once_and_nothing_is_redone(station: dict) -> None:
    inbox = station["inbox"]
    video = synthetic.make_video(inbox / NAME)
    shutil.copy(video, inbox / "copy.mp4")
    with read_only(inbox):
        _, first = scan(station, expect=1)
        assert len(first["archived"]) == 1 and len(first["duplicates"]) == 1, first
        assert sorted(left["path"] for left in first["left_in_place"]) == sorted([NAME, "copy.mp4"])
        assert all("cannot be moved" in left["reason"] for left in first["left_in_place"])
        events, derivatives = catalog_count(station, "custody_events"), catalog_count(station, "derivatives")
        for _ in range(2):
            _, again = scan(station, expect=0)
            assert again["archived"] == [] and again["left_in_place"] == [] and again["failed"] == []
        assert catalog_count(station, "custody_events") == events
        assert catalog_count(station, "derivatives") == derivatives
    # Writable again: the next pass moves them, still without redoing anything.
    _, last = scan(station, expect=0)
    assert sorted(files_in(inbox / ".archived")) == sorted([NAME, "copy.mp4"])
    assert catalog_count(station, "custody_events") == events and len(recordings(station)) == 1
    assert last["archived"] == []
