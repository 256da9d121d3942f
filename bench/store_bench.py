"""Object-store benchmarks: storing a large original locally and on a real S3 server.

For a file of incompressible bytes of each size (1 and 4 GiB by default), in one run:

- sha256 rate: hashlib SHA-256 over the file with the page cache warm (the machine's
  ceiling for any operation that must hash every byte);
- local, baseline A: ``sha256sum FILE && cp FILE DEST`` (two programs, DEST on the same disk,
  no fsync: the dirty pages are flushed after the clock stops);
- local, ours: ``hash_file`` (the dedupe hash) then ``LocalStore.put`` with the expected
  digests (hash while writing, fsync, re-read from disk and compare, hard link);
- local, baseline C: ``cp FILE DEST && sync`` (no hash; the copy flushed to the disk);
- local, ours read once: what the ingest does on the local store, ``LocalStore.stage`` (the
  file read once, hashed while written, fsync, read back from disk) then ``commit_staged``
  (hard link, record); target: within 1.6× of baseline C;
- S3, baseline B: minio's ``fput_object`` with 16 MiB parts (its default parallelism) to a
  throw-away Ceph RGW on bluestore (a sparse file on the same disk);
- S3, ours: ``hash_file`` then ``S3Store.put`` with 16 MiB parts (Content-MD5 per part, ETag
  check per part, SHA-256 while sending, check before completing).

Every measured operation runs in a fresh child process, which reports its wall time, CPU time
and peak RSS. Before each one the page cache is flushed and dropped when the machine allows it
(else the source is read once so that every operation starts warm); baseline and ours swap
order on every repeat. Medians are reported, with ratio = baseline time / our time (above 1:
ours is faster).

    python -m bench.store_bench [--sizes 1,4] [--repeats 3] [--dir DIR] [--no-s3]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT, log, run_child, server_cpu

GIB = 1 << 30
MIB = 1 << 20
MB = 1_000_000
PART = 16 * MIB
KEY = "originals/2026/11/27/BENCH-000001.mp4"


# --- the child process: one measured operation --------------------------------------------


def _rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    op, path = spec["op"], Path(spec["file"])
    result: dict[str, Any] = {"op": op}
    if op == "sha256":
        import hashlib

        buffer = bytearray(8 * MIB)
        with open(path, "rb", buffering=0) as f:  # warm the page cache
            while f.readinto(buffer):
                pass
        view = memoryview(buffer)
        h = hashlib.sha256()
        start = time.perf_counter()
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                h.update(view[:n])
        result["seconds"] = time.perf_counter() - start
        result["sha256"] = h.hexdigest()
    elif op == "baseline_local":
        dest = Path(spec["dest"])
        start = time.perf_counter()
        done = subprocess.run(["sha256sum", str(path)], capture_output=True, check=True)
        subprocess.run(["cp", str(path), str(dest)], check=True)
        result["seconds"] = time.perf_counter() - start
        result["sha256"] = done.stdout.split()[0].decode()
    elif op == "local":
        from archive.digest import expect, hash_file
        from archive.local_store import LocalStore

        store = LocalStore(Path(spec["dest"]), lock_mode="COMPLIANCE")
        store.ensure_ready()
        start = time.perf_counter()
        digests = hash_file(path)
        result["hash_seconds"] = time.perf_counter() - start
        with open(path, "rb") as stream:
            put = store.put(KEY, stream, content_type="video/mp4", check=expect(digests, KEY))
        result["seconds"] = time.perf_counter() - start
        result["sha256"] = put.digests.sha256
    elif op == "baseline_cp_sync":
        dest = Path(spec["dest"])
        start = time.perf_counter()
        subprocess.run(["cp", str(path), str(dest)], check=True)
        subprocess.run(["sync"], check=True)
        result["seconds"] = time.perf_counter() - start
        result["sha256"] = spec["expected"]  # cp hashes nothing
    elif op == "local_once":
        from archive.local_store import LocalStore

        store = LocalStore(Path(spec["dest"]), lock_mode="COMPLIANCE")
        store.ensure_ready()
        start = time.perf_counter()
        with open(path, "rb") as stream:
            staged = store.stage(stream)
        put = store.commit_staged(staged, KEY, content_type="video/mp4")
        result["seconds"] = time.perf_counter() - start
        result["sha256"] = put.digests.sha256
    elif op == "baseline_s3":
        from minio import Minio

        client = Minio(
            spec["endpoint"],
            access_key=spec["access"],
            secret_key=spec["secret"],
            secure=False,
            region="us-east-1",
        )
        start = time.perf_counter()
        written = client.fput_object(spec["bucket"], spec["key"], str(path), part_size=PART)
        result["seconds"] = time.perf_counter() - start
        result["version"] = written.version_id
    elif op == "s3":
        from archive.digest import expect, hash_file
        from archive.s3_store import S3Store

        kwargs = {"part_size": PART}
        if spec.get("parallel"):
            kwargs["parallel"] = spec["parallel"]
        store = S3Store(
            spec["endpoint"],
            spec["bucket"],
            spec["access"],
            spec["secret"],
            secure=False,
            timeout=120.0,
            lock_mode="COMPLIANCE",
            **kwargs,
        )
        start = time.perf_counter()
        digests = hash_file(path)
        result["hash_seconds"] = time.perf_counter() - start
        with open(path, "rb") as stream:
            put = store.put(spec["key"], stream, content_type="video/mp4", check=expect(digests, spec["key"]))
        result["seconds"] = time.perf_counter() - start
        result["version"] = put.version
        result["sha256"] = put.digests.sha256
    else:
        raise SystemExit(f"unknown operation {op!r}")
    result["rss_mb"] = _rss_mb()
    result["children_rss_mb"] = _rss_mb(resource.RUSAGE_CHILDREN)
    result["cpu_seconds"] = _cpu() + _cpu(resource.RUSAGE_CHILDREN)
    return result


def can_drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


class CacheState:
    """Puts the page cache in the same state before each measured operation."""

    def __init__(self) -> None:
        self.drop = can_drop_caches()

    @property
    def name(self) -> str:
        return (
            "cold (synced and dropped before each operation)"
            if self.drop
            else "warm (dropping refused; source read once before each operation)"
        )

    def prepare(self, source: Path) -> None:
        os.sync()
        if self.drop:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("1\n")
        else:
            buffer = bytearray(8 * MIB)
            with open(source, "rb", buffering=0) as f:
                while f.readinto(buffer):
                    pass


def make_source(path: Path, size: int) -> None:
    """Incompressible bytes: AES-256-CTR over zeros under a random key (~2 GB/s)."""
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


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def median(runs: list[dict[str, Any]], field: str = "seconds") -> float:
    return statistics.median(r[field] for r in runs)


def paired(
    repeats: int,
    cache: CacheState,
    source: Path,
    baseline: tuple[str, Callable[[], dict[str, Any]]],
    ours: tuple[str, Callable[[], dict[str, Any]]],
    after: Callable[[str, dict[str, Any]], None],
    rgw: Any | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Run baseline and ours ``repeats`` times each, swapping their order on every repeat."""
    runs: dict[str, list[dict[str, Any]]] = {baseline[0]: [], ours[0]: []}
    for r in range(repeats):
        order = [baseline, ours] if r % 2 == 0 else [ours, baseline]
        for name, make_spec in order:
            cache.prepare(source)
            before = server_cpu(rgw) if rgw is not None else 0.0
            result = run_child("bench.store_bench", make_spec())
            if rgw is not None:
                result["server_cpu_seconds"] = server_cpu(rgw) - before
            after(name, result)
            runs[name].append(result)
            extra = (
                f"  server cpu {result['server_cpu_seconds']:6.2f} s"
                if "server_cpu_seconds" in result
                else ""
            )
            log(
                f"    {name:<15} {result['seconds']:7.2f} s  cpu {result['cpu_seconds']:6.2f} s"
                f"{extra}  rss {result['rss_mb']:6.1f} MB"
            )
    return runs


def pair_rows(
    size_gib: int,
    runs: dict[str, list[dict[str, Any]]],
    baseline: tuple[str, str, str],
    ours: tuple[str, str],
    sha_rate: float,
) -> list[dict[str, Any]]:
    """The table rows of one pair: (run name, operation, RSS field) of the baseline, (run
    name, operation) of ours, whose ratio is against the baseline's median."""
    (base_name, base_label, base_rss), (our_name, our_label) = baseline, ours
    base = runs[base_name]
    return [
        {
            "size": size_gib,
            "operation": base_label,
            "runs": base,
            "seconds": median(base),
            "baseline": None,
            "rss": max(r[base_rss] for r in base),
        },
        {
            "size": size_gib,
            "operation": our_label,
            "runs": runs[our_name],
            "seconds": median(runs[our_name]),
            "baseline": median(base),
            "sha_rate": sha_rate,
            "rss": max(r["rss_mb"] for r in runs[our_name]),
        },
    ]


def bench_size(
    size_gib: int,
    args: argparse.Namespace,
    work: Path,
    cache: CacheState,
    rgw: Any | None,
    bucket: str | None,
) -> list[dict[str, Any]]:
    size = size_gib * GIB
    source = work / f"source-{size_gib}GiB.bin"
    log(f"== {size_gib} GiB: writing the source file")
    make_source(source, size)
    rows: list[dict[str, Any]] = []
    repeats = args.repeats if size_gib < 4 or args.repeats_4 is None else args.repeats_4
    try:
        sha = [run_child("bench.store_bench", {"op": "sha256", "file": str(source)}) for _ in range(repeats)]
        sha_rate = size / median(sha) / MB
        expected = sha[0]["sha256"]
        log(f"  sha256 (warm): {sha_rate:.0f} MB/s")
        rows.append(
            {
                "size": size_gib,
                "operation": "sha256 (hashlib, warm)",
                "runs": sha,
                "seconds": median(sha),
                "baseline": None,
                "rss": max(r["rss_mb"] for r in sha),
            }
        )

        dest = work / "dest"

        def local_after(name: str, result: dict[str, Any]) -> None:
            if result.get("sha256") != expected:
                raise RuntimeError(f"{name} hashed {result.get('sha256')}, not {expected}")
            remove(dest)

        log("  local")
        local = paired(
            repeats,
            cache,
            source,
            ("baseline A", lambda: {"op": "baseline_local", "file": str(source), "dest": str(dest)}),
            ("ours local", lambda: {"op": "local", "file": str(source), "dest": str(dest)}),
            local_after,
        )
        rows += pair_rows(
            size_gib,
            local,
            ("baseline A", "baseline A: sha256sum && cp", "children_rss_mb"),
            ("ours local", "ours, local: hash_file + LocalStore.put"),
            sha_rate,
        )

        log("  local, read once")
        once = paired(
            repeats,
            cache,
            source,
            (
                "baseline C",
                lambda: (
                    {"op": "baseline_cp_sync", "file": str(source), "dest": str(dest)}
                    | {"expected": expected}
                ),
            ),
            ("ours once", lambda: {"op": "local_once", "file": str(source), "dest": str(dest)}),
            local_after,
        )
        rows += pair_rows(
            size_gib,
            once,
            ("baseline C", "baseline C: cp && sync", "children_rss_mb"),
            ("ours once", "ours, local, read once (the ingest's path): LocalStore.stage + commit_staged"),
            sha_rate,
        )

        if rgw is not None:
            from minio import Minio

            access, secret = rgw.users["admin"]
            admin = Minio(
                rgw.endpoint, access_key=access, secret_key=secret, secure=False, region="us-east-1"
            )

            def s3_spec(op: str) -> dict[str, Any]:
                spec = {
                    "op": op,
                    "file": str(source),
                    "endpoint": rgw.endpoint,
                    "access": access,
                    "secret": secret,
                    "bucket": bucket,
                    "key": f"{KEY}.{uuid.uuid4().hex[:8]}",
                }
                if op == "s3" and args.parallel:
                    spec["parallel"] = args.parallel
                return spec

            def s3_after(name: str, result: dict[str, Any]) -> None:
                if "sha256" in result and result["sha256"] != expected:
                    raise RuntimeError(f"{name} sent {result['sha256']}, not {expected}")
                free_space(rgw, admin, bucket)

            log("  s3")
            s3 = paired(
                repeats,
                cache,
                source,
                ("baseline B", lambda: s3_spec("baseline_s3")),
                ("ours S3", lambda: s3_spec("s3")),
                s3_after,
                rgw,
            )
            rows += pair_rows(
                size_gib,
                s3,
                ("baseline B", "baseline B: minio fput_object", "rss_mb"),
                ("ours S3", "ours, S3: hash_file + S3Store.put"),
                sha_rate,
            )
    finally:
        remove(source)
        remove(work / "dest")
    return rows


def free_space(rgw: Any, admin: Any, bucket: str) -> None:
    """Delete every version (none is retained) and let the gateway free their space now:
    RGW otherwise keeps a deleted object's data for hours before its garbage collector runs."""
    for obj in admin.list_objects(bucket, recursive=True, include_version=True):
        admin.remove_object(bucket, obj.object_name, version_id=obj.version_id)
    subprocess.run(
        ["radosgw-admin", "--conf", str(rgw.conf), "gc", "process", "--include-all"],
        capture_output=True,
        timeout=600,
        check=True,
    )


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| size | operation | median s | MB/s | ratio vs baseline | of SHA-256 rate | "
        "CPU s (client / server) | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        size = row["size"] * GIB
        rate = size / row["seconds"] / MB
        ratio = f"{row['baseline'] / row['seconds']:.2f}×" if row.get("baseline") else ""
        share = f"{rate / row['sha_rate']:.0%}" if row.get("sha_rate") else ""
        cpu = f"{median(row['runs'], 'cpu_seconds'):.1f}"
        if all("server_cpu_seconds" in r for r in row["runs"]):
            cpu += f" / {median(row['runs'], 'server_cpu_seconds'):.1f}"
        lines.append(
            f"| {row['size']} GiB | {row['operation']} | {row['seconds']:.2f} | "
            f"{rate:.0f} | {ratio} | {share} | {cpu} | {row['rss']:.0f} |"
        )
    return "\n".join(lines)


def default_dir() -> Path:
    for candidate in (Path("/var/tmp"), ROOT.parent):
        if candidate.is_dir() and os.access(candidate, os.W_OK):
            return candidate
    return ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.store_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="1,4", help="file sizes in GiB (default 1,4)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--repeats-4", type=int, default=None, help="repeats for sizes of 4 GiB and more (default: --repeats)"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where the files go; on the real disk, not tmpfs (default /var/tmp)",
    )
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (Ceph RGW) rows")
    parser.add_argument(
        "--parallel",
        type=int,
        default=None,
        help="S3Store parts in flight (default: the store's own default)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every run here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    base = (args.dir or default_dir()).resolve()
    base.mkdir(parents=True, exist_ok=True)
    fs = subprocess.run(["df", "--output=fstype", str(base)], capture_output=True, text=True)
    fstype = fs.stdout.split()[-1] if fs.returncode == 0 else "?"
    if fstype == "tmpfs":
        log(f"warning: {base} is on tmpfs: the local figures will not reflect a disk")
    work = base / f"store-bench-{os.getpid()}"
    work.mkdir()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started with SIGINT ignored
    rgw = None
    began = time.monotonic()
    try:
        cache = CacheState()
        log(f"files under {work} ({fstype}); page cache: {cache.name}")
        bucket = None
        if not args.no_s3:
            from archive.s3_store import S3Store
            from tests.servers.rgw import start_rgw

            need = max(sizes) * GIB * 2 + 8 * GIB
            log(f"starting Ceph RGW (bluestore, sparse {need / GIB:.0f} GiB) under {work / 'rgw'}")
            rgw = start_rgw(work / "rgw", objectstore="bluestore", bluestore_bytes=need)
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            access, secret = rgw.users["admin"]
            S3Store(rgw.endpoint, bucket, access, secret, secure=False, lock_mode="COMPLIANCE").ensure_ready()
        rows: list[dict[str, Any]] = []
        for size in sizes:
            rows.extend(bench_size(size, args, work, cache, rgw, bucket))
        if args.json:
            args.json.write_text(json.dumps({"cache": cache.name, "rows": rows}, indent=1))
        print(f"\npage cache: {cache.name}; {time.monotonic() - began:.0f} s in all\n")
        print(table(rows))
    except KeyboardInterrupt:
        log("interrupted: stopping the gateway and removing the files")
        return 130
    finally:
        if rgw is not None:
            rgw.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        print(json.dumps(_child(json.loads(sys.argv[2]))))
        sys.exit(0)
    sys.exit(main())
