"""What a recording is: container, codecs, size, duration, time and place, read with ffprobe.

A thin adapter over ``ffprobe -print_format json`` (and Pillow for photo EXIF). It only reads;
deciding what the values mean for the catalog (which clock to trust, which zone a naive time is
in) is the caller's job, so every value is returned as found, normalised to one unit:

- ``creation_time`` is an aware UTC datetime when the file states an absolute moment (the
  MP4/MOV ``creation_time`` tag is UTC by definition; EXIF only with ``OffsetTimeOriginal``).
  Many recorders write their local wall time into that UTC tag; this module cannot know and
  does not guess.
- ``creation_time_local`` is the naive wall-clock time of the device (EXIF ``DateTimeOriginal``
  has no zone). The caller applies the station's or device's zone.
- ``gps`` is ``(latitude, longitude)`` in decimal degrees, from ISO 6709 ``location`` tags
  (``+31.2304+121.4737/``) or EXIF GPS.
- ``rotation`` is the clockwise rotation, in degrees (0, 90, 180, 270), that turns the stored
  picture upright; ``width`` and ``height`` are the stored (coded) size before it.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from catalog import playback
from catalog.errors import EvidenceError

__all__ = [
    "FFPROBE",
    "MediaInfo",
    "ProbeFailed",
    "browser_playable",
    "h264_browser_safe",
    "mp4_family",
    "parse_iso6709",
    "photo_info",
    "probe",
    "stderr_tail",
]

FFPROBE = "ffprobe"
"""The ffprobe executable (looked up on PATH)."""

MediaKind = Literal["video", "audio", "photo"]

# Still-image codecs as ffprobe names them. A single stream of one of these in an image
# demuxer is a photo; the same codec in a real container (MJPEG in AVI) is a video.
_IMAGE_CODECS = frozenset({"mjpeg", "png", "bmp", "tiff", "webp", "jpeg2000", "jpegls"})
_IMAGE_FORMATS = frozenset(
    {"image2", "jpeg_pipe", "png_pipe", "bmp_pipe", "tiff_pipe", "webp_pipe", "j2k_pipe", "jpegls_pipe"}
)


class ProbeFailed(EvidenceError):
    """ffprobe (or Pillow) could not read the file as audio, video or a photo.

    The message ends with the tail of ffprobe's error output ("moov atom not found",
    "Invalid data found when processing input"), which is what an operator needs to see.
    """


def stderr_tail(stderr: str | bytes | None, *, lines: int = 12, chars: int = 2000) -> str:
    """The last few lines of a tool's error output, for error messages.

    ffmpeg repeats the useful line at the end; the head is usually the banner or a flood of
    per-frame warnings, so only the tail is kept (bounded, so a message never holds megabytes).
    """
    if stderr is None:
        return ""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", errors="replace")
    tail = "\n".join(stderr.strip().splitlines()[-lines:])
    return tail[-chars:]


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe (or Pillow, for photos) says about one file. ``None`` means not stated."""

    kind: MediaKind
    format_name: str | None
    duration_s: float | None
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None
    fps: float | None
    creation_time: datetime | None
    gps: tuple[float, float] | None
    rotation: int | None
    bit_rate: int | None
    video_profile: str | None = None
    pix_fmt: str | None = None
    creation_time_local: datetime | None = None

    @property
    def display_size(self) -> tuple[int, int] | None:
        """(width, height) as shown, after ``rotation``; None when the size is unknown."""
        if self.width is None or self.height is None:
            return None
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height

    def summary(self) -> dict[str, Any]:
        """A JSON-able dict for manifests: times as ISO 8601 (UTC with ``Z``; local without
        offset), gps as ``[lat, lon]``. Every key is always present so manifests compare."""
        out = asdict(self)
        if self.creation_time is not None:
            utc = self.creation_time.astimezone(UTC)
            out["creation_time"] = utc.isoformat().replace("+00:00", "Z")
        if self.creation_time_local is not None:
            out["creation_time_local"] = self.creation_time_local.isoformat()
        if self.gps is not None:
            out["gps"] = [self.gps[0], self.gps[1]]
        return out


# --- ffprobe -------------------------------------------------------------------------------


def probe(path: Path, *, timeout: float = 60, fd: int | None = None) -> MediaInfo:
    """Read ``path`` with ffprobe; photos are completed with their EXIF (see :func:`photo_info`).

    With ``fd``, the file open at that descriptor is read instead (ffprobe inherits it and
    opens ``/proc/self/fd/N``, which is seekable, so an index at the end is found); ``path``
    then only names it in messages. A station file is read that way: whatever stands at its
    path now may be another file.

    Raises :class:`ProbeFailed` when ffprobe fails, times out, or finds no audio, video or
    image stream; the message carries ffprobe's error output.
    """
    path = Path(path)
    data = _ffprobe_json(path, timeout=timeout, fd=fd)
    streams: list[dict[str, Any]] = data.get("streams") or []
    fmt: dict[str, Any] = data.get("format") or {}
    format_name = fmt.get("format_name") or None

    video = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    audio = [s for s in streams if s.get("codec_type") == "audio"]

    if (
        len(streams) == 1
        and video
        and video[0].get("codec_name") in _IMAGE_CODECS
        and (format_name in _IMAGE_FORMATS or _float(fmt.get("duration")) is None)
    ):
        try:
            info = photo_info(path, fd=fd)
        except ProbeFailed:
            # ffprobe can read it but Pillow cannot (an unusual image codec): keep ffprobe's view.
            info = _photo_from_stream(video[0])
        # Pillow names the format ("jpeg"), ffprobe only its demuxer ("image2").
        return replace(
            info,
            format_name=info.format_name or format_name,
            video_codec=video[0].get("codec_name"),
            pix_fmt=video[0].get("pix_fmt"),
        )

    if video:
        kind: MediaKind = "video"
    elif audio:
        kind = "audio"
    else:
        types = ", ".join(sorted({str(s.get("codec_type")) for s in streams})) or "none"
        raise ProbeFailed(f"{path.name}: no audio or video stream (streams: {types})", path=str(path))

    v = video[0] if video else {}
    a = audio[0] if audio else {}
    tags = _merged_tags(fmt, v, a)
    duration = _float(fmt.get("duration"))
    if duration is None:
        durations = [d for s in streams if (d := _float(s.get("duration"))) is not None]
        duration = max(durations) if durations else None

    return MediaInfo(
        kind=kind,
        format_name=format_name,
        duration_s=duration,
        video_codec=v.get("codec_name"),
        audio_codec=a.get("codec_name"),
        width=_int(v.get("width")),
        height=_int(v.get("height")),
        fps=(_rate(v.get("avg_frame_rate")) or _rate(v.get("r_frame_rate"))) if v else None,
        creation_time=_parse_tag_time(tags.get("creation_time")),
        gps=_gps_from_tags(tags),
        rotation=_stream_rotation(v) if v else None,
        bit_rate=_int(fmt.get("bit_rate")),
        video_profile=v.get("profile"),
        pix_fmt=v.get("pix_fmt"),
    )


def _ffprobe_json(path: Path, *, timeout: float, fd: int | None = None) -> dict[str, Any]:
    """Run ffprobe and parse its JSON; every failure becomes :class:`ProbeFailed`."""
    source = str(path) if fd is None else f"/proc/self/fd/{fd}"
    cmd = [FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", "--", source]
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
            pass_fds=() if fd is None else (fd,),
        )
    except FileNotFoundError:
        raise ProbeFailed(
            "ffprobe not found on PATH",
            hint="install ffmpeg (apt-get install --no-install-recommends ffmpeg)",
        ) from None
    except subprocess.TimeoutExpired as exc:
        raise ProbeFailed(
            f"{path.name}: ffprobe timed out after {timeout:g} s: {stderr_tail(exc.stderr)}", path=str(path)
        ) from None
    if proc.returncode != 0:
        raise ProbeFailed(
            f"{path.name}: ffprobe failed (exit {proc.returncode}): "
            f"{stderr_tail(proc.stderr) or 'no error output'}",
            path=str(path),
            stderr=stderr_tail(proc.stderr),
        )
    try:
        # tags are copied from the file verbatim and may not be valid UTF-8
        data = json.loads(proc.stdout.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise ProbeFailed(f"{path.name}: ffprobe printed no readable JSON ({exc})", path=str(path)) from None
    if not isinstance(data, dict):
        raise ProbeFailed(f"{path.name}: ffprobe printed unexpected JSON", path=str(path))
    return data


def _merged_tags(*sources: dict[str, Any]) -> dict[str, str]:
    """Tags of the container, then of the first video and audio streams, lower-cased keys;
    the first source that has a key wins (the container is the recorder's statement)."""
    merged: dict[str, str] = {}
    for source in sources:
        for key, value in (source.get("tags") or {}).items():
            merged.setdefault(str(key).lower(), str(value))
    return merged


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _rate(value: Any) -> float | None:
    """ffprobe's "30000/1001" as 29.97; "0/0" (unknown) as None."""
    if not isinstance(value, str) or "/" not in value:
        return None
    num, _, den = value.partition("/")
    try:
        n, d = float(num), float(den)
    except ValueError:
        return None
    if n <= 0 or d <= 0:
        return None
    return round(n / d, 3)


def _stream_rotation(stream: dict[str, Any]) -> int | None:
    """Clockwise degrees to turn the stored picture upright, from the display matrix.

    ffprobe reports the matrix's angle counter-clockwise (``rotation: -90`` for a phone held
    upright); older files carry a ``rotate`` tag, which is already clockwise.
    """
    for side in stream.get("side_data_list") or []:
        angle = _float(side.get("rotation"))
        if angle is not None:
            return int(round(-angle)) % 360
    tag = _float((stream.get("tags") or {}).get("rotate"))
    if tag is not None:
        return int(round(tag)) % 360
    return 0 if stream else None


def _parse_tag_time(value: str | None) -> datetime | None:
    """A container time tag as aware UTC; a value without an offset is UTC (MP4 rule)."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    # "2020-11-05 00:50:56" (space) and fractional seconds of any length
    text = re.sub(r"^(\d{4}-\d\d-\d\d) ", r"\1T", text)
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    # MP4 stores seconds since 1904; an unset clock reads as 1904-01-01 or 1970-01-01.
    if moment.year < 1980:
        return None
    return moment


_LOCATION_KEYS = ("location", "com.apple.quicktime.location.iso6709", "location-eng")


def _gps_from_tags(tags: dict[str, str]) -> tuple[float, float] | None:
    for key in _LOCATION_KEYS:
        if key in tags and (gps := parse_iso6709(tags[key])) is not None:
            return gps
    return None


_ISO6709 = re.compile(
    r"^\s*([+-]\d+(?:\.\d*)?)([+-]\d+(?:\.\d*)?)(?:[+-]\d+(?:\.\d*)?)?"
    r"(?:CRS[^/]*)?/?\s*$"
)


def parse_iso6709(text: str) -> tuple[float, float] | None:
    """``(lat, lon)`` in decimal degrees from an ISO 6709 point such as ``+31.2304+121.4737/``.

    Degrees (``±DD.D±DDD.D``), degrees-minutes (``±DDMM.M±DDDMM.M``) and
    degrees-minutes-seconds (``±DDMMSS.S±DDDMMSS.S``) are told apart by the number of integer
    digits, as the standard defines; an altitude is ignored. Returns None for anything else,
    out-of-range values, or the ``+00+000`` that devices write when they have no fix.
    """
    match = _ISO6709.match(text or "")
    if not match:
        return None
    lat = _iso6709_part(match.group(1), degree_digits=2)
    lon = _iso6709_part(match.group(2), degree_digits=3)
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180 or (lat == 0 and lon == 0):
        return None
    return lat, lon


def _iso6709_part(part: str, *, degree_digits: int) -> float | None:
    sign = -1.0 if part[0] == "-" else 1.0
    body = part[1:]
    whole, _, frac = body.partition(".")
    fraction = float(f"0.{frac}") if frac else 0.0
    n = len(whole)
    if n == degree_digits:
        value = int(whole) + fraction
    elif n == degree_digits + 2:
        degrees, minutes = int(whole[:degree_digits]), int(whole[degree_digits:]) + fraction
        if minutes >= 60:
            return None
        value = degrees + minutes / 60
    elif n == degree_digits + 4:
        degrees = int(whole[:degree_digits])
        minutes = int(whole[degree_digits : degree_digits + 2])
        seconds = int(whole[degree_digits + 2 :]) + fraction
        if minutes >= 60 or seconds >= 60:
            return None
        value = degrees + minutes / 60 + seconds / 3600
    else:
        return None
    return round(sign * value, 7)


# --- photos --------------------------------------------------------------------------------

# EXIF tag numbers (Pillow's ExifTags names them too; numbers keep this independent of its
# version).
_TAG_ORIENTATION = 0x0112
_TAG_DATETIME = 0x0132
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_OFFSET_TIME_ORIGINAL = 0x9011
_IFD_EXIF = 0x8769
_IFD_GPS = 0x8825
# EXIF Orientation -> clockwise degrees to show upright; mirrored values (2, 4, 5, 7) map to
# the rotation part only.
_ORIENTATION_ROTATION = {1: 0, 2: 0, 3: 180, 4: 180, 5: 90, 6: 90, 7: 270, 8: 270}


def photo_info(path: Path, *, fd: int | None = None) -> MediaInfo:
    """Size, EXIF time and EXIF GPS of a photo, read with Pillow.

    EXIF ``DateTimeOriginal`` is the camera's wall clock without a zone, so it is returned as
    ``creation_time_local`` (naive) and the caller applies the device's zone; ``creation_time``
    (aware UTC) is set only when the photo also states ``OffsetTimeOriginal``. When there is no
    ``DateTimeOriginal``, IFD0 ``DateTime`` is used. Raises :class:`ProbeFailed` when Pillow
    cannot read the file. With ``fd``, the file open there is read (as in :func:`probe`).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        # /proc/self/fd/N opens the very file held, with an offset of its own.
        with Image.open(path if fd is None else f"/proc/self/fd/{fd}") as img:
            width, height = img.size
            fmt = (img.format or "").lower() or None
            exif = img.getexif()
            exif_ifd = exif.get_ifd(_IFD_EXIF)
            gps_ifd = exif.get_ifd(_IFD_GPS)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ProbeFailed(f"{path.name}: not a readable image ({exc})", path=str(path)) from None

    local = _exif_time(exif_ifd.get(_TAG_DATETIME_ORIGINAL)) or _exif_time(exif.get(_TAG_DATETIME))
    aware: datetime | None = None
    if local is not None and exif_ifd.get(_TAG_DATETIME_ORIGINAL) is not None:
        offset = _exif_offset(exif_ifd.get(_TAG_OFFSET_TIME_ORIGINAL))
        if offset is not None:
            aware = local.replace(tzinfo=offset).astimezone(UTC)
    orientation = exif.get(_TAG_ORIENTATION)
    return MediaInfo(
        kind="photo",
        format_name=fmt,
        duration_s=None,
        video_codec={"jpeg": "mjpeg"}.get(fmt or "", fmt),
        audio_codec=None,
        width=width,
        height=height,
        fps=None,
        creation_time=aware,
        gps=_exif_gps(gps_ifd),
        rotation=_ORIENTATION_ROTATION.get(orientation, 0) if isinstance(orientation, int) else 0,
        bit_rate=None,
        creation_time_local=local,
    )


def _photo_from_stream(stream: dict[str, Any]) -> MediaInfo:
    return MediaInfo(
        kind="photo",
        format_name=None,
        duration_s=None,
        video_codec=stream.get("codec_name"),
        audio_codec=None,
        width=_int(stream.get("width")),
        height=_int(stream.get("height")),
        fps=None,
        creation_time=None,
        gps=None,
        rotation=0,
        bit_rate=None,
        pix_fmt=stream.get("pix_fmt"),
    )


def _exif_time(value: Any) -> datetime | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" as a naive datetime; blank or zeroed values as None."""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str):
        return None
    text = value.strip("\x00 ").strip()
    try:
        return datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def _exif_offset(value: Any) -> timezone | None:
    """EXIF OffsetTime* ("+08:00") as a fixed offset."""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"\s*([+-])(\d\d):(\d\d)\s*\x00*", value)
    if not match:
        return None
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    if minutes > 14 * 60:
        return None
    return timezone(timedelta(minutes=-minutes if match.group(1) == "-" else minutes))


def _exif_gps(gps: Any) -> tuple[float, float] | None:
    """(lat, lon) from an EXIF GPS IFD (tags 1-4: refs and degree/minute/second rationals)."""
    if not gps:
        return None
    try:
        lat = _dms(gps[2], gps.get(1, "N"), positive="N")
        lon = _dms(gps[4], gps.get(3, "E"), positive="E")
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        return None
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180 or (lat == 0 and lon == 0):
        return None
    return lat, lon


def _dms(value: Any, ref: Any, *, positive: str) -> float | None:
    """Degrees, minutes, seconds (Pillow rationals or (num, den) pairs) and a hemisphere."""
    parts = [float(Fraction(p[0], p[1])) if isinstance(p, tuple) else float(p) for p in value]
    parts = (parts + [0.0, 0.0, 0.0])[:3]
    if not all(math.isfinite(p) for p in parts):
        return None
    degrees = parts[0] + parts[1] / 60 + parts[2] / 3600
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", errors="replace")
    ref = str(ref).strip("\x00 ").upper() or positive
    return round(degrees if ref == positive else -degrees, 7)


# --- what browsers play --------------------------------------------------------------------


def browser_playable(info: MediaInfo) -> bool:
    """True when browsers play the video file as it is (:func:`catalog.playback.plays_as_is`):
    H.264 Baseline/Main/High, 8-bit 4:2:0, with AAC audio or none, in MP4/MOV, at most 1080p
    in either orientation. Anything else gets a proxy: HEVC plays only in some browsers,
    High 10 and 4:2:2 in none, and a 4K picture is too heavy to scrub through.
    """
    return info.kind == "video" and playback.plays_as_is("video", info.summary())


def h264_browser_safe(info: MediaInfo) -> bool:
    """The video stream alone would play in a browser (the audio and container aside):
    H.264 Baseline/Main/High, 8-bit 4:2:0, at most 1080p in either orientation."""
    return playback.h264_plays(asdict(info))


def mp4_family(format_name: str | None) -> bool:
    """ffprobe's format name is the ISO media family (MP4, MOV, M4A, 3GP), which remuxes
    into MP4 without surprises."""
    return playback.mp4_family(format_name)
