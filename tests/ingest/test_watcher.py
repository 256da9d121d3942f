"""The station daemon as it runs on a dock: a real process, real file-system events."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests import synthetic
from tests.conftest import ROOT, run_evidence
from tests.ingest.conftest import files_in, recordings
from tests.servers.rgw import free_port


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_daemon_archives_arrivals_and_stops_cleanly(station, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(station["env"])
    log = tmp_path / "watch.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "config.cli",
                "--log-format",
                "json",
                "--log-level",
                "info",
                "ingest",
                "watch",
                "--station",
                "ST01",
                str(station["inbox"]),
                "--metrics-port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=sink,
        )
    try:
        wait_for(lambda: "station watcher started" in log.read_text(), what="the daemon to start")
        # Written elsewhere and renamed in (only a "created" event), and copied in place.
        staged = synthetic.make_video(tmp_path / "A123456@202011050850560000.mp4")
        os.rename(staged, station["inbox"] / staged.name)
        sub = station["inbox"] / "DCIM"
        sub.mkdir()
        shutil.copy(
            synthetic.make_audio(tmp_path / "TA00716_JX0227_20201105093621.WAV"),
            sub / "TA00716_JX0227_20201105093621.WAV",
        )
        wait_for(lambda: len(recordings(station)) == 2, what="both files archived")
        wait_for(
            lambda: (
                files_in(station["inbox"] / ".archived")
                == ["A123456@202011050850560000.mp4", "DCIM/TA00716_JX0227_20201105093621.WAV"]
            ),
            what="station copies moved",
        )
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        st = ("station", "ST01")
        assert samples[("evidence_ingest_files_total", (("outcome", "archived"), st))] == 2
        assert samples[("evidence_ingest_files_total", (("outcome", "quarantined"), st))] == 0
        assert samples[("evidence_ingest_seconds_count", (st,))] >= 2
        assert samples[("evidence_derivative_seconds_count", (("kind", "sheet"), st))] == 1
        assert samples[("evidence_derivative_seconds_count", (("kind", "waveform"), st))] == 1
        assert samples[("evidence_ingest_last_success_timestamp_seconds", (st,))] > 0
        assert samples[("process_resident_memory_bytes", ())] > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(entry["message"] == "archived" and entry.get("archive_no") for entry in lines)
    assert lines[-1]["message"] == "station watcher stopped"


def test_a_dead_observer_thread_is_restarted(station) -> None:
    from config.app import App
    from config.settings import load_settings
    from ingest.watcher import StationWatcher

    settings, _ = load_settings(None, station["env"])
    app = App(settings, actor="station:ST01")
    watcher = StationWatcher(app.pipeline("ST01"), [station["inbox"]], tick=0.1)
    watcher._supervise()
    first = watcher._observer
    first.stop()
    first.join(timeout=5)
    assert not first.is_alive()
    watcher._supervise()
    assert watcher._observer is not first and watcher._observer.is_alive()
    watcher._observer.stop()
    app.close()


def test_stations_status_reports_backlog_and_staleness(station) -> None:
    synthetic.make_video(station["inbox"] / "A123456@202011050850560000.mp4")
    os.mkfifo(station["inbox"] / "A123456@202011050900000000.mp4")
    run_evidence(
        "ingest", "scan", "--station", "ST01", str(station["inbox"]), "--no-wait", env=station["env"]
    )
    result = run_evidence("stations", "status", "--json", env=station["env"])
    status = json.loads(result.stdout)
    (st01,) = status["stations"]
    assert st01["station"] == "ST01" and st01["last_success"] and not st01["stale"]
    assert st01["failing"] == 1 and result.returncode == 1
    # The recording ended in 2020 and was archived now: late docking.
    assert status["late"] and status["late"][0]["hours"] > 24
