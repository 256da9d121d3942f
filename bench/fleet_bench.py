"""Fleet benchmark: 1, 2, 4 and 8 stations archiving at once into one PostgreSQL catalog and one
Ceph RGW (bluestore on a sparse file, ``tests/servers/rgw.py``), with and without derive workers.

The corpus: ``--files`` distinct recordings of 0.2 to 10 MB (H.264 in MP4 at several sizes and
bitrates, a tenth H.265), made from a few clips by a stream-copy remux with a distinct comment
each, so that no two files share content. A tenth of them is docked at two stations at once (a
second hard link in another station's inbox): they must be stored once.

For each station count and each mode, a fresh catalog database and bucket, then every station
runs as its own process, ``evidence ingest scan --station STk INBOXk --json`` (one pass, the
pipeline the daemon runs), all started together:

- ``local``: each station makes its own derivatives (the H.265 proxies transcoded there);
- ``queue``: ``[ingest] derivatives = "queue"``; two ``evidence derive work`` processes take the
  transcodes; the clock stops once the scans have exited and the queue is empty.

Reported per row: wall seconds, files/s and MB/s in all, catalog time per file (PostgreSQL's
``pg_stat_database.active_time`` over the run divided by the files), the largest peak RSS of a
station process (``VmHWM``), and the checks: lost (a distinct content without a recording),
stored twice (recordings or stored originals beyond one per content) and failed (failed or
quarantined in a scan's report, or derive jobs failed). All three must be 0.

    python -m bench.fleet_bench [--files 1000] [--stations 1,2,4,8] [--modes local,queue]
                                [--dir /var/tmp/evidence-fleet-bench] [--no-wait]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench.common import ROOT, log, wait_for_quiet

DEFAULT_DIR = Path("/var/tmp/evidence-fleet-bench")
PG_ADMIN = os.environ.get("EVIDENCE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
# (size, bitrate, seconds, codec): bases whose copies span 0.2 to 10 MB.
BASES = [
    ("320x240", "400k", 4, "h264"),
    ("640x360", "1500k", 6, "h264"),
    ("1280x720", "4M", 8, "h264"),
    ("1280x720", "8M", 10, "h264"),
    ("640x360", "1M", 5, "hevc"),
]


def corpus(folder: Path, files: int) -> list[Path]:
    """``files`` distinct recordings in ``folder`` (made once, reused when complete)."""
    from tests import synthetic

    folder.mkdir(parents=True, exist_ok=True)
    bases = []
    for n, (size, rate, seconds, codec) in enumerate(BASES):
        path = folder / f"base-{n}.mp4"
        if not path.exists():
            synthetic.make_video(path, seconds=seconds, size=size, bitrate=rate, codec=codec, keyint=30)  # type: ignore[arg-type]
        bases.append(path)
    out = folder / f"files-{files}"
    out.mkdir(exist_ok=True)
    made = []
    for i in range(files):
        # Nine H.264 for one H.265, sizes cycling through the bases.
        base = bases[4] if i % 10 == 9 else bases[i % 4]
        hours, rest = divmod(8 * 3600 + i * 7, 3600)
        clock = f"{hours % 24:02d}{rest // 60:02d}{rest % 60:02d}"
        path = out / f"A{100000 + i:06d}@20201105{clock}0000.mp4"
        if not path.exists():
            tmp = path.with_name(".part-" + path.name)
            subprocess.run(
                [
                    "ffmpeg",
                    "-hide_banner",
                    "-nostdin",
                    "-loglevel",
                    "error",
                    "-y",
                    "-i",
                    str(base),
                    "-map",
                    "0",
                    "-c",
                    "copy",
                    "-metadata",
                    f"comment=fleet {i}",
                    "-f",
                    "mp4",
                    str(tmp),
                ],
                check=True,
            )
            os.replace(tmp, path)
        made.append(path)
    old = time.time() - 120
    for path in made:
        os.utime(path, (old, old))
    return made


class PeakRss(threading.Thread):
    """Polls the processes' VmHWM while they live; keeps the largest seen per pid."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.pids: list[int] = []
        self.peak: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            for pid in list(self.pids):
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak[pid] = max(self.peak.get(pid, 0), int(line.split()[1]) * 1024)
                except OSError:
                    pass


def one_run(
    work: Path, files: list[Path], stations: int, mode: str, rgw: Any, admin_keys: tuple[str, str]
) -> dict[str, Any]:
    from archive.s3_store import S3Store

    name = f"fleet_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    bucket = name.replace("_", "-")
    base = work / f"{stations}-{mode}"
    config = base / "evidence.toml"
    base.mkdir(parents=True)
    config.write_text(
        f'data_dir = "{base / "data"}"\nunit = "KZCG"\n'
        f'[catalog]\ndatabase_url = "{url}"\n'
        f'[storage]\nurl = "s3://{rgw.endpoint}/{bucket}?secure=false"\naccess_key = "{admin_keys[0]}"\n'
        f'secret_key = "{admin_keys[1]}"\n'
        f'[ingest]\nafter_archive = "keep"\nstable_seconds = 0.5\nderivatives = "{mode}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")} | {
        "EVIDENCE_CONFIG": str(config)
    }
    cli = [sys.executable, "-m", "config.cli"]
    subprocess.run([*cli, "init"], env=env, cwd=ROOT, check=True, capture_output=True)
    inboxes = [base / f"inbox-{k}" for k in range(stations)]
    for inbox in inboxes:
        inbox.mkdir()
    twice = 0
    for i, path in enumerate(files):
        os.link(path, inboxes[i % stations] / path.name)
        if i % 10 == 3:  # a tenth docked at two stations at once
            other = inboxes[(i + 1) % stations]
            os.link(path, other / (path.name if other != inboxes[i % stations] else "again-" + path.name))
            twice += 1
    total_bytes = sum(p.stat().st_size for p in files)
    with admin.connect() as conn:
        active_before = (
            conn.execute(
                text("SELECT active_time FROM pg_stat_database WHERE datname = :n"), {"n": name}
            ).scalar()
            or 0.0
        )
    rss = PeakRss()
    rss.start()
    started = time.monotonic()
    scans = [
        subprocess.Popen(
            [*cli, "ingest", "scan", "--station", f"ST{k + 1:02d}", str(inbox), "--json"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for k, inbox in enumerate(inboxes)
    ]
    rss.pids += [p.pid for p in scans]
    workers = []
    if mode == "queue":
        workers = [
            subprocess.Popen(
                [*cli, "derive", "work", "--poll-seconds", "0.5"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
    reports = [json.loads(p.communicate()[0] or "{}") for p in scans]
    engine = create_engine(url)
    if mode == "queue":
        while True:
            with engine.connect() as conn:
                waiting = conn.execute(
                    text("SELECT count(*) FROM derive_jobs WHERE state IN ('queued', 'running')")
                ).scalar()
            if not waiting:
                break
            time.sleep(0.5)
    took = time.monotonic() - started
    for w in workers:
        w.terminate()
        w.wait(timeout=60)
    rss.stop.set()
    with admin.connect() as conn:
        active_after = (
            conn.execute(
                text("SELECT active_time FROM pg_stat_database WHERE datname = :n"), {"n": name}
            ).scalar()
            or 0.0
        )
    with engine.connect() as conn:
        recordings = conn.execute(text("SELECT count(*), count(DISTINCT sha256) FROM recordings")).one()
        failed_jobs = conn.execute(text("SELECT count(*) FROM derive_jobs WHERE state = 'failed'")).scalar()
    engine.dispose()
    store = S3Store.from_url(
        f"s3://{rgw.endpoint}/{bucket}?secure=false", *admin_keys, lock_mode="COMPLIANCE"
    )
    stored = sum(1 for o in store.list("originals/") if not o.key.endswith(".manifest.json"))
    failed = sum(len(r.get("failed", [])) + len(r.get("quarantined", [])) for r in reports) + (
        failed_jobs or 0
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    shutil.rmtree(base)
    return {
        "stations": stations,
        "mode": mode,
        "files": len(files),
        "docked_twice": twice,
        "seconds": took,
        "files_per_s": len(files) / took,
        "mb_per_s": total_bytes / 1e6 / took,
        "catalog_ms_per_file": (active_after - active_before) / len(files),
        "peak_rss_mb": max(rss.peak.values(), default=0) / 1e6,
        "lost": len(files) - recordings[1],
        "stored_twice": (recordings[0] - recordings[1]) + max(0, stored - recordings[1]),
        "failed": failed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--stations", default="1,2,4,8")
    parser.add_argument("--modes", default="local,queue")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-wait", action="store_true", help="Measure at once, whatever the load.")
    args = parser.parse_args(argv)
    from tests.servers.rgw import start_rgw

    files = corpus(args.dir / "corpus", args.files)
    log(f"corpus: {len(files)} files, {sum(p.stat().st_size for p in files) / 1e6:.0f} MB")
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="run-") as tmp:
        rgw = start_rgw(Path(tmp) / "rgw", objectstore="bluestore")
        try:
            keys = rgw.users["admin"]
            for stations in [int(s) for s in args.stations.split(",")]:
                for mode in args.modes.split(","):
                    load = wait_for_quiet(f"{stations} station(s), {mode}", wait=not args.no_wait)
                    row = one_run(Path(tmp), files, stations, mode, rgw, keys) | {"load": load}
                    log(f"  {row}")
                    rows.append(row)
        finally:
            rgw.stop()
    print(
        "| stations | derivatives | files | s | files/s | MB/s | catalog ms/file | peak RSS MB "
        "| lost | stored twice | failed | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['stations']} | {r['mode']} | {r['files']} | {r['seconds']:.1f} | {r['files_per_s']:.2f} "
            f"| {r['mb_per_s']:.1f} | {r['catalog_ms_per_file']:.1f} | {r['peak_rss_mb']:.0f} | {r['lost']} "
            f"| {r['stored_twice']} | {r['failed']} | {r['load']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
