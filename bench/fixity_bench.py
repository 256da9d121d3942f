"""Fixity sweeps and case exports on about 2 GB of originals, against the machine's own limits.

Set-up (not timed): 20 files of 100 MB of incompressible bytes are archived with
``archive.originals.store_original`` into a local WORM directory (``LocalStore``) and into a
throw-away Ceph RADOS Gateway on bluestore (``tests.servers.rgw.start_rgw``, a sparse file on
the same disk), each with its own SQLite catalog. All files go under ``--dir`` (default
/var/tmp: the real disk, not tmpfs). In the local catalog the 20 recordings are linked to one
case (2 GB of evidence).

Measured, each run in a fresh child process (wall time, CPU time, peak RSS):

- sha256, warm: hashlib SHA-256 over the stored object files with the page cache warm (read
  once first), 8 MiB reads: the machine's SHA-256 rate, the ceiling of any fixity check;
- sha256, cold: the same after the files' pages were dropped (``POSIX_FADV_DONTNEED`` on these
  files only; the machine's page cache is not flushed, other work keeps its cache): the disk's
  ceiling for reading and hashing in one thread;
- sweep local, warm / cold: ``verify.fixity.sweep`` over the local store (originals, their
  manifests, the report object, the custody events, reconciliation), objects in the page cache
  or dropped first;
- read only (local cold, S3): every original read through the store's ``read`` and thrown
  away: what the store can deliver to one reader, the ceiling of a sweep over it;
- sweep S3: the sweep over the gateway (bluestore reads its block file with direct I/O and a
  128 MiB cache, so these reads come from the disk); the daemons' CPU time is reported too;
- overlapped (local cold, S3): a prototype of the sweep's check with the hashing done in a
  thread (``archive.digest.HashThread``) while the next chunks are read, originals only;
- export: ``verify.export.export_case`` of the 2 GB case into a new folder (hash while
  writing, fsync each file, custody excerpt, checkpoint, tag files), source objects dropped
  from the page cache first; peak RSS is the child's ``ru_maxrss`` (and ``VmHWM``);
- cp: ``cp`` of the same 20 object files into a new folder (clock stops when cp exits, the
  dirty pages are flushed later), and cp then ``sync FILE...`` (each copy fsynced, as the
  export does);
- copy+hash overlapped: a prototype of the export's copy (read, hash, write, fsync each file)
  with the hashing in a thread, without the export's catalog work and tag files.

Baseline and ours alternate in order on each repeat; medians are reported, with ratios in the
same run. Before each measurement the run waits (up to 10 minutes) for the 1-minute load
average to fall below 2.0, and prints the load it ran under. One sweep of each store is also
run under cProfile, and one export; the functions with the most own time are printed.

    python -m bench.fixity_bench [--files 20] [--size-mb 100] [--repeats 5] [--export-repeats 5]
                                 [--dir /var/tmp] [--no-s3] [--no-export] [--no-profile]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import log, run_child, server_cpu, wait_for_quiet

MB = 1_000_000
MIB = 1 << 20
UNIT, STATION = "KZCG", "ST01"
TARGET_SHARE = 0.70


# --- page cache of our own files ----------------------------------------------------------


def drop_pages(paths: list[Path]) -> None:
    """Drop these files' clean pages from the page cache (nobody else's)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)  # dirty pages cannot be dropped; these are clean unless just written
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm_pages(paths: list[Path]) -> None:
    buffer = bytearray(8 * MIB)
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buffer):
                pass


# --- the child process: one measured operation ----------------------------------------------


def _hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _store(spec: dict[str, Any]):
    if spec["store"] == "local":
        from archive.local_store import LocalStore

        return LocalStore(Path(spec["root"]), lock_mode="GOVERNANCE")
    from archive.s3_store import S3Store

    return S3Store(
        spec["endpoint"],
        spec["bucket"],
        spec["access"],
        spec["secret"],
        secure=False,
        timeout=120.0,
        lock_mode="GOVERNANCE",
    )


def _services(sessions, store):
    from zoneinfo import ZoneInfo

    from archive.context import ServiceContext
    from archive.policy import ArchivePolicy
    from catalog.numbering import NumberingFormats

    return ServiceContext(
        sessions.kw["bind"],
        sessions,
        store,
        NumberingFormats(),
        ArchivePolicy(zone=ZoneInfo("Asia/Shanghai")),
        "bench",
    )


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    op = spec["op"]
    result: dict[str, Any] = {"op": op, "hwm_before_mb": _hwm_mb()}
    if op == "sha256":
        import hashlib

        buffer = bytearray(8 * MIB)
        view = memoryview(buffer)
        total = 0
        start = time.perf_counter()
        for name in spec["files"]:
            h = hashlib.sha256()
            with open(name, "rb", buffering=0) as f:
                while n := f.readinto(buffer):
                    h.update(view[:n])
                    total += n
        result["seconds"] = time.perf_counter() - start
        result["bytes"] = total
    elif op in ("sweep", "profile"):
        from catalog.db import make_engine, session_factory
        from verify.fixity import sweep

        engine = make_engine(spec["url"])
        sessions = session_factory(engine)
        store = _store(spec)
        if op == "profile":
            import cProfile
            import io
            import pstats

            profiler = cProfile.Profile()
            start = time.perf_counter()
            report = profiler.runcall(sweep, _services(sessions, store))
            result["seconds"] = time.perf_counter() - start
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(14)
            result["profile"] = text.getvalue()
        else:
            start = time.perf_counter()
            report = sweep(_services(sessions, store))
            result["seconds"] = time.perf_counter() - start
        result["bytes"] = report.bytes_read
        result["checked"], result["ok"] = report.checked, report.ok
        result["problems"] = report.problems
        engine.dispose()
    elif op in ("read_only", "overlapped", "copy_overlapped"):
        import queue

        from sqlalchemy import select

        from archive.digest import Hasher, HashThread
        from catalog.db import make_engine
        from catalog.models import Recording

        engine = make_engine(spec["url"], readonly=True)
        with engine.connect() as conn:
            targets = list(
                conn.execute(
                    select(Recording.storage_key, Recording.storage_version, Recording.sha256).order_by(
                        Recording.id
                    )
                )
            )
        engine.dispose()
        store = _store(spec)
        total = 0
        if op == "copy_overlapped":
            Path(spec["outdir"]).mkdir(parents=True)
        start = time.perf_counter()
        for key, version, expected in targets:
            if op == "read_only":
                for chunk in store.read(key, version):
                    total += len(chunk)
                continue
            # The sweep's check with reading and hashing overlapped: chunks are hashed in a
            # thread (hashlib releases the GIL) while the next ones are read; at most 8 in flight.
            # copy_overlapped: the export's copy (read, hash, write, fsync) with the hashing
            # overlapped the same way.
            hasher, pool = Hasher(), queue.SimpleQueue()
            hashing, in_flight = HashThread(hasher, pool), 0
            out = (
                open(Path(spec["outdir"]) / Path(key).name, "xb", buffering=0)
                if op == "copy_overlapped"
                else None
            )
            try:
                for chunk in store.read(key, version):
                    hashing.feed(chunk, len(chunk))
                    if out is not None:
                        view = memoryview(chunk)
                        while view:
                            view = view[out.write(view) :]
                    total += len(chunk)
                    in_flight += 1
                    if in_flight == 8:
                        hashing.take()
                        in_flight -= 1
                hashing.finish()
                if out is not None:
                    os.fsync(out.fileno())
            finally:
                hashing.abort()
                if out is not None:
                    out.close()
            if hasher.digests().sha256 != expected:
                raise SystemExit(f"{key}: digest differs")
        result["seconds"] = time.perf_counter() - start
        result["bytes"] = total
    elif op in ("export", "export_profile"):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from catalog.db import make_engine, session_factory
        from verify.export import export_case

        engine = make_engine(spec["url"])
        sessions = session_factory(engine)
        store = _store(spec)
        key = Ed25519PrivateKey.generate()
        result["hwm_before_mb"] = _hwm_mb()
        call = lambda: export_case(
            _services(sessions, store),
            spec["case"],
            Path(spec["outdir"]),
            signing_key=key,
            reason="benchmark",
        )
        start = time.perf_counter()
        if op == "export_profile":
            import cProfile
            import io
            import pstats

            profiler = cProfile.Profile()
            exported = profiler.runcall(call)
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
            result["profile"] = text.getvalue()
        else:
            exported = call()
        result["seconds"] = time.perf_counter() - start
        result["bytes"] = exported.bytes
        result["items"] = exported.items
        engine.dispose()
    elif op in ("cp", "cp_sync"):
        dest = Path(spec["outdir"])
        dest.mkdir(parents=True)
        start = time.perf_counter()
        # GNU time reports cp's own peak RSS (KiB) on its last line of stderr.
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "cp", *spec["files"], str(dest)],
            check=True,
            capture_output=True,
            text=True,
        )
        result["tool_rss_mb"] = int(done.stderr.strip().splitlines()[-1]) / 1024
        if op == "cp_sync":
            subprocess.run(["sync", *[str(dest / Path(f).name) for f in spec["files"]]], check=True)
        result["seconds"] = time.perf_counter() - start
        result["bytes"] = sum(Path(f).stat().st_size for f in spec["files"])
    else:
        raise SystemExit(f"unknown operation {op!r}")
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve, so a child started from a
    # large parent would report the parent's size.
    result["hwm_mb"] = _hwm_mb()
    result["rss_mb"] = result.get("tool_rss_mb", result["hwm_mb"])
    result["cpu_seconds"] = _cpu() + _cpu(resource.RUSAGE_CHILDREN)
    return result


def make_source(path: Path, size: int) -> None:
    """Incompressible bytes: AES-256-CTR over zeros under a random key."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.AES(os.urandom(32)), modes.CTR(os.urandom(16))).encryptor()
    zeros = bytes(8 * MIB)
    left = size
    with open(path, "wb", buffering=0) as f:
        while left:
            n = min(left, len(zeros))
            f.write(enc.update(zeros[:n]))
            left -= n
        os.fsync(f.fileno())


def archive_files(url: str, store, sources: list[Path]) -> list[str]:
    """Archive each file as an original (as ingest does); returns the archive numbers."""
    from zoneinfo import ZoneInfo

    from archive.context import ServiceContext
    from archive.digest import hash_file
    from archive.originals import OriginalFacts, store_original
    from archive.policy import ArchivePolicy
    from catalog import schema
    from catalog.db import make_engine, session_factory
    from catalog.numbering import NumberingFormats
    from catalog.recordings import reserve_archive_number

    zone = ZoneInfo("Asia/Shanghai")
    engine = make_engine(url)
    schema.upgrade(engine)
    sessions = session_factory(engine)
    policy = ArchivePolicy(zone=zone, routine=(1, "days"), min_lock=timedelta(days=1))
    ctx = ServiceContext(engine, sessions, store, NumberingFormats(), policy, f"station:{STATION}")
    numbers = []
    for i, path in enumerate(sources):
        now = datetime.now(UTC)
        number = reserve_archive_number(engine, NumberingFormats(), zone, unit=UNIT, station=STATION, now=now)
        facts = OriginalFacts(
            station=STATION,
            unit=UNIT,
            kind="video",
            original_name=path.name,
            content_type="video/mp4",
            start_time=now - timedelta(hours=2, minutes=i),
            duration_s=600.0,
            device="A123456",
            officer="JX0227",
        )
        store_original(ctx.at(now), path, hash_file(path), facts, archive_no=number)
        numbers.append(number)
    engine.dispose()
    return numbers


def make_case(url: str, store, numbers: list[str]) -> str:
    from archive.cases import open_case
    from archive.links import link_recordings
    from catalog.cases import NewCase
    from catalog.db import make_engine, session_factory

    engine = make_engine(url)
    clerk = _services(session_factory(engine), store).acting_as("clerk")
    case = open_case(
        clerk, NewCase(number="开城管罚立〔2026〕1127号", unit=UNIT, opened_on=clerk.now().date())
    )
    link_recordings(clerk, case.case_key, numbers)
    engine.dispose()
    return case.case_key


def object_files(root: Path, numbers: list[str]) -> list[Path]:
    """The local store's files of these originals (not their manifests)."""
    found = {p.stem: p for p in (root / "objects" / "originals").rglob("*.mp4")}
    return [found[n] for n in numbers]


# --- measurements -------------------------------------------------------------------------------


def median(runs: list[dict[str, Any]], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in runs)


def rate(runs: list[dict[str, Any]]) -> float:
    return statistics.median(r["bytes"] / r["seconds"] for r in runs) / MB


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rgw: Any = None
        self.rows: list[dict[str, Any]] = []
        self.loads: list[float] = []
        self.profiles: dict[str, str] = {}

    def group(
        self,
        label: str,
        specs: list[tuple[str, Any, dict[str, Any]]],
        repeats: int | None = None,
        server: bool = False,
    ) -> dict[str, list]:
        """Run each (name, prepare, spec) ``repeats`` times, alternating their order."""
        load = wait_for_quiet(label, not self.args.no_wait)
        self.loads.append(load)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in specs}
        for r in range(repeats or self.args.repeats):
            order = specs if r % 2 == 0 else list(reversed(specs))
            for name, prepare, spec in order:
                if prepare is not None:
                    prepare()
                before = server_cpu(self.rgw) if server else 0.0
                result = run_child("bench.fixity_bench", spec() if callable(spec) else spec)
                if server:
                    result["server_cpu_seconds"] = server_cpu(self.rgw) - before
                result["load"] = os.getloadavg()[0]
                runs[name].append(result)
                extra = f"  server cpu {result['server_cpu_seconds']:6.2f} s" if server else ""
                log(
                    f"    {name:<26} {result['seconds']:7.2f} s  "
                    f"{result['bytes'] / result['seconds'] / MB:7.0f} MB/s  "
                    f"cpu {result['cpu_seconds']:6.2f} s{extra}  rss {result['rss_mb']:6.1f} MB"
                )
        for name, _, _ in specs:
            self.rows.append({"group": label, "name": name, "runs": runs[name], "load": load})
        return runs


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "_child":
        print(json.dumps(_child(json.loads(sys.argv[2]))))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m bench.fixity_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--size-mb", type=int, default=100, help="size of each file in MB (10^6)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--export-repeats", type=int, default=5)
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("/var/tmp"),
        help="where everything goes; on the real disk, not tmpfs",
    )
    parser.add_argument("--no-s3", action="store_true", help="skip the Ceph RGW rows")
    parser.add_argument("--no-export", action="store_true", help="skip the export rows")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile runs")
    parser.add_argument(
        "--no-wait", action="store_true", help="measure at once whatever the load (for trying the script out)"
    )
    args = parser.parse_args(argv)

    base = args.dir.resolve()
    fs = subprocess.run(["df", "--output=fstype", str(base)], capture_output=True, text=True)
    fstype = fs.stdout.split()[-1] if fs.returncode == 0 else "?"
    if fstype == "tmpfs":
        log(f"warning: {base} is on tmpfs: the figures will not reflect a disk")
    work = base / f"fixity-bench-{os.getpid()}"
    work.mkdir(parents=True)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    rgw = None
    began = time.monotonic()
    bench = Bench(args)
    total = args.files * args.size_mb * MB
    try:
        from archive.local_store import LocalStore

        log(f"work folder {work} ({fstype}); {args.files} files of {args.size_mb} MB")
        sources = []
        for i in range(args.files):
            path = work / "sources" / f"A123456@20261127{i:06d}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            make_source(path, args.size_mb * MB)
            sources.append(path)

        local_root = work / "local-store"
        local_url = f"sqlite:///{work / 'local.sqlite3'}"
        store = LocalStore(local_root, lock_mode="GOVERNANCE")
        store.ensure_ready()
        t = time.perf_counter()
        numbers = archive_files(local_url, store, sources)
        log(f"  archived into the local store in {time.perf_counter() - t:.0f} s")
        objects = object_files(local_root, numbers)
        local_spec = {"store": "local", "root": str(local_root), "url": local_url}

        s3_spec = None
        if not args.no_s3:
            from archive.s3_store import S3Store
            from tests.servers.rgw import start_rgw

            log("  starting Ceph RGW (bluestore, sparse 20 GiB)")
            rgw = start_rgw(work / "rgw", objectstore="bluestore", bluestore_bytes=20 << 30)
            access, secret = rgw.users["admin"]
            bucket = f"fixity-{uuid.uuid4().hex[:8]}"
            s3 = S3Store(
                rgw.endpoint, bucket, access, secret, secure=False, timeout=120.0, lock_mode="GOVERNANCE"
            )
            s3.ensure_ready()
            s3_url = f"sqlite:///{work / 's3.sqlite3'}"
            t = time.perf_counter()
            archive_files(s3_url, s3, sources)
            log(f"  archived into the gateway in {time.perf_counter() - t:.0f} s")
            s3_spec = {
                "store": "s3",
                "endpoint": rgw.endpoint,
                "bucket": bucket,
                "access": access,
                "secret": secret,
                "url": s3_url,
            }
        shutil.rmtree(work / "sources")

        files = [str(p) for p in objects]
        sha = bench.group(
            "sha256 (hashlib, warm)",
            [("sha256 warm", lambda: warm_pages(objects), {"op": "sha256", "files": files})],
        )
        sha_rate = rate(sha["sha256 warm"])
        bench.group(
            "sweep, local store, warm",
            [("sweep local warm", lambda: warm_pages(objects), {"op": "sweep", **local_spec})],
        )
        drop = lambda: drop_pages(objects)
        bench.group(
            "local store, cold",
            [
                ("sha256 cold", drop, {"op": "sha256", "files": files}),
                ("read only local cold", drop, {"op": "read_only", **local_spec}),
                ("sweep local cold", drop, {"op": "sweep", **local_spec}),
                ("overlapped local cold", drop, {"op": "overlapped", **local_spec}),
            ],
        )
        if s3_spec is not None:
            bench.rgw = rgw
            bench.group(
                "S3 (Ceph RGW, bluestore)",
                [
                    ("read only S3", None, {"op": "read_only", **s3_spec}),
                    ("sweep S3", None, {"op": "sweep", **s3_spec}),
                    ("overlapped S3", None, {"op": "overlapped", **s3_spec}),
                ],
                server=True,
            )

        if not args.no_profile:
            wait_for_quiet("profiled sweeps", not args.no_wait)
            warm_pages(objects)
            result = run_child("bench.fixity_bench", {"op": "profile", **local_spec})
            bench.profiles["one sweep, local store, warm"] = result["profile"]
            if s3_spec is not None:
                result = run_child("bench.fixity_bench", {"op": "profile", **s3_spec})
                bench.profiles["one sweep, S3 (Ceph RGW)"] = result["profile"]

        if not args.no_export:
            case_key = make_case(local_url, store, numbers)
            counter = iter(range(1_000_000))

            def out(kind: str):
                def make() -> dict[str, Any]:
                    folder = work / "out" / f"{kind}-{next(counter)}"
                    if kind == "export":
                        return {"op": "export", **local_spec, "case": case_key, "outdir": str(folder)}
                    if kind == "copy_overlapped":
                        return {"op": kind, **local_spec, "outdir": str(folder)}
                    return {"op": kind, "files": files, "outdir": str(folder)}

                return make

            def fresh() -> None:
                shutil.rmtree(work / "out", ignore_errors=True)  # its dirty pages go with it
                drop_pages(objects)

            bench.group(
                "export vs cp, 2 GB case, cold source",
                [
                    ("cp", fresh, out("cp")),
                    ("cp + sync", fresh, out("cp_sync")),
                    ("export", fresh, out("export")),
                    ("copy+hash overlapped", fresh, out("copy_overlapped")),
                ],
                repeats=args.export_repeats,
            )
            if not args.no_profile:
                fresh()
                spec = out("export")()
                spec["op"] = "export_profile"
                bench.profiles["one export, cold source"] = run_child("bench.fixity_bench", spec)["profile"]
            shutil.rmtree(work / "out", ignore_errors=True)
    finally:
        if rgw is not None:
            rgw.stop()
        shutil.rmtree(work, ignore_errors=True)
        log(f"total {time.monotonic() - began:.0f} s")

    print(
        f"\n{args.files} × {args.size_mb} MB = {total / 1e9:.1f} GB; median of {args.repeats} runs "
        f"({args.export_repeats} for export and cp); "
        f"load at the start of each measurement: {', '.join(f'{x:.2f}' for x in bench.loads)}\n"
    )
    print(
        "| operation | median s | MB/s | of SHA-256 rate (warm) | CPU s (client / server) | "
        "peak RSS MB | load |"
    )
    print("|---|---|---|---|---|---|---|")
    by_name = {row["name"]: row for row in bench.rows}
    for row in bench.rows:
        runs = row["runs"]
        mbs = rate(runs)
        share = f"{mbs / sha_rate:.0%}" if row["name"] != "sha256 warm" else "100%"
        rss = max(r["rss_mb"] for r in runs)
        cpu = f"{median(runs, 'cpu_seconds'):.1f}"
        if all("server_cpu_seconds" in r for r in runs):
            cpu += f" / {median(runs, 'server_cpu_seconds'):.1f}"
        print(
            f"| {row['name']} | {median(runs):.2f} | {mbs:.0f} | {share} | {cpu} | {rss:.0f} | "
            f"{row['load']:.2f} |"
        )
    for name in (
        "sweep local warm",
        "sweep local cold",
        "overlapped local cold",
        "sweep S3",
        "overlapped S3",
    ):
        if name in by_name:
            share = rate(by_name[name]["runs"]) / sha_rate
            print(
                f"\n{name}: {share:.0%} of the warm SHA-256 rate: target ≥ {TARGET_SHARE:.0%} "
                f"{'met' if share >= TARGET_SHARE else 'MISSED'}"
            )
    for ours, ceiling in (
        ("sweep local cold", "read only local cold"),
        ("overlapped local cold", "read only local cold"),
        ("sweep S3", "read only S3"),
        ("overlapped S3", "read only S3"),
    ):
        if ours in by_name and ceiling in by_name:
            print(f"{ours} vs {ceiling}: {rate(by_name[ours]['runs']) / rate(by_name[ceiling]['runs']):.0%}")
    if "export" in by_name:
        export = by_name["export"]["runs"]
        print(
            f"\nexport: {median(export):.2f} s, {rate(export):.0f} MB/s; "
            f"cp: {median(by_name['cp']['runs']):.2f} s "
            f"(export takes {median(export) / median(by_name['cp']['runs']):.2f}× as long); "
            f"cp + sync: {median(by_name['cp + sync']['runs']):.2f} s "
            f"({median(export) / median(by_name['cp + sync']['runs']):.2f}×); "
            f"copy+hash overlapped: {median(by_name['copy+hash overlapped']['runs']):.2f} s"
        )
        print(
            f"export peak RSS (VmHWM of its process): {max(r['hwm_mb'] for r in export):.0f} MB, "
            f"of which {statistics.median(r['hwm_before_mb'] for r in export):.0f} MB before the "
            f"export started (interpreter and imports); cp peak RSS "
            f"{max(r['rss_mb'] for r in by_name['cp']['runs']):.1f} MB"
        )
    for name, text in bench.profiles.items():
        print(f"\ncProfile of {name} (top functions by own time):\n")
        print("\n".join(line for line in text.splitlines() if line.strip())[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
