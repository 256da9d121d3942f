"""Hashing what the local store holds: one thread reading then hashing, against ``hash_stored``.

Set-up (not timed): one object of incompressible bytes (``--size-gib``, default 1 GiB) is put
into a ``LocalStore`` under ``--dir`` (default /var/tmp: the real disk, not tmpfs), once in the
clear and once encrypted (AES-256-GCM, 1 MiB chunks).

Measured, each run in a fresh child process (wall time, CPU time, peak RSS):

- sequential: what fixity, replay and export did before ``archive.reading.hash_stored``:
  ``for chunk in read_plain(...): sha256.update(chunk)`` in one thread;
- hash_stored: ``archive.reading.hash_stored`` (the hashing in a thread while the next chunk
  is read, and decrypted when the object is encrypted).

Rows: clear object with its pages in the page cache (warm); clear object with its pages dropped
first (cold: ``POSIX_FADV_DONTNEED`` on that file only); encrypted object, warm. With
``--copy``, also the export's pass: read, hash and write into a new file, fsynced, sequential
against ``hash_stored(..., sink=write)``. Both digests must agree. The two ways alternate in
order on each repeat; medians are reported, with the ratio sequential / hash_stored (above 1:
hash_stored is faster). Before each row the run waits (up to 10 minutes) for the 1-minute load
average to fall below 2.0. Each run's line shows its kernel time: on a virtual machine, reading
dropped pages back sometimes costs a second of it per GiB whichever way reads, so cold medians
of few runs are rough.

    python -m bench.reading_bench [--size-gib 1] [--repeats 3] [--dir /var/tmp] [--copy]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import log, run_child, wait_for_quiet
from bench.fixity_bench import drop_pages, make_source, warm_pages

MIB = 1 << 20
GIB = 1 << 30
KEYS = {
    "clear": "originals/2026/11/27/BENCH-CLEAR.mp4",
    "encrypted": "originals/2026/11/27/BENCH-ENCRYPTED.mp4",
}


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    import hashlib

    from archive.encryption import Keyring, kek_id
    from archive.key_wraps import wrap_key
    from archive.local_store import LocalStore
    from archive.reading import hash_stored, read_plain

    store = LocalStore(Path(spec["root"]), lock_mode="COMPLIANCE")
    encrypted = spec["encrypted"]
    key = KEYS["encrypted" if encrypted else "clear"]
    raw = bytes.fromhex(spec["kek"])
    # Format v2: the data key's wrap is its own object beside the recording.
    kek = (
        Keyring.of(raw, wraps=lambda oid: [b"".join(store.read(wrap_key(oid, kek_id(raw))))])
        if encrypted
        else None
    )
    out = open(spec["out"], "xb", buffering=0) if spec.get("out") else None

    def write(chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[out.write(view) :]  # type: ignore[union-attr]

    start = time.perf_counter()
    if spec["way"] == "sequential":
        digest, size = hashlib.sha256(), 0
        for chunk in read_plain(store, key, None, encrypted=encrypted, kek=kek):
            digest.update(chunk)
            size += len(chunk)
            if out is not None:
                write(chunk)
        sha256 = digest.hexdigest()
    else:
        got = hash_stored(
            store, key, None, encrypted=encrypted, kek=kek, sink=write if out is not None else None
        )
        sha256, size = got.sha256, got.size
    if out is not None:
        os.fsync(out.fileno())
        out.close()
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    return {
        "op": spec["way"],
        "seconds": seconds,
        "bytes": size,
        "sha256": sha256,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "sys_seconds": usage.ru_stime,
        "rss_mb": hwm,
    }


def _prepare(work: Path, size: int) -> tuple[Path, str, dict[str, Path]]:
    from archive import encryption
    from archive.digest import hash_file
    from archive.files import put_file
    from archive.key_wraps import wrap_key
    from archive.local_store import LocalStore

    root = work / "store"
    store = LocalStore(root, lock_mode="COMPLIANCE")
    store.ensure_ready()
    source = work / "source.bin"
    make_source(source, size)
    kek = encryption.generate_kek()
    ring = encryption.Keyring(
        {encryption.kek_id(kek): kek},
        encryption.kek_id(kek),
        save=lambda oid, kid, wrap: None if store.put(wrap_key(oid, kid), io.BytesIO(wrap)) else None,
    )
    digests = hash_file(source)
    encrypt: tuple[encryption.Keyring, str] | None
    for name, encrypt in (("clear", None), ("encrypted", (ring, "AES-256-GCM"))):
        put_file(
            store,
            KEYS[name],
            source,
            digests,
            content_type="video/mp4",
            metadata={},
            retain_until=None,
            label=name,
            encrypt=encrypt,
        )
    source.unlink()
    return root, kek.hex(), {name: root / "objects" / key for name, key in KEYS.items()}


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "_child":
        print(json.dumps(_child(json.loads(sys.argv[2]))))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m bench.reading_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size-gib", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--dir", type=Path, default=Path("/var/tmp"), help="where the store goes; on the real disk, not tmpfs"
    )
    parser.add_argument("--copy", action="store_true", help="also the export's read, hash and write")
    parser.add_argument("--no-wait", action="store_true", help="measure at once whatever the load")
    args = parser.parse_args(argv)

    work = args.dir.resolve() / f"reading-bench-{os.getpid()}"
    work.mkdir(parents=True)
    try:
        size = int(args.size_gib * GIB)
        log(f"putting {size / GIB:.2f} GiB in the clear and encrypted into {work}")
        root, kek, files = _prepare(work, size)
        rows = [
            ("clear, warm", "clear", warm_pages, False),
            ("clear, cold", "clear", drop_pages, False),
            ("encrypted, warm", "encrypted", warm_pages, False),
        ]
        if args.copy:
            rows.append(("clear, warm, + write", "clear", warm_pages, True))
        results = []
        for label, name, pages, copy in rows:
            load = wait_for_quiet(label, not args.no_wait)
            runs: dict[str, list[dict[str, Any]]] = {"sequential": [], "hash_stored": []}
            for r in range(args.repeats):
                for way in ("sequential", "hash_stored") if r % 2 == 0 else ("hash_stored", "sequential"):
                    out = work / f"copy-{way}-{r}.bin" if copy else None
                    pages([files[name]])
                    result = run_child(
                        "bench.reading_bench",
                        {
                            "way": way,
                            "root": str(root),
                            "encrypted": name == "encrypted",
                            "kek": kek,
                            "out": str(out) if out else None,
                        },
                    )
                    if out is not None:
                        out.unlink()
                    runs[way].append(result)
                    log(
                        f"    {label:<22} {way:<11} {result['seconds']:7.3f} s  "
                        f"{result['bytes'] / result['seconds'] / MIB:7.0f} MiB/s  "
                        f"cpu {result['cpu_seconds']:5.2f} s (sys {result['sys_seconds']:4.2f})  "
                        f"rss {result['rss_mb']:5.1f} MB"
                    )
            if len({r["sha256"] for way in runs.values() for r in way}) != 1:
                raise SystemExit(f"{label}: the two ways disagree on the digest")
            seq = statistics.median(r["seconds"] for r in runs["sequential"])
            new = statistics.median(r["seconds"] for r in runs["hash_stored"])
            results.append((label, seq, new, size, load))
        print(
            f"\n{size / GIB:.2f} GiB object, local store, medians of {args.repeats} runs "
            f"(CPUs: {os.cpu_count()})"
        )
        print(
            "| object | sequential (s) | hash_stored (s) | sequential MiB/s | hash_stored MiB/s "
            "| ratio | load |"
        )
        print("|---|---|---|---|---|---|---|")
        for label, seq, new, n, load in results:
            print(
                f"| {label} | {seq:.3f} | {new:.3f} | {n / seq / MIB:.0f} | {n / new / MIB:.0f} "
                f"| {seq / new:.2f}× | {load:.2f} |"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
