"""kill -9 at every step of the pipeline, then run again: archived exactly once, nothing lost."""

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from tests import synthetic
from tests.conftest import ROOT, run_evidence
from tests.ingest.conftest import files_in, recordings, scan, stored_originals

STEPS = ["hashed", "reserved", "stored", "committed", "derived", "moved"]


def kill_at(station: dict, step: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(station["env"], EVIDENCE_TEST_STOP_AT=step)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "config.cli",
            "ingest",
            "scan",
            "--station",
            "ST01",
            str(station["inbox"]),
            "--json",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline, seen = time.monotonic() + 60, b""
    try:
        while f"STOPPED AT {step}".encode() not in seen:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"never reached {step}: {seen.decode(errors='replace')}")
            ready, _, _ = select.select([proc.stderr], [], [], 1)
            if ready:
                seen += os.read(proc.stderr.fileno(), 4096)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.mark.parametrize("step", STEPS)
def test_killed_at_any_step_the_next_run_archives_exactly_once(station, step: str) -> None:
    video = synthetic.make_video(station["inbox"] / "A123456@202011050850560000.mp4")
    data = video.read_bytes()
    kill_at(station, step)
    # Killed while its staged bytes waited for a number, the run leaves them in the store's
    # temporary folder, never among the objects; the next run stores its own copy.
    staging = station["tmp"] / "data" / "store" / "tmp"
    left = sorted(staging.glob("*.part"))
    assert len(left) == (1 if step in ("hashed", "reserved") else 0), left
    _, report = scan(station, expect=0)
    recs = recordings(station)
    assert len(recs) == 1, recs
    assert recs[0]["sha256"] == __import__("hashlib").sha256(data).hexdigest()
    # No object left unaccounted for: exactly the one original, adopted or stored once.
    assert stored_originals(station) == [recs[0]["storage_key"].removeprefix("originals/")]
    assert files_in(station["inbox"] / ".archived") == [video.name]
    assert not video.exists()
    assert json.loads(run_evidence("audit", "verify", "--json", env=station["env"]).stdout)["ok"]
    # A third run finds nothing more to do; stale staged bytes (a day untouched) go then.
    for path in left:
        os.utime(path, (time.time() - 2 * 86400,) * 2)
    _, third = scan(station, expect=0)
    assert third["archived"] == [] and third["duplicates"] == []
    assert list(staging.glob("*.part")) == []
