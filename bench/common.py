"""Helpers the benchmarks share: logging, waiting for a quiet machine, child processes, server CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOAD_LIMIT = 2.0
LOAD_WAIT_S = 600


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def wait_for_quiet(what: str, wait: bool = True) -> float:
    """Wait until the 1-minute load average is below LOAD_LIMIT (at most LOAD_WAIT_S)."""
    deadline = time.monotonic() + (LOAD_WAIT_S if wait else 0)
    load = os.getloadavg()[0]
    if load >= LOAD_LIMIT:
        log(f"  load {load:.2f}: waiting for it to fall below {LOAD_LIMIT} before {what}")
    while load >= LOAD_LIMIT and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    note = "" if load < LOAD_LIMIT else f" (not below {LOAD_LIMIT}: measured anyway)"
    log(f"  measuring {what} under load {load:.2f}{note}")
    return load


def run_child(module: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``python -m MODULE _child SPEC`` and return the JSON its last line prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "_child", json.dumps(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['op']} failed (status {proc.returncode}):\n{err[-4000:]}")
    return json.loads(out.strip().splitlines()[-1])


def server_cpu(rgw: Any) -> float:
    """CPU seconds used so far by the cluster's daemons (gateway, OSD, monitor)."""
    total = 0.0
    for proc in (rgw._rgw, rgw._osd, rgw._mon):
        if proc is None:
            continue
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
