"""Derive workers as real processes: a station queues the transcode, a worker killed with
SIGKILL in the middle of it loses the job to the next one once its lease lapses, and a job
that fails three times stays failed and shows in `stations status`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from catalog import derive_jobs
from catalog.models import Derivative, DeriveJob, Recording
from catalog.views import recording_rows
from ingest.probe import probe
from tests import synthetic
from tests.conftest import ROOT, run_evidence

NAME = "A123456@202011050850560000.mp4"


def _site(tmp: Path, make) -> dict:
    from config.app import App
    from config.settings import load_settings

    inbox = tmp / "inbox"
    inbox.mkdir()
    make(inbox / NAME)
    config = tmp / "evidence.toml"
    config.write_text(
        f'data_dir = "{tmp / "data"}"\nunit = "KZCG"\n'
        f'[catalog]\ndatabase_url = "sqlite:///{tmp / "catalog.db"}"\n'
        '[ingest]\nderivatives = "queue"\n'
    )
    env = {"EVIDENCE_CONFIG": str(config), "TMPDIR": str(tmp)}
    settings, _ = load_settings(config, {})
    app = App(settings, actor="station:ST01")
    app.init()
    (archive_no,) = app.pipeline("ST01").scan([inbox]).archived
    return {"app": app, "env": env, "archive_no": archive_no, "tmp": tmp}


def _state(app, archive_no: str) -> tuple[DeriveJob, list[Derivative], str]:
    with app.sessions() as s:
        rec = s.execute(select(Recording).where(Recording.archive_no == archive_no)).scalar_one()
        job = s.execute(select(DeriveJob).where(DeriveJob.recording_id == rec.id)).scalar_one()
        derived = list(s.execute(select(Derivative).where(Derivative.recording_id == rec.id)).scalars())
        (row,) = recording_rows(s, [rec])
        s.expunge_all()
    return job, derived, row["proxy_status"]


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append((int(entry.name), cmdline))
    return found


@pytest.fixture
def hevc(tmp_path: Path):
    # Long and large enough that its transcode takes a few seconds on two cores.
    site = _site(
        tmp_path, lambda p: synthetic.make_video(p, seconds=5, size="1280x720", codec="hevc", text="w")
    )
    yield site
    site["app"].close()


def test_a_worker_killed_mid_transcode_loses_its_job_to_the_next(hevc) -> None:
    app, archive_no = hevc["app"], hevc["archive_no"]
    job, derived, status = _state(app, archive_no)
    # The station made the pictures and left the transcode to a worker.
    assert (job.state, job.kind) == ("queued", "proxy")
    assert sorted(d.kind for d in derived) == ["poster", "sheet"] and status == "pending"

    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")} | hevc["env"]
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "config.cli",
            "--actor",
            "worker:W1",
            "derive",
            "work",
            "--lease-seconds",
            "3",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any("libx264" in cmd for _, cmd in _children(first.pid)):
            assert first.poll() is None and time.monotonic() < deadline, "the transcode never started"
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its ffmpeg, as a crash would
    finally:
        first.wait(timeout=10)
    job, derived, status = _state(app, archive_no)
    assert job.state == "running" and job.owner is not None and status == "pending"
    assert "proxy" not in {d.kind for d in derived}

    # Before the lease lapses nobody takes it; after, the next worker does.
    now = app.now()
    assert job.lease_until > now and derive_jobs.claim(app.sessions, "probe", now) is None
    time.sleep(max(0.0, (job.lease_until - app.now()).total_seconds()) + 0.5)
    second = run_evidence("--actor", "worker:W2", "derive", "work", "--once", env=hevc["env"])
    assert second.returncode == 0, second.stderr
    assert f"done   {archive_no} proxy" in second.stdout
    job, derived, status = _state(app, archive_no)
    assert (job.state, job.failures, job.owner) == ("done", 1, None) and status == "ok"
    (proxy,) = [d for d in derived if d.kind == "proxy"]
    made = hevc["tmp"] / "proxy.mp4"
    made.write_bytes(b"".join(app.store.read(proxy.storage_key, proxy.storage_version)))
    info = probe(made)
    assert (info.video_codec, info.height) == ("h264", 720)
    with app.sessions() as s:
        from catalog import custody

        stored = [e for e in custody.events(s, subject=archive_no) if e.action == "derivative_stored"]
    assert [e.details["kind"] for e in stored if e.actor == "worker:W2"] == ["proxy"]


@pytest.fixture
def broken(tmp_path: Path):
    def make(path: Path) -> None:
        whole = synthetic.make_video(tmp_path / "whole.mp4", seconds=4, codec="hevc", keyint=15)
        synthetic.truncate(whole, 0.5, dest=path)

    site = _site(tmp_path, make)
    yield site
    site["app"].close()


def test_a_job_failing_three_times_is_failed_with_its_reason_in_stations_status(broken) -> None:
    app, archive_no = broken["app"], broken["archive_no"]
    job, _, _ = _state(app, archive_no)
    assert job.state == "queued"
    run = run_evidence("derive", "work", "--once", "--retry-seconds", "0", env=broken["env"])
    assert run.returncode == 0, run.stderr
    assert [line.split()[0] for line in run.stdout.splitlines()[:3]] == ["queued", "queued", "failed"]
    job, derived, status = _state(app, archive_no)
    assert (job.state, job.failures) == ("failed", 3) and "cut short" in (job.last_error or "")
    assert status == "failed"
    (failed,) = [d for d in derived if d.kind == "proxy"]
    assert failed.status == "failed" and "cut short" in (failed.error or "")
    shown = run_evidence("stations", "status", "--json", env=broken["env"])
    assert shown.returncode == 1
    (entry,) = json.loads(shown.stdout)["derive_failed"]
    assert entry["archive_no"] == archive_no and entry["failures"] == 3 and "cut short" in entry["reason"]
    human = run_evidence("stations", "status", env=broken["env"])
    assert f"derive failed: {archive_no} proxy after 3 tries" in human.stdout
