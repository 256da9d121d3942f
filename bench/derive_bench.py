"""One-file targets: a long 1080p H.264 recording archived with all its derivatives, side by
side with the naive script, in one run.

Measured, each repeat alternating ours and the baseline, page cache synced and dropped before
each (when the kernel allows it; the output says which):

- naive: ``sha256sum F && cp F DEST && ffmpeg -i F -c copy -movflags +faststart PROXY && sync``;
- ours: ``evidence ingest scan`` of an inbox holding F (a hard link; ``after_archive = "keep"``)
  into a fresh data folder and catalog: hash, store with read-back, manifest, catalog, poster
  and contact sheet, and no proxy (the original plays in browsers); wall time to the scan's
  exit, and the derivatives' bytes against the original's;
- pictures: ``probe`` + ``make_poster`` + ``make_contact_sheet`` of F alone (target < 1 s);
- sheet scaling: ``make_contact_sheet`` of a 4-minute and of a 2-hour file of the same kind
  (target: the 2-hour one at most twice the 4-minute one).

The sources (a 30-second 1080p clip at ``--mbps`` repeated with ``-c copy`` to 4 minutes,
moov at the end; a 320x240 clip repeated to 4 minutes and to 2 hours) are made once in
``--dir`` and reused.

    python -m bench.derive_bench [--repeats 3] [--mbps 40] [--dir /var/tmp/evidence-derive-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, log, wait_for_quiet
from bench.ingest_bench import concat_copy

DEFAULT_DIR = Path("/var/tmp/evidence-derive-bench")
NAME = "A123456@202011050800000000.mp4"


def _drop_caches() -> bool:
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


def sources(folder: Path, mbps: int) -> dict[str, Path]:
    from tests import synthetic

    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / f"clip-1080p-{mbps}M.mp4"
    if not clip.exists():
        log(f"  making a 30 s 1080p clip at {mbps} Mbit/s")
        synthetic.make_video(
            clip, seconds=30, size="1920x1080", rate=30, bitrate=f"{mbps}M", faststart=False, keyint=60
        )
    small = folder / "clip-240p.mp4"
    if not small.exists():
        synthetic.make_video(small, seconds=60, size="320x240", rate=15, bitrate="300k", keyint=30)
    size = clip.stat().st_size
    return {
        "long": concat_copy(clip, folder / f"4min-1080p-{mbps}M.mp4", min_bytes=size * 8),
        "short_small": concat_copy(small, folder / "4min-240p.mp4", min_bytes=small.stat().st_size * 4),
        "long_small": concat_copy(small, folder / "2h-240p.mp4", min_bytes=small.stat().st_size * 120),
    }


def naive(src: Path, work: Path) -> float:
    dest = work / "naive"
    dest.mkdir()
    script = (
        f"sha256sum '{src}' >/dev/null && cp '{src}' '{dest}/original.mp4' && "
        f"ffmpeg -hide_banner -nostdin -loglevel error -y -i '{src}' -c copy -movflags +faststart "
        f"'{dest}/proxy.mp4' && sync"
    )
    started = time.monotonic()
    subprocess.run(["bash", "-c", script], check=True)
    took = time.monotonic() - started
    shutil.rmtree(dest)
    return took


def ours(src: Path, work: Path) -> tuple[float, int, int]:
    """(seconds, original bytes, derivative bytes)."""
    base = work / "ours"
    inbox = base / "inbox"
    inbox.mkdir(parents=True)
    os.link(src, inbox / NAME)
    config = base / "evidence.toml"
    config.write_text(
        f'data_dir = "{base / "data"}"\nunit = "KZCG"\n'
        f'[catalog]\ndatabase_url = "sqlite:///{base / "catalog.db"}"\n'
        '[ingest]\nafter_archive = "keep"\nstable_seconds = 0.5\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")} | {
        "EVIDENCE_CONFIG": str(config)
    }
    cli = [sys.executable, "-m", "config.cli"]
    subprocess.run([*cli, "init"], env=env, cwd=ROOT, check=True, capture_output=True)
    old = time.time() - 60
    os.utime(inbox / NAME, (old, old))
    _drop_caches()
    started = time.monotonic()
    run = subprocess.run(
        [*cli, "ingest", "scan", "--station", "ST01", str(inbox), "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    took = time.monotonic() - started
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-3000:])
    listed = subprocess.run(
        [*cli, "recordings", "list", "--json"], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    (rec,) = json.loads(listed.stdout)
    shown = subprocess.run(
        [*cli, "recordings", "show", rec["archive_no"], "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    derived = sum(d["size"] or 0 for d in json.loads(shown.stdout)["derivatives"])
    shutil.rmtree(base)
    return took, rec["size"], derived


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pictures(src: Path, work: Path) -> tuple[float, float]:
    """(wall, CPU seconds of the ffprobe and ffmpeg children): probe, then poster and sheet
    as the ingest makes them (one ffmpeg run)."""
    from ingest.derivatives import make_poster_and_sheet
    from ingest.probe import probe

    out = work / "pictures"
    cpu, started = _children_cpu(), time.monotonic()
    info = probe(src)
    made, failures = make_poster_and_sheet(src, info, out)
    took = time.monotonic() - started
    assert not failures and len(made) == 2, failures
    shutil.rmtree(out)
    return took, _children_cpu() - cpu


def sheet(src: Path, work: Path) -> tuple[float, float]:
    from ingest.derivatives import make_contact_sheet
    from ingest.probe import probe

    info = probe(src)
    out = work / "sheet"
    cpu, started = _children_cpu(), time.monotonic()
    make_contact_sheet(src, info, out)
    took = time.monotonic() - started
    shutil.rmtree(out)
    return took, _children_cpu() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mbps", type=int, default=40)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--no-wait", action="store_true", help="Measure at once, whatever the load.")
    args = parser.parse_args(argv)
    src = sources(args.dir, args.mbps)
    long_size = src["long"].stat().st_size
    dropping = _drop_caches()
    log(
        f"source {src['long'].name}: {long_size / 1e6:.0f} MB; page cache {'dropped' if dropping else 'warm'}"
    )
    load = wait_for_quiet("the one-file targets", wait=not args.no_wait)
    times: dict[str, list[float]] = {
        "naive": [],
        "ours": [],
        "pictures": [],
        "sheet_4min": [],
        "sheet_2h": [],
    }
    cpu: dict[str, list[float]] = {"pictures": [], "sheet_4min": [], "sheet_2h": []}
    shares: list[float] = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="run-") as tmp:
        work = Path(tmp)
        for n in range(args.repeats):
            order = ("naive", "ours") if n % 2 == 0 else ("ours", "naive")
            for which in order:
                _drop_caches()
                if which == "naive":
                    times["naive"].append(naive(src["long"], work))
                else:
                    took, original, derived = ours(src["long"], work)
                    times["ours"].append(took)
                    shares.append(derived / original)
            for key, run, source in (
                ("pictures", pictures, src["long"]),
                ("sheet_4min", sheet, src["short_small"]),
                ("sheet_2h", sheet, src["long_small"]),
            ):
                _drop_caches()
                wall, used = run(source, work)
                times[key].append(wall)
                cpu[key].append(used)
            log(f"  repeat {n + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    result = {
        "source_bytes": long_size,
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "cache": "dropped" if dropping else "warm",
        "medians_s": med,
        "medians_cpu_s": med_cpu,
        "ours_vs_naive": med["ours"] / med["naive"],
        "derivative_share": statistics.median(shares),
        "sheet_2h_vs_4min": med["sheet_2h"] / med["sheet_4min"],
        "repeats": args.repeats,
    }
    rows = [
        (
            "ingest, all derivatives (ours / naive)",
            f"{med['ours']:.2f} / {med['naive']:.2f} s",
            "<= 0.6",
            f"{result['ours_vs_naive']:.2f}",
        ),
        ("derivatives / original bytes", "", "<= 3 %", f"{100 * result['derivative_share']:.3f} %"),
        ("probe + poster + sheet", f"{med['pictures']:.2f} s", "< 1 s", f"{med['pictures']:.2f} s"),
        (
            "sheet: 2 h / 4 min",
            f"{med['sheet_2h']:.2f} / {med['sheet_4min']:.2f} s",
            "<= 2",
            f"{result['sheet_2h_vs_4min']:.2f}",
        ),
    ]
    print("| measure | medians | target | result |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nload {load:.1f} before, {result['load_after']:.1f} after; {args.repeats} repeats")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
