"""Small synthetic recorder files made with the real ffmpeg.

Used by the tests (and by ``make demo``) to stand in for what body-worn cameras leave on a
docking station: short H.264/H.265 videos in MP4/MOV containers, WAV audio notes and JPEG
photos, named the way real recorders name them.  By default every file is a few tens of KB and
takes a fraction of a second to make; options make footage closer to a real recorder's (1080p,
a burned-in clock and device id, a rotation matrix, a GPS ``location`` tag, EXIF in photos).
Output is deterministic: the same arguments give the same bytes (for a given ffmpeg build).

Run as a module to fill a folder with a station inbox::

    python -m tests.synthetic OUTDIR [--count N] [--start 2020-11-05T08:50:56]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_GPS",
    "DEFAULT_START",
    "LOCAL_ZONE",
    "make_audio",
    "make_inbox",
    "make_photo",
    "make_video",
    "make_zero_byte",
    "require_ffmpeg",
    "truncate",
]


def _local_zone() -> tzinfo:
    try:
        return ZoneInfo("Asia/Shanghai")
    except ZoneInfoNotFoundError:  # no tz database on this machine
        # China has kept UTC+8 without daylight saving since 1991.
        return timezone(timedelta(hours=8), "Asia/Shanghai")


LOCAL_ZONE: tzinfo = _local_zone()
"""The zone recorder clocks run in (names carry local time without an offset)."""

DEFAULT_START: datetime = datetime(2020, 11, 5, 8, 50, 56, tzinfo=LOCAL_ZONE)
"""First recording time of :func:`make_inbox` when none is given."""

DEFAULT_GPS: tuple[float, float] = (31.2304, 121.4737)
"""(latitude, longitude) written into photo EXIF when none is given (Shanghai)."""

# Generating one test file never takes long; a hung ffmpeg must not hang the suite.
_FFMPEG_TIMEOUT = 120.0

# Characters a burned-in label may hold: drawtext gives ``:``, ``'``, ``%`` and ``\``
# meanings of its own, and recorder overlays never contain them.
_SAFE_LABEL = re.compile(r"[\w @#./-]*")

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
    try:
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=_FFMPEG_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise FFmpegError(f"ffmpeg timed out making {out}: {exc.stderr!r}") from None
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise FFmpegError(f"ffmpeg failed making {out} (exit {proc.returncode}): {proc.stderr.strip()}")
    return out


def _iso_utc(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, as ffmpeg writes ``creation_time``; naive means UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    burn_in: bool = False,
    rotate: int = 0,
    location: str | None = None,
    audio_codec: Literal["aac", "pcm"] = "aac",
    bitrate: str | None = None,
    keyint: int | None = None,
) -> Path:
    """Make a short test-pattern video (``testsrc2``) with a sine-tone AAC track.

    The container follows the file's suffix (``.mp4`` gives MP4, ``.mov``/``.MOV`` gives a
    QuickTime MOV). ``codec`` picks libx264 or libx265 (tagged ``hvc1``), preset ultrafast and
    a high CRF so the file stays small.

    - ``size``: ``"WIDTHxHEIGHT"`` as coded, e.g. ``"1920x1080"`` or ``"1080x1920"`` for
      portrait; a 2 s 1080p clip takes about half a second.
    - ``faststart``: put the ``moov`` box before the media data (``-movflags +faststart``);
      without it ``moov`` is at the end, as many recorders write it.
    - ``creation_time``: written as the container's ``creation_time`` tag in ISO UTC; an
      aware datetime is converted, a naive one is taken as UTC.
    - ``text``: stored as the container's ``comment`` tag; it also makes otherwise equal clips
      differ in content.
    - ``burn_in``: draw a recorder overlay on the picture as body-worn cameras do (GA/T 947):
      ``text`` (the device id, letters, digits and ``@#./-_`` only) and a running clock in
      the recorder's local wall time, starting at ``creation_time`` (default
      :data:`DEFAULT_START`). Uses fontconfig's default monospace font, which comes with
      ffmpeg's dependencies (fonts-dejavu-core or another).
    - ``rotate``: clockwise degrees (90, 180, 270) a player must turn the picture to show it
      upright, as phones and some recorders store portrait footage; written as a display
      matrix by a stream-copy pass (ffmpeg 5.1 honours its ``rotate`` tag only when copying).
    - ``location``: an ISO 6709 point for the container's ``location`` tag, e.g.
      ``"+31.2304+121.4737/"``.
    - ``audio_codec``: ``"pcm"`` stores 16-bit PCM instead of AAC (as some cameras do in MOV;
      MP4 does not allow it).
    - ``bitrate``: an average video bit rate such as ``"6M"`` instead of the high CRF, with
      film-grain noise so the encoder has something to spend it on (benchmarks).
    - ``keyint``: a keyframe every ``keyint`` frames (recorders use about one a second); by
      default the encoder's (250 frames), so a short clip has a single keyframe.
    - ``tone``: frequency of the audio sine in Hz, another way to make clips differ.

    Returns the path of the file made.
    """
    out = Path(path)
    if rotate % 90 or not 0 <= rotate < 360:
        raise ValueError(f"rotate must be 0, 90, 180 or 270, not {rotate!r}")
    if burn_in and not _SAFE_LABEL.fullmatch(text or ""):
        raise ValueError(f"burned-in text may hold letters, digits and ' @#./-_' only: {text!r}")
    if codec == "h264":
        vcodec = ["-c:v", "libx264", "-preset", "ultrafast"]
        quality = ["-crf", "40"]
    elif codec == "hevc":
        vcodec = [
            "-c:v", "libx265", "-preset", "ultrafast",
            "-x265-params", "log-level=error", "-tag:v", "hvc1",
        ]  # fmt: skip
        quality = ["-crf", "36"]
    else:
        raise ValueError(f"codec must be 'h264' or 'hevc', not {codec!r}")
    if bitrate is not None:
        quality = ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate]
    if keyint is not None:
        quality += ["-g", str(keyint), "-keyint_min", str(keyint)]
    duration = f"{seconds:g}"
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={duration}"]
    maps = ["-map", "0:v"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency={tone:g}:sample_rate=16000:duration={duration}"]
        maps += ["-map", "1:a"]
    filters = []
    if bitrate is not None:
        filters.append("noise=alls=12:allf=t")
    if burn_in:
        filters.append(_overlay_filter(text or "", creation_time))
    if filters:
        args += ["-vf", ",".join(filters)]
    args += maps + vcodec + quality + ["-pix_fmt", "yuv420p"]
    if audio:
        if audio_codec == "pcm":
            args += ["-c:a", "pcm_s16le", "-ac", "1"]
        else:
            args += ["-c:a", "aac", "-b:a", "24k", "-ac", "1"]
    if faststart:
        args += ["-movflags", "+faststart"]
    if creation_time is not None:
        args += ["-metadata", f"creation_time={_iso_utc(creation_time)}"]
    if text is not None:
        args += ["-metadata", f"comment={text}"]
    if location is not None:
        args += ["-metadata", f"location={location}"]
    args += _container_format(out)
    if not rotate:
        return _run_ffmpeg(args, out)
    # Encode beside the target, then copy the streams in with the display matrix.
    plain = out.with_name(f".{out.stem}.unrotated{out.suffix}")
    try:
        _run_ffmpeg(args, plain)
        copy = [
            "-i",
            str(plain),
            "-map",
            "0",
            "-c",
            "copy",
            "-map_metadata",
            "0",
            # ffmpeg 5.1 writes its ``rotate`` tag as a counter-clockwise angle
            "-metadata:s:v:0",
            f"rotate={(360 - rotate) % 360}",
        ]
        if faststart:
            copy += ["-movflags", "+faststart"]
        return _run_ffmpeg(copy + _container_format(out), out)
    finally:
        plain.unlink(missing_ok=True)


def _overlay_filter(label: str, creation_time: datetime | None) -> str:
    """drawtext for a recorder overlay: the label and a clock in local wall time.

    drawtext's ``pts:gmtime`` shows a running clock from an epoch offset; giving it the local
    wall time as if it were UTC makes it print local time without any zone setting.
    """
    start = _local(creation_time if creation_time is not None else DEFAULT_START)
    wall = start.replace(tzinfo=UTC).timestamp()
    clock = rf"%{{pts\:gmtime\:{wall:.0f}\:%Y-%m-%d %H\\\:%M\\\:%S}}"
    shown = f"{label}  {clock}" if label else clock
    return (
        "drawtext=font=monospace:fontsize=h/18:fontcolor=white:box=1:boxcolor=black@0.6"
        f":boxborderw=4:x=w/40:y=h/30:text='{shown}'"
    )


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
    exif: bool = False,
    gps: tuple[float, float] | None = DEFAULT_GPS,
    offset: bool = False,
    orientation: int = 1,
) -> Path:
    """Make a JPEG photo: one ``testsrc2`` frame of ``size`` (width, height).

    Without ``exif`` no EXIF is written; when ``taken`` is given the file's modification time
    is set to it (naive means UTC), which is what a station sees for cameras that keep no EXIF.

    With ``exif`` (needs Pillow) the frame is re-saved with the EXIF a recorder writes:
    ``DateTimeOriginal`` in the camera's local wall time (``taken``, default
    :data:`DEFAULT_START`, shown in :data:`LOCAL_ZONE`; naive means UTC, as above), Make
    and Model, GPS latitude/longitude of ``gps`` unless it is None, and an ``Orientation``
    (1 upright, 6 turn 90 degrees clockwise to show, 3, 8). ``offset`` adds
    ``OffsetTimeOriginal`` (``+08:00``), which older cameras do not write.
    Returns its path.
    """
    out = Path(path)
    width, height = size
    args = [
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=1",
        "-frames:v", "1", "-q:v", "5", "-f", "image2", "-update", "1",
    ]  # fmt: skip
    _run_ffmpeg(args, out)
    if exif:
        _add_exif(out, taken, gps=gps, offset=offset, orientation=orientation)
    if taken is not None:
        if taken.tzinfo is None:
            taken = taken.replace(tzinfo=UTC)
        stamp = taken.timestamp()
        os.utime(out, (stamp, stamp))
    return out


def _add_exif(
    path: Path,
    taken: datetime | None,
    *,
    gps: tuple[float, float] | None,
    offset: bool,
    orientation: int,
) -> None:
    """Re-save a JPEG with camera EXIF, built with Pillow's ``Image.Exif`` (no piexif)."""
    from PIL import Image

    moment = taken if taken is not None else DEFAULT_START
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(LOCAL_ZONE)
    tags = Image.Exif()
    tags[0x010F] = "SyntheticCam"  # Make
    tags[0x0110] = f"BWC-{AT_SERIAL}"  # Model
    tags[0x0112] = orientation  # Orientation
    exif_ifd = tags.get_ifd(0x8769)
    exif_ifd[0x9003] = local.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
    if offset:
        delta = local.utcoffset() or timedelta(0)
        minutes = int(delta.total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        exif_ifd[0x9011] = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    if gps is not None:
        lat, lon = gps
        gps_ifd = tags.get_ifd(0x8825)
        gps_ifd[0] = b"\x02\x02\x00\x00"  # GPSVersionID 2.2
        gps_ifd[1] = "N" if lat >= 0 else "S"
        gps_ifd[2] = _dms(abs(lat))
        gps_ifd[3] = "E" if lon >= 0 else "W"
        gps_ifd[4] = _dms(abs(lon))
    with Image.open(path) as img:
        img.load()
        frame = img.copy()
    frame.save(path, format="JPEG", quality=85, exif=tags.tobytes())


def _dms(value: float) -> tuple[float, float, float]:
    """Decimal degrees as EXIF degrees, minutes, seconds (seconds to 1/100)."""
    degrees = int(value)
    minutes_f = (value - degrees) * 60
    minutes = int(minutes_f)
    seconds = round((minutes_f - minutes) * 60, 2)
    if seconds >= 60:
        minutes, seconds = minutes + 1, 0.0
    return float(degrees), float(minutes), seconds


CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"  # fonts-noto-cjk


def make_pdf(path: str | Path, title: str, lines: list[str], pages: int = 2) -> Path:
    """A written record as a scanned one looks: pages of Chinese text as images in a PDF."""
    from PIL import Image, ImageDraw, ImageFont

    font, big = ImageFont.truetype(CJK_FONT, 22), ImageFont.truetype(CJK_FONT, 34)
    images = []
    for n in range(pages):
        image = Image.new("RGB", (794, 1123), "white")
        draw = ImageDraw.Draw(image)
        draw.text((397, 80), title, font=big, fill="black", anchor="mm")
        for row, text in enumerate(lines):
            draw.text((70, 160 + row * 40), text, font=font, fill="black")
        draw.text((397, 1080), f"第 {n + 1} 页 共 {pages} 页", font=font, fill="black", anchor="mm")
        images.append(image)
    images[0].save(Path(path), save_all=True, append_images=images[1:], resolution=96)
    return Path(path)


def make_zero_byte(path: str | Path) -> Path:
    """Make an empty file, as a recorder leaves when it loses power right after opening one."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"")
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
