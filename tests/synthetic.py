"""Small synthetic recorder files made with the real ffmpeg.

Used by the tests (and by ``make demo``) to stand in for what body-worn cameras leave on a
docking station: short H.264/H.265 videos in MP4/MOV containers, WAV audio notes and JPEG
photos, named the way real recorders name them.  Every file is a few tens of KB and takes a
fraction of a second to make.  Output is deterministic: the same arguments give the same bytes
(for a given ffmpeg build).

Run as a module to fill a folder with a station inbox::

    python -m tests.synthetic OUTDIR [--count N] [--start 2020-11-05T08:50:56]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Literal

__all__ = [
    "DEFAULT_START",
    "LOCAL_ZONE",
    "make_audio",
    "make_inbox",
    "make_photo",
    "make_video",
    "require_ffmpeg",
    "truncate",
]


def _local_zone() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Asia/Shanghai")
    except Exception:  # no tz database on this machine
        # China has kept UTC+8 without daylight saving since 1991.
        return timezone(timedelta(hours=8), "Asia/Shanghai")


LOCAL_ZONE: tzinfo = _local_zone()
"""The zone recorder clocks run in (names carry local time without an offset)."""

DEFAULT_START: datetime = datetime(2020, 11, 5, 8, 50, 56, tzinfo=LOCAL_ZONE)
"""First recording time of :func:`make_inbox` when none is given."""

# Serial numbers and the officer used in generated names.
AT_SERIAL = "A123456"  # 7 characters, "{serial}@{time}{seq}.mp4" recorders
UNDERSCORE_SERIAL = "TA00716"  # "{serial}_{officer}_{time}.MOV" recorders
OFFICER = "JX0227"

# Spacing between consecutive files of an inbox (longer than any clip).
_STEP = timedelta(minutes=7, seconds=13)


class FFmpegError(RuntimeError):
    """ffmpeg is missing or failed to make a file."""


def require_ffmpeg() -> tuple[str, str]:
    """Return the paths of ``ffmpeg`` and ``ffprobe``, or raise :class:`FFmpegError`."""
    ffmpeg = shutil.which("ffmpeg")
    ffprobe = shutil.which("ffprobe")
    if not ffmpeg or not ffprobe:
        missing = " and ".join(n for n, p in (("ffmpeg", ffmpeg), ("ffprobe", ffprobe)) if not p)
        raise FFmpegError(
            f"{missing} not found on PATH; install it (make deps, or "
            "apt-get install --no-install-recommends ffmpeg)"
        )
    return ffmpeg, ffprobe


def _run_ffmpeg(args: list[str], out: Path) -> Path:
    ffmpeg, _ = require_ffmpeg()
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args, str(out)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise FFmpegError(
            f"ffmpeg failed making {out} (exit {proc.returncode}): {proc.stderr.strip()}"
        )
    return out


def _iso_utc(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, as ffmpeg writes ``creation_time``; naive means UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _container_format(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".mov":
        return ["-f", "mov"]
    if suffix in (".mp4", ".m4v"):
        return ["-f", "mp4"]
    return []


def make_video(
    path: str | Path,
    *,
    seconds: float = 2.0,
    size: str = "320x240",
    rate: int = 15,
    codec: Literal["h264", "hevc"] = "h264",
    faststart: bool = True,
    audio: bool = True,
    creation_time: datetime | None = None,
    text: str | None = None,
    tone: float = 440.0,
) -> Path:
    """Make a short test-pattern video (``testsrc2``) with a sine-tone AAC track.

    The container follows the file's suffix (``.mp4`` gives MP4, ``.mov``/``.MOV`` gives a
    QuickTime MOV). ``codec`` picks libx264 or libx265 (tagged ``hvc1``), preset ultrafast and
    a high CRF so the file stays small.

    - ``faststart``: put the ``moov`` box before the media data (``-movflags +faststart``);
      without it ``moov`` is at the end, as many recorders write it.
    - ``creation_time``: written as the container's ``creation_time`` tag in ISO UTC; an
      aware datetime is converted, a naive one is taken as UTC.
    - ``text``: stored as the container's ``comment`` tag (not drawn on the picture: fonts
      differ between machines); it also makes otherwise equal clips differ in content.
    - ``tone``: frequency of the audio sine in Hz, another way to make clips differ.

    Returns the path of the file made.
    """
    out = Path(path)
    if codec == "h264":
        vcodec = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "40"]
    elif codec == "hevc":
        vcodec = [
            "-c:v", "libx265", "-preset", "ultrafast", "-crf", "36",
            "-x265-params", "log-level=error", "-tag:v", "hvc1",
        ]  # fmt: skip
    else:
        raise ValueError(f"codec must be 'h264' or 'hevc', not {codec!r}")
    duration = f"{seconds:g}"
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={duration}"]
    maps = ["-map", "0:v"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency={tone:g}:sample_rate=16000:duration={duration}"]
        maps += ["-map", "1:a"]
    args += maps + vcodec + ["-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "24k", "-ac", "1"]
    if faststart:
        args += ["-movflags", "+faststart"]
    if creation_time is not None:
        args += ["-metadata", f"creation_time={_iso_utc(creation_time)}"]
    if text is not None:
        args += ["-metadata", f"comment={text}"]
    args += _container_format(out)
    return _run_ffmpeg(args, out)


def make_audio(path: str | Path, *, seconds: float = 2.0, tone: float = 440.0) -> Path:
    """Make a WAV file: mono 16 kHz 16-bit PCM sine tone of ``seconds``. Returns its path."""
    out = Path(path)
    args = [
        "-f", "lavfi", "-i", f"sine=frequency={tone:g}:sample_rate=16000:duration={seconds:g}",
        "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", "-bitexact", "-f", "wav",
    ]  # fmt: skip
    return _run_ffmpeg(args, out)


def make_photo(
    path: str | Path,
    *,
    size: tuple[int, int] = (320, 240),
    taken: datetime | None = None,
) -> Path:
    """Make a JPEG photo: one ``testsrc2`` frame of ``size`` (width, height).

    No EXIF is written; when ``taken`` is given the file's modification time is set to it
    (naive means UTC), which is what a station sees for cameras that keep no EXIF.
    Returns its path.
    """
    out = Path(path)
    width, height = size
    args = [
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=1",
        "-frames:v", "1", "-q:v", "5", "-f", "image2", "-update", "1",
    ]  # fmt: skip
    _run_ffmpeg(args, out)
    if taken is not None:
        if taken.tzinfo is None:
            taken = taken.replace(tzinfo=timezone.utc)
        stamp = taken.timestamp()
        os.utime(out, (stamp, stamp))
    return out


def truncate(path: str | Path, keep_fraction: float = 0.6, *, dest: str | Path | None = None) -> Path:
    """Cut off the tail of a file, as an interrupted copy or a recorder losing power would.

    Keeps the first ``keep_fraction`` (0 <= f < 1) of the bytes. By default the file at
    ``path`` itself is cut (pass a copy when the original is still needed); with ``dest`` the
    shortened bytes are written there and ``path`` is left alone. Returns the path of the
    shortened file.
    """
    if not 0.0 <= keep_fraction < 1.0:
        raise ValueError(f"keep_fraction must be in [0, 1), not {keep_fraction}")
    src = Path(path)
    size = src.stat().st_size
    keep = int(size * keep_fraction)
    if dest is None:
        with open(src, "r+b") as fh:
            fh.truncate(keep)
        return src
    out = Path(dest)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fin, open(out, "wb") as fout:
        fout.write(fin.read(keep))
    return out


def _local(moment: datetime) -> datetime:
    """The recorder's local wall time; a naive datetime is already local."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=LOCAL_ZONE)
    return moment.astimezone(LOCAL_ZONE)


def make_inbox(outdir: str | Path, count: int = 3, start: datetime | None = None) -> list[Path]:
    """Fill ``outdir`` with files shaped like a docking station's inbox.

    ``count`` ordinary videos, alternating between the two recorder naming styles

    - ``{serial}@{yyyymmddHHMMSS}{seq:04d}.mp4``, e.g. ``A123456@202011050850560000.mp4``
    - ``{serial}_{officer}_{yyyymmddHHMMSS}.MOV``, e.g. ``TA00716_JX0227_20201105093621.MOV``
      (a QuickTime container, H.265, ``moov`` at the end of the file)

    followed by one video marked important (``..._{time}_IMP.mp4``), one audio note
    (``..._{time}.WAV``) and one photo (``..._{time}.JPG``). File times start at ``start``
    (default 2020-11-05 08:50:56 Asia/Shanghai; a naive value is read as Asia/Shanghai) and
    step by a few minutes, so each file has its own time; names carry the local time without
    offset and video containers carry the same moment as UTC ``creation_time``. Names and
    contents are deterministic for a given ``start``. Returns the paths in time order.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    base = _local(start if start is not None else DEFAULT_START)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []

    def stamp(i: int) -> tuple[datetime, str]:
        moment = base + _STEP * i
        return moment, moment.strftime("%Y%m%d%H%M%S")

    for i in range(count):
        moment, ts = stamp(i)
        if i % 2 == 0:
            path = out / f"{AT_SERIAL}@{ts}{0:04d}.mp4"
            made.append(make_video(path, creation_time=moment, tone=440.0 + 10 * i))
        else:
            path = out / f"{UNDERSCORE_SERIAL}_{OFFICER}_{ts}.MOV"
            made.append(
                make_video(path, codec="hevc", faststart=False, creation_time=moment, tone=440.0 + 10 * i)
            )
    moment, ts = stamp(count)
    made.append(
        make_video(
            out / f"{UNDERSCORE_SERIAL}_{OFFICER}_{ts}_IMP.mp4",
            creation_time=moment,
            tone=440.0 + 10 * count,
        )
    )
    moment, ts = stamp(count + 1)
    made.append(make_audio(out / f"{UNDERSCORE_SERIAL}_{OFFICER}_{ts}.WAV"))
    moment, ts = stamp(count + 2)
    made.append(make_photo(out / f"{UNDERSCORE_SERIAL}_{OFFICER}_{ts}.JPG", taken=moment))
    return made


def _parse_start(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date-time: {value!r}") from exc


def main(argv: list[str] | None = None) -> int:
    """Command line: make a station inbox in OUTDIR and print each file's path."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.synthetic",
        description="Make synthetic body-worn-camera files (needs ffmpeg).",
    )
    parser.add_argument("outdir", type=Path, help="folder to fill (created if missing)")
    parser.add_argument("--count", type=int, default=3, help="ordinary videos to make (default 3)")
    parser.add_argument(
        "--start",
        type=_parse_start,
        default=None,
        help="first file's time, ISO 8601; without offset read as Asia/Shanghai "
        "(default 2020-11-05T08:50:56)",
    )
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be >= 0")
    try:
        paths = make_inbox(args.outdir, count=args.count, start=args.start)
    except FFmpegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
