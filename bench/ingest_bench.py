"""Ingest benchmark: a docking-station inbox of real 1080p footage, ours against a naive script.

What is measured, in one run, after waiting for a quiet machine:

- the machine's SHA-256 rate: hashlib over the inbox files, page cache warm;
- the naive reference: for each file ``sha256sum``, an ffmpeg transcode to 720p H.264
  (veryfast, CRF 28) + AAC, and ``cp`` of the original into a store folder, one after the
  other as a simple script would, then ``sync``; wall time;
- ours: a fresh data folder, ``evidence init``, then ``evidence ingest scan --station ST01
  INBOX --json`` with the default workers (``after_archive = "keep"`` so the inbox is reused):
  the time until every original is archived and verified (the ``archived`` JSON log lines),
  the time until every proxy is stored (the catalog's ``derivatives`` rows, polled every
  0.2 s), the scan's exit, and the scan process's peak RSS (``VmHWM``) with its ffmpeg and
  ffprobe children counted apart;
- the remux step on one H.264 clip (``ingest.derivatives.make_proxy``), as real-time factor,
  and the other per-file steps (probe, hash, poster, contact sheet, HEVC transcode);
- memory as files grow: one ~100 MB file and one 4 GiB file (a clip repeated with the concat
  demuxer and ``-c copy``), each ingested alone into a fresh data folder: peak RSS.

The inbox (N one-minute 1080p30 H.264+AAC clips at 6 Mbit/s and M H.265 clips, recorder
names ``A123456@20201105HHMMSS0000.mp4``) is generated once into ``--dir`` and reused when
its parameters match; it is deleted at the end unless ``--reuse`` is given.

    python -m bench.ingest_bench [--h264 20] [--hevc 5] [--seconds 60] [--dir DIR] [--reuse]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = Path("/var/tmp/evidence-ingest-bench")
SERIAL = "A123456"
BASE_TIME = datetime(2020, 11, 5, 8, 0, 0)
STATION = "ST01"
READ_SIZE = 4 << 20
MB = 1e6
MIB = 1 << 20
GIB = 1 << 30
CACHE_VERSION = 1

TARGET_VS_NAIVE = 3.0
TARGET_REMUX_RT = 100.0
TARGET_ORIGINALS_SHARE = 0.50
TARGET_RSS_MB = 300.0


def say(*parts: object) -> None:
    print(*parts, flush=True)


def load1() -> float:
    return os.getloadavg()[0]


def wait_quiet(limit: float = 1.5, max_wait: float = 600.0) -> tuple[float, float]:
    """Wait until the 1-minute load average is below ``limit`` (at most ``max_wait`` s).
    Returns (load when measuring starts, seconds waited)."""
    start = time.monotonic()
    shown = 0.0
    while load1() >= limit and time.monotonic() - start < max_wait:
        if time.monotonic() - shown > 30:
            say(
                f"[wait] load average {load1():.2f} >= {limit}; waiting for a quiet machine "
                f"({time.monotonic() - start:.0f} s so far)"
            )
            shown = time.monotonic()
        time.sleep(5)
    waited = time.monotonic() - start
    return load1(), waited


class LoadSampler(threading.Thread):
    """The 1-minute load average every 2 s, so each phase can be told how busy the machine was
    (our own work adds about 2 on 2 cores)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.phases: dict[str, tuple[float, float]] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.monotonic(), load1()))
            self._stop_event.wait(2.0)

    def stop(self) -> None:
        self._stop_event.set()

    def phase(self, name: str, start: float) -> None:
        self.phases[name] = (start, time.monotonic())

    def summary(self) -> str:
        parts = []
        for name, (a, b) in self.phases.items():
            seen = [v for t, v in self.samples if a <= t <= b] or [load1()]
            parts.append(f"{name} {statistics.mean(seen):.1f} (max {max(seen):.1f})")
        return ", ".join(parts)


def median(values: list[float]) -> float:
    return statistics.median(values)


# --- the inbox ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    index: int
    codec: str  # "h264" or "hevc"
    name: str
    moment: datetime  # recorder local time, from the name

    @property
    def tone(self) -> float:
        return 300.0 + 17.0 * self.index


def plan_clips(n_h264: int, n_hevc: int) -> list[Clip]:
    """H.265 clips spread evenly among the H.264 ones, as from a mixed fleet of recorders."""
    total = n_h264 + n_hevc
    clips = []
    for i in range(total):
        hevc = n_hevc and (i + 1) * n_hevc // total > i * n_hevc // total
        moment = BASE_TIME + timedelta(seconds=61 * i)
        name = f"{SERIAL}@{moment:%Y%m%d%H%M%S}0000.mp4"
        clips.append(Clip(i, "hevc" if hevc else "h264", name, moment))
    return clips


def generate_inbox(args: argparse.Namespace, inbox: Path, clips: list[Clip]) -> None:
    from tests import synthetic

    # A minute of 1080p takes longer than the test suite's per-file limit.
    synthetic._FFMPEG_TIMEOUT = 3600.0
    stamp_path = inbox.parent / "inbox.json"
    stamp = {
        "version": CACHE_VERSION,
        "seconds": args.seconds,
        "h264": args.h264,
        "hevc": args.hevc,
        "h264_bitrate": args.h264_bitrate,
        "hevc_bitrate": args.hevc_bitrate,
    }
    if inbox.exists():
        try:
            old = json.loads(stamp_path.read_text())
        except (OSError, ValueError):
            old = None
        if old != stamp:
            say(f"[gen] cached inbox in {inbox} has other parameters; making it again")
            shutil.rmtree(inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    stamp_path.write_text(json.dumps(stamp))
    parts = inbox.parent / "gen-tmp"
    shutil.rmtree(parts, ignore_errors=True)
    todo = [c for c in clips if not (inbox / c.name).is_file()]
    if not todo:
        say(f"[gen] reusing {len(clips)} cached clips in {inbox}")
        return
    parts.mkdir()
    say(
        f"[gen] making {len(todo)} clips of {args.seconds:g} s 1080p30 with {args.gen_jobs} "
        f"ffmpeg at once ({len(clips) - len(todo)} cached)"
    )
    done = [0]
    lock = threading.Lock()
    started = time.monotonic()

    def make(clip: Clip) -> None:
        from tests.synthetic import LOCAL_ZONE, make_video

        t0 = time.monotonic()
        tmp = parts / f"{clip.index:03d}.mp4"
        make_video(
            tmp,
            seconds=args.seconds,
            size="1920x1080",
            rate=30,
            codec=clip.codec,
            bitrate=args.h264_bitrate if clip.codec == "h264" else args.hevc_bitrate,
            keyint=30,
            tone=clip.tone,
            text=f"{SERIAL} bench clip {clip.index}",
            creation_time=clip.moment.replace(tzinfo=LOCAL_ZONE),
            faststart=True,
        )
        os.replace(tmp, inbox / clip.name)
        with lock:
            done[0] += 1
            size = (inbox / clip.name).stat().st_size
            say(
                f"[gen] {done[0]}/{len(todo)} {clip.name} {clip.codec} {size / MB:.1f} MB "
                f"in {time.monotonic() - t0:.0f} s (elapsed {time.monotonic() - started:.0f} s)"
            )

    with ThreadPoolExecutor(max_workers=args.gen_jobs) as pool:
        for future in [pool.submit(make, c) for c in todo]:
            future.result()
    shutil.rmtree(parts, ignore_errors=True)


def concat_copy(source: Path, out: Path, *, min_bytes: int, trim_to: int | None = None) -> Path:
    """``source`` repeated with the concat demuxer and ``-c copy`` until at least ``min_bytes``
    (cut to about ``trim_to`` bytes by duration when given). moov at the end, as recorders
    write it."""
    if out.is_file() and out.stat().st_size >= (trim_to or min_bytes) * 0.95:
        return out
    size = source.stat().st_size
    copies = -(-min_bytes // size)
    out.parent.mkdir(parents=True, exist_ok=True)
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{source}'\n" for _ in range(copies)))
    tmp = out.with_name(f".{out.stem}.part.mp4")
    cmd = [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(listing),
        "-map",
        "0",
        "-c",
        "copy",
        "-map_metadata",
        "-1",
    ]
    if trim_to is not None:
        duration = _duration(source) * trim_to / size
        cmd += ["-t", f"{duration:.2f}"]
    subprocess.run([*cmd, "-f", "mp4", str(tmp)], check=True)
    listing.unlink()
    os.replace(tmp, out)
    return out


def _duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


# --- SHA-256 rate ---------------------------------------------------------------------------


def hash_file(path: Path) -> int:
    h = hashlib.sha256()
    buffer = bytearray(READ_SIZE)
    view = memoryview(buffer)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            h.update(view[:n])
            total += n
    h.hexdigest()
    return total


def sha_rates(files: list[Path], repeats: int) -> dict[str, float]:
    total = sum(hash_file(f) for f in files)  # warms the page cache
    one, two = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for f in files:
            hash_file(f)
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(hash_file, files))
        two.append(time.perf_counter() - t0)
    return {
        "bytes": total,
        "seconds": median(one),
        "rate": total / median(one),
        "seconds_2": median(two),
        "rate_2": total / median(two),
    }


def disk_rates(work: Path, repeats: int, size: int = GIB) -> dict[str, float]:
    """Write ``size`` bytes and fsync, drop them from the page cache, read them back: the
    ceiling of a store that writes every original to disk and reads it back from there."""
    chunk = os.urandom(8 << 20)
    path = work / "disk-probe.bin"
    writes, reads = [], []
    try:
        for _ in range(repeats):
            path.unlink(missing_ok=True)
            t0 = time.perf_counter()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                for _ in range(size // len(chunk)):
                    os.write(fd, chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
            writes.append(time.perf_counter() - t0)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                t0 = time.perf_counter()
                while os.read(fd, 8 << 20):
                    pass
                reads.append(time.perf_counter() - t0)
            finally:
                os.close(fd)
    finally:
        path.unlink(missing_ok=True)
    w, r = median(writes), median(reads)
    return {"write": size / w, "read": size / r, "write_then_read": size / (w + r)}


# --- the naive reference --------------------------------------------------------------------


def run_naive(clips: list[Clip], inbox: Path, work: Path) -> dict[str, float]:
    """sha256sum, a 720p transcode and cp per file, one after the other, then sync."""
    store = work / "naive-store"
    proxies = work / "naive-proxies"
    store.mkdir(parents=True)
    proxies.mkdir(parents=True)
    parts = {"sha256sum": 0.0, "transcode h264": 0.0, "transcode hevc": 0.0, "cp": 0.0, "sync": 0.0}

    def timed(kind: str, cmd: list[str]) -> None:
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        parts[kind] += time.perf_counter() - t0

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        t0 = time.perf_counter()
        for clip in clips:
            src = inbox / clip.name
            timed("sha256sum", ["sha256sum", str(src)])
            timed(
                f"transcode {clip.codec}",
                [
                    "ffmpeg",
                    "-hide_banner",
                    "-nostdin",
                    "-loglevel",
                    "error",
                    "-y",
                    "-i",
                    str(src),
                    "-vf",
                    "scale=-2:720",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-crf",
                    "28",
                    "-pix_fmt",
                    "yuv420p",
                    "-c:a",
                    "aac",
                    "-b:a",
                    "128k",
                    "-movflags",
                    "+faststart",
                    str(proxies / clip.name),
                ],
            )
            timed("cp", ["cp", str(src), str(store / clip.name)])
        timed("sync", ["sync"])
        total = time.perf_counter() - t0
    finally:
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(proxies, ignore_errors=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": total, **parts, "cpu": cpu}


# --- ours -----------------------------------------------------------------------------------


@dataclass
class ScanResult:
    files: int
    bytes: int
    originals_s: float  # last "archived" log line
    originals_poll_s: float | None  # recordings count reached, polled
    proxies_s: float | None  # proxy rows with status ok reached, polled
    exit_s: float
    hwm_mb: float  # the scan process alone (VmHWM)
    tree_mb: float  # scan process plus children at one moment, largest seen
    child_max_mb: float  # wait4: largest of the process and its waited-for children
    ffmpeg_runs: int
    ffprobe_runs: int
    cpu_s: float  # user + system time of the scan and every child it waited for
    report: dict
    failures: list[str] = field(default_factory=list)
    # per file, in the order picked up: (name, picked up, archived, proxy made), s from start
    timeline: list[tuple[str, float, float, float]] = field(default_factory=list)


def _epoch(value: str) -> float:
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _children(pid: int) -> list[int]:
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    kids += [int(k) for k in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return kids


def _status(pid: int) -> dict[str, str]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                out[key] = value.strip()
    except OSError:
        pass
    return out


def _kb(value: str | None) -> float:
    return float(value.split()[0]) / 1024 if value else 0.0


def clean_env(data: Path, config: Path, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(
        EVIDENCE_CONFIG=str(config), EVIDENCE_DATA_DIR=str(data), TMPDIR=str(tmp), PYTHONUNBUFFERED="1"
    )
    return env


def run_ours(folder: Path, work: Path, label: str, expected: int) -> ScanResult:
    """A fresh data folder, ``evidence init``, one ``evidence ingest scan`` of ``folder``."""
    base = work / f"ours-{label}"
    shutil.rmtree(base, ignore_errors=True)
    data, tmp = base / "data", base / "tmp"
    tmp.mkdir(parents=True)
    config = base / "evidence.toml"
    config.write_text('[ingest]\nstable_seconds = 0.0\nafter_archive = "keep"\n')
    env = clean_env(data, config, tmp)
    cli = [sys.executable, "-m", "config.cli"]
    try:
        subprocess.run([*cli, "init", "--json"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        files = [p for p in folder.iterdir() if p.is_file()]
        total_bytes = sum(p.stat().st_size for p in files)
        db = data / "catalog.sqlite3"
        log_path, out_path = base / "scan.log", base / "scan.json"
        with open(log_path, "wb") as log_f, open(out_path, "wb") as out_f:
            start = time.time()
            proc = subprocess.Popen(
                [
                    *cli,
                    "--log-format",
                    "json",
                    "--log-level",
                    "info",
                    "ingest",
                    "scan",
                    "--station",
                    STATION,
                    str(folder),
                    "--json",
                ],
                cwd=ROOT,
                env=env,
                stdout=out_f,
                stderr=log_f,
                stdin=subprocess.DEVNULL,
            )
            watch = _Watcher(proc.pid, db, expected, start)
            watch.start()
            _, status, usage = os.wait4(proc.pid, 0)
            end = time.time()
            proc.returncode = os.waitstatus_to_exitcode(status)
            watch.stop()
        report = json.loads(out_path.read_text() or "{}")
        archived_times, failures = [], []
        archived_at: dict[str, float] = {}
        for line in log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                failures.append(line[:300])
                continue
            if entry.get("message") == "archived":
                archived_times.append(datetime.fromisoformat(entry["time"]).timestamp())
                archived_at[str(entry.get("path"))] = archived_times[-1] - start
            elif entry.get("level") in ("warning", "error"):
                failures.append(f"{entry.get('message')}: {entry.get('reason', '')}"[:300])
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            n_rec = conn.execute("select count(*) from recordings").fetchone()[0]
            n_proxy = conn.execute(
                "select count(*) from derivatives where kind = 'proxy' and status = 'ok'"
            ).fetchone()[0]
            rows = conn.execute(
                "select r.original_name, r.ingested_at, d.created_at from recordings r "
                "left join derivatives d on d.recording_id = r.id and d.kind = 'proxy' "
                "order by r.ingested_at"
            ).fetchall()
        timeline = [
            (
                name,
                _epoch(picked) - start,
                archived_at.get(name, float("nan")),
                _epoch(proxy) - start if proxy else float("nan"),
            )
            for name, picked, proxy in rows
        ]
        if proc.returncode != 0 or n_rec != expected or n_proxy != expected:
            failures.append(
                f"scan exit {proc.returncode}, {n_rec} recordings and {n_proxy} proxies "
                f"of {expected}; report {json.dumps(report)[:500]}"
            )
        last = max(archived_times) - start if len(archived_times) == expected else float("nan")
        return ScanResult(
            files=len(files),
            bytes=total_bytes,
            originals_s=last,
            originals_poll_s=watch.recordings_at,
            proxies_s=watch.proxies_at,
            exit_s=end - start,
            hwm_mb=watch.hwm_mb,
            tree_mb=watch.tree_mb,
            child_max_mb=usage.ru_maxrss / 1024,
            ffmpeg_runs=len(watch.seen["ffmpeg"]),
            ffprobe_runs=len(watch.seen["ffprobe"]),
            cpu_s=usage.ru_utime + usage.ru_stime,
            report=report,
            failures=failures,
            timeline=timeline,
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


class _Watcher(threading.Thread):
    """Every 0.2 s: the catalog's counts, and the memory of the scan process and its children."""

    def __init__(self, pid: int, db: Path, expected: int, start: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.db, self.expected, self.start_time = pid, db, expected, start
        self.recordings_at: float | None = None
        self.proxies_at: float | None = None
        self.hwm_mb = 0.0
        self.tree_mb = 0.0
        self.seen: dict[str, set[int]] = {"ffmpeg": set(), "ffprobe": set()}
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def run(self) -> None:
        conn = None
        while not self._stop_event.is_set():
            now = time.time() - self.start_time
            status = _status(self.pid)
            if status.get("VmHWM"):
                self.hwm_mb = max(self.hwm_mb, _kb(status.get("VmHWM")))
            tree = _kb(status.get("VmRSS"))
            stack = _children(self.pid)
            while stack:
                kid = stack.pop()
                kid_status = _status(kid)
                name = kid_status.get("Name", "")
                if name in self.seen:
                    self.seen[name].add(kid)
                tree += _kb(kid_status.get("VmRSS"))
                stack += _children(kid)
            self.tree_mb = max(self.tree_mb, tree)
            if self.proxies_at is None and self.db.exists():
                try:
                    if conn is None:
                        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=0.1)
                    if self.recordings_at is None:
                        n = conn.execute("select count(*) from recordings").fetchone()[0]
                        if n >= self.expected:
                            self.recordings_at = now
                    n = conn.execute(
                        "select count(*) from derivatives where kind = 'proxy' and status = 'ok'"
                    ).fetchone()[0]
                    if n >= self.expected:
                        self.proxies_at = now
                except sqlite3.Error:
                    pass
            # once every original is in, watch closely for the last proxy row
            self._stop_event.wait(0.2 if self.recordings_at is None else 0.05)
        if conn is not None:
            conn.close()


# --- the steps of one file ------------------------------------------------------------------


def step_times(h264: Path, hevc: Path | None, repeats: int) -> dict[str, dict[str, float]]:
    """Each per-file step on one clip of each codec, timed in this process."""
    from ingest.container import check_file
    from ingest.derivatives import make_contact_sheet, make_poster, make_proxy
    from ingest.probe import probe

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ingest-bench-steps-", dir=h264.parent.parent) as tmp:
        for label, clip in (("h264", h264), ("hevc", hevc)):
            if clip is None:
                continue
            info = probe(clip)
            hash_file(clip)  # warm
            steps: dict[str, Callable[[Path], object]] = {
                "container check": lambda _d, c=clip: check_file(c),
                "ffprobe": lambda _d, c=clip: probe(c),
                "sha-256 (hashlib)": lambda _d, c=clip: hash_file(c),
                "poster": lambda d, c=clip, i=info: make_poster(c, i, d),
                "contact sheet": lambda d, c=clip, i=info: make_contact_sheet(c, i, d),
                "proxy": lambda d, c=clip, i=info: make_proxy(c, i, d),
            }
            row: dict[str, float] = {"media_s": info.duration_s or 0.0}
            for name, fn in steps.items():
                times = []
                # a transcode takes tens of seconds: once is enough
                n = 1 if (name == "proxy" and label == "hevc") else repeats
                method = ""
                for r in range(n):
                    out = Path(tmp) / f"{label}-{name.replace(' ', '_')}-{r}"
                    t0 = time.perf_counter()
                    made = fn(out)
                    times.append(time.perf_counter() - t0)
                    method = getattr(made, "method", method)
                    shutil.rmtree(out, ignore_errors=True)
                row[name] = median(times)
                if name == "proxy":
                    row["proxy method"] = method  # type: ignore[assignment]
            # the bare ffmpeg remux, without the pipeline's re-probe of its output
            if label == "h264":
                times = []
                for r in range(repeats):
                    out = Path(tmp) / f"bare-{r}.mp4"
                    t0 = time.perf_counter()
                    subprocess.run(
                        [
                            "ffmpeg",
                            "-hide_banner",
                            "-nostdin",
                            "-loglevel",
                            "error",
                            "-y",
                            "-i",
                            str(clip),
                            "-map",
                            "0:V:0",
                            "-map",
                            "0:a:0?",
                            "-c",
                            "copy",
                            "-movflags",
                            "+faststart",
                            "-f",
                            "mp4",
                            str(out),
                        ],
                        check=True,
                    )
                    times.append(time.perf_counter() - t0)
                    out.unlink()
                row["bare ffmpeg remux"] = median(times)
            results[label] = row
    return results


# --- the report -----------------------------------------------------------------------------


def fmt_s(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--h264", type=int, default=20, help="H.264+AAC clips in the inbox")
    parser.add_argument("--hevc", type=int, default=5, help="H.265+AAC clips in the inbox")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each clip")
    parser.add_argument("--h264-bitrate", default="6M")
    parser.add_argument("--hevc-bitrate", default="4M")
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help=f"where the inbox is made and the work is done (default {DEFAULT_DIR})",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the generated files for the next run (default: delete them)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the small measurements")
    parser.add_argument(
        "--inbox-repeats",
        type=int,
        default=1,
        help="repeats of the whole-inbox runs (naive and ours, order alternating)",
    )
    parser.add_argument("--big-gib", type=float, default=4.0, help="size of the big file")
    parser.add_argument("--small-mb", type=float, default=100.0, help="size of the small file")
    parser.add_argument("--gen-jobs", type=int, default=2, help="ffmpeg runs at once when generating")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    args = parser.parse_args()
    if args.h264 < 1:
        parser.error("--h264 must be at least 1 (the remux and memory files are made from one)")
    if args.h264 + args.hevc > 59:
        parser.error("at most 59 clips (names stay within one recorder hour)")

    base = args.dir.resolve()
    inbox, big_dir, small_dir, work = base / "inbox", base / "big", base / "small", base / "work"
    created_base = not base.exists()
    base.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    clips = plan_clips(args.h264, args.hevc)
    try:
        _run(args, clips, inbox, big_dir, small_dir, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.reuse:
            for path in (inbox, big_dir, small_dir, base / "gen-tmp"):
                shutil.rmtree(path, ignore_errors=True)
            (base / "inbox.json").unlink(missing_ok=True)
            if created_base:
                try:
                    base.rmdir()
                except OSError:
                    pass


def _run(
    args: argparse.Namespace, clips: list[Clip], inbox: Path, big_dir: Path, small_dir: Path, work: Path
) -> None:
    t_gen = time.monotonic()
    generate_inbox(args, inbox, clips)
    first_h264 = next(inbox / c.name for c in clips if c.codec == "h264")
    first_hevc = next((inbox / c.name for c in clips if c.codec == "hevc"), None)
    small = concat_copy(
        first_h264,
        small_dir / f"{SERIAL}@202011051000000000.mp4",
        min_bytes=int(args.small_mb * MB),
        trim_to=int(args.small_mb * MB),
    )
    big = concat_copy(
        first_h264, big_dir / f"{SERIAL}@202011051100000000.mp4", min_bytes=int(args.big_gib * GIB)
    )
    subprocess.run(["sync"], check=True)
    say(
        f"[gen] inputs ready in {time.monotonic() - t_gen:.0f} s: small {small.stat().st_size / MB:.0f} MB, "
        f"big {big.stat().st_size / GIB:.2f} GiB"
    )

    files = [inbox / c.name for c in clips]
    inbox_bytes = sum(f.stat().st_size for f in files)
    media_s = args.seconds * len(clips)

    if args.no_wait:
        load_start, waited = load1(), 0.0
    else:
        load_start, waited = wait_quiet()
    say(f"[run] load average {load_start:.2f} at the start (waited {waited:.0f} s)")
    loads = LoadSampler()
    loads.start()
    try:
        _measure(
            args,
            clips,
            inbox,
            files,
            inbox_bytes,
            media_s,
            small,
            big,
            work,
            first_h264,
            first_hevc,
            load_start,
            waited,
            loads,
        )
    finally:
        loads.stop()


def _measure(
    args: argparse.Namespace,
    clips: list[Clip],
    inbox: Path,
    files: list[Path],
    inbox_bytes: int,
    media_s: float,
    small: Path,
    big: Path,
    work: Path,
    first_h264: Path,
    first_hevc: Path | None,
    load_start: float,
    waited: float,
    loads: LoadSampler,
) -> None:
    small_dir, big_dir = small.parent, big.parent
    t0 = time.monotonic()
    sha = sha_rates(files, args.repeats)
    loads.phase("sha", t0)
    say(f"[sha] hashlib {sha['rate'] / MB:.0f} MB/s one thread, {sha['rate_2'] / MB:.0f} MB/s two")

    naive_runs: list[dict[str, float]] = []
    ours_runs: list[ScanResult] = []
    for r in range(args.inbox_repeats):
        order = ["naive", "ours"] if r % 2 == 0 else ["ours", "naive"]
        for which in order:
            if not args.no_wait:
                # our own previous phase leaves the load near 2: start each one alike
                quiet, waited_here = wait_quiet()
                say(f"[{which}] load average {quiet:.2f} (waited {waited_here:.0f} s)")
            t0 = time.monotonic()
            if which == "naive":
                say(f"[naive] repeat {r + 1}: {len(clips)} files, sha256sum + transcode + cp ...")
                naive_runs.append(run_naive(clips, inbox, work))
                say(
                    f"[naive] {naive_runs[-1]['seconds']:.1f} s "
                    + json.dumps({k: round(v, 1) for k, v in naive_runs[-1].items()})
                )
            else:
                say(f"[ours] repeat {r + 1}: evidence ingest scan of {len(clips)} files ...")
                res = run_ours(inbox, work, f"inbox-{r}", len(clips))
                ours_runs.append(res)
                say(
                    f"[ours] originals {fmt_s(res.originals_s)} s (polled {fmt_s(res.originals_poll_s)}), "
                    f"proxies {fmt_s(res.proxies_s)} s, exit {res.exit_s:.1f} s, VmHWM {res.hwm_mb:.0f} MB, "
                    f"ffmpeg runs {res.ffmpeg_runs}, ffprobe runs {res.ffprobe_runs}, CPU {res.cpu_s:.0f} s"
                )
                for failure in res.failures:
                    say(f"[ours]   {failure}")
            loads.phase(f"{which}" + (f" {r + 1}" if args.inbox_repeats > 1 else ""), t0)

    t0 = time.monotonic()
    say("[steps] per-file steps on one clip of each codec ...")
    steps = step_times(first_h264, first_hevc, args.repeats)
    say("[steps] " + json.dumps(steps))
    disk = disk_rates(work, args.repeats)
    loads.phase("steps and disk", t0)
    say(f"[disk] write+fsync {disk['write'] / MB:.0f} MB/s, cold read {disk['read'] / MB:.0f} MB/s")

    t0 = time.monotonic()
    small_runs = []
    for r in range(args.repeats):
        small_runs.append(run_ours(small_dir, work, f"small-{r}", 1))
    say("[memory] small: " + ", ".join(f"{s.hwm_mb:.0f} MB in {s.exit_s:.1f} s" for s in small_runs))
    say("[memory] big file ...")
    big_res = run_ours(big_dir, work, "big", 1)
    say(
        f"[memory] big: VmHWM {big_res.hwm_mb:.0f} MB, tree {big_res.tree_mb:.0f} MB, originals "
        f"{fmt_s(big_res.originals_s)} s, exit {big_res.exit_s:.1f} s"
    )
    for res in [*small_runs, big_res]:
        for failure in res.failures:
            say(f"[memory]   {failure}")
    loads.phase("memory", t0)

    # --- figures
    naive_s = median([n["seconds"] for n in naive_runs])
    ours_orig = median([o.originals_s for o in ours_runs])
    ours_proxy = median([o.proxies_s if o.proxies_s is not None else o.exit_s for o in ours_runs])
    ours_exit = median([o.exit_s for o in ours_runs])
    naive_cpu = median([n["cpu"] for n in naive_runs])
    ours_cpu = median([o.cpu_s for o in ours_runs])
    ratio = naive_s / ours_proxy
    orig_rate = inbox_bytes / ours_orig
    share = orig_rate / sha["rate"]
    h = steps["h264"]
    remux_rt = h["media_s"] / h["proxy"]
    small_hwm = max(s.hwm_mb for s in small_runs)
    small_size = small.stat().st_size
    big_size = big.stat().st_size
    n264 = sum(c.codec == "h264" for c in clips)
    n265 = len(clips) - n264

    lines = [
        f"Inbox: {len(clips)} clips ({n264} H.264 at {args.h264_bitrate}bit/s, {n265} H.265 at "
        f"{args.hevc_bitrate}bit/s, {args.seconds:g} s 1080p30 + AAC each), {inbox_bytes / MB:.0f} MB, "
        f"{media_s / 60:.0f} min of footage. Load average {load_start:.2f} at the start "
        f"(waited {waited:.0f} s); mean 1-minute load per phase: "
        + loads.summary()
        + f". {os.cpu_count()} cores, Python {platform.python_version()}, "
        + subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True)
        .stdout.split("\n")[0]
        .split(" Copyright")[0]
        + ".",
        "",
        "| measurement | median s | MB/s | result | target | met |",
        "|---|---|---|---|---|---|",
        f"| SHA-256 rate (hashlib, one thread, warm, {args.repeats} runs) | {fmt_s(sha['seconds'])} "
        f"| {sha['rate'] / MB:.0f} | two threads: {sha['rate_2'] / MB:.0f} MB/s | | |",
        f"| naive script: sha256sum + 720p transcode + cp per file, sync ({len(naive_runs)} run) "
        f"| {fmt_s(naive_s)} | {inbox_bytes / naive_s / MB:.1f} | 1.00× | | |",
        f"| ours: every original archived and verified | {fmt_s(ours_orig)} | {orig_rate / MB:.1f} "
        f"| {100 * share:.1f}% of the SHA-256 rate; {naive_s / ours_orig:.1f}× faster than naive "
        f"| ≥ {100 * TARGET_ORIGINALS_SHARE:.0f}% | {met(share >= TARGET_ORIGINALS_SHARE)} |",
        f"| ours: every proxy stored (whole inbox done) ({len(ours_runs)} run) | {fmt_s(ours_proxy)} "
        f"| {inbox_bytes / ours_proxy / MB:.1f} | {ratio:.2f}× faster than naive (scan exit "
        f"{fmt_s(ours_exit)} s) | ≥ {TARGET_VS_NAIVE:g}× | {met(ratio >= TARGET_VS_NAIVE)} |",
        f"| CPU time, user + system, all processes: naive {naive_cpu:.0f} s, ours {ours_cpu:.0f} s "
        f"| | | ours uses {naive_cpu / ours_cpu:.1f}× less CPU (holds under other load) | | |",
        f"| remux step, one {h['media_s']:.0f} s H.264 clip (make_proxy: ffmpeg -c copy + re-probe) "
        f"| {fmt_s(h['proxy'])} | {first_h264.stat().st_size / h['proxy'] / MB:.0f} "
        f"| {remux_rt:.0f}× real time (bare ffmpeg remux {h['bare ffmpeg remux']:.2f} s, "
        f"{h['media_s'] / h['bare ffmpeg remux']:.0f}×) | ≥ {TARGET_REMUX_RT:g}× "
        f"| {met(remux_rt >= TARGET_REMUX_RT)} |",
        f"| ours: originals path alone, the {big_size / GIB:.2f} GiB file (archived before any "
        f"derivative) | {fmt_s(big_res.originals_s)} | {big_size / big_res.originals_s / MB:.0f} "
        f"| {100 * big_size / big_res.originals_s / sha['rate']:.0f}% of the SHA-256 rate, "
        f"{100 * big_size / big_res.originals_s / disk['write_then_read']:.0f}% of the disk's "
        f"write-then-read-back rate | | |",
        f"| disk: 1 GiB written + fsync, then read back cold | | {disk['write_then_read'] / MB:.0f} "
        f"| write {disk['write'] / MB:.0f} MB/s, read {disk['read'] / MB:.0f} MB/s | | |",
        f"| peak RSS of the scan, {small_size / MB:.0f} MB file ({len(small_runs)} runs, largest) "
        f"| {fmt_s(median([s.exit_s for s in small_runs]))} "
        f"| {small_size / median([s.exit_s for s in small_runs]) / MB:.0f} | {small_hwm:.0f} MB "
        f"| < {TARGET_RSS_MB:g} MB | {met(small_hwm < TARGET_RSS_MB)} |",
        f"| peak RSS of the scan, {big_size / GIB:.2f} GiB file (1 run) | {fmt_s(big_res.exit_s)} "
        f"| {big_size / big_res.exit_s / MB:.0f} | {big_res.hwm_mb:.0f} MB "
        f"({big_res.hwm_mb - small_hwm:+.0f} MB vs the small file) | about equal, < {TARGET_RSS_MB:g} MB "
        f"| {met(big_res.hwm_mb < TARGET_RSS_MB and big_res.hwm_mb < small_hwm * 1.25 + 10)} |",
        "",
        "Where the time goes (one clip of each codec, in-process, median of "
        f"{args.repeats}; the HEVC transcode once):",
        "",
        "| step | H.264 clip s | H.265 clip s |",
        "|---|---|---|",
    ]
    hv = steps.get("hevc", {})
    for name in ("container check", "ffprobe", "sha-256 (hashlib)", "poster", "contact sheet", "proxy"):
        extra = ""
        if name == "proxy":
            extra = f" ({h.get('proxy method')} / {hv.get('proxy method', 'n/a')})"
        lines.append(f"| {name}{extra} | {fmt_s(h[name])} | {fmt_s(hv.get(name))} |")
    n = naive_runs[0]
    lines += [
        "",
        "Naive script, total per kind of command (first run): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in n.items() if k not in ("seconds", "cpu"))
        + ".",
        "",
        "Ours, scan process: "
        + "; ".join(
            f"run {i + 1}: originals at {fmt_s(o.originals_s)} s "
            f"(catalog poll {fmt_s(o.originals_poll_s)} s), "
            f"proxies at {fmt_s(o.proxies_s)} s, exit {fmt_s(o.exit_s)} s, VmHWM {o.hwm_mb:.0f} MB, "
            f"process tree at most {o.tree_mb:.0f} MB, largest child {o.child_max_mb:.0f} MB, "
            f"{o.ffmpeg_runs} ffmpeg and {o.ffprobe_runs} ffprobe processes seen (sampled every 0.2 s)"
            for i, o in enumerate(ours_runs)
        )
        + ".",
        f"Big file: originals at {fmt_s(big_res.originals_s)} s "
        f"({big_size / big_res.originals_s / MB:.0f} MB/s), exit {fmt_s(big_res.exit_s)} s, "
        f"process tree at most {big_res.tree_mb:.0f} MB, largest child {big_res.child_max_mb:.0f} MB.",
    ]
    for i, o in enumerate(ours_runs):
        lines += [
            "",
            f"Ours, run {i + 1}, per file in the order picked up (s from the scan's start):",
            "",
            "| file | codec | picked up | original archived | proxy made |",
            "|---|---|---|---|---|",
        ]
        codec = {c.name: c.codec for c in clips}
        for name, picked, archived, proxy in o.timeline:
            lines.append(f"| {name} | {codec.get(name, '?')} | {picked:.1f} | {archived:.1f} | {proxy:.1f} |")
    say("")
    say("\n".join(lines))


if __name__ == "__main__":
    main()
