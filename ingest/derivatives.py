"""Viewing copies of a recording: proxy, poster, contact sheet and waveform files.

The original is evidence and is never touched; these files only make it quick to look at, so
they may fail without stopping anything (see :func:`derivatives_for`). This module makes files
in a folder; storing them is done elsewhere.

Rules every function here follows:

- Output is written to a temporary name in ``out_dir`` and renamed to ``{kind}.{ext}`` only
  after it has been checked, so a crash, a timeout or a bad file never leaves a partial file
  under the final name (and a failure deletes the temporary one). Give each source its own
  ``out_dir``: names are per kind, not per source.
- A zero exit from ffmpeg proves nothing: every proxy is probed again (streams and duration
  within 10% of the source) and every picture is opened with Pillow.
- Every ffmpeg run has a timeout, by default scaled to the source's duration.
- Transcodes use every core (they are what people wait for) and take a slot of the caller's
  ``transcode_slots`` semaphore, so a backlog of HEVC files cannot occupy the machine. Nothing
  else takes a slot: posters, sheets and waveforms run ffmpeg with ``-threads 1``; remuxes and
  audio proxies only copy streams or encode audio, which ffmpeg does on one core.
- ffmpeg command lines are built with ffmpeg-python (``ffmpeg.input(...).output(...)
  .compile()``) and run by :func:`_run_ffmpeg`, not by the library's ``run``, which has no
  timeout. ffprobe is run by :mod:`ingest.probe`.

Kinds: ``proxy`` is the playable or viewable copy of a recording browsers cannot play as it
is (MP4 for video, M4A for audio; :mod:`catalog.playback` decides), and the JPEG preview at most
1280 px of every photo; ``poster`` a JPEG at most 640 px (videos and
photos); ``sheet`` a JPEG grid of keyframes (videos); ``waveform`` a PNG of the sound (audio).
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import ffmpeg

from catalog import playback
from catalog.errors import EvidenceError

from .probe import (
    MediaInfo,
    ProbeFailed,
    h264_browser_safe,
    mp4_family,
    probe,
    stderr_tail,
)

__all__ = [
    "FFMPEG",
    "Derived",
    "DerivativeFailed",
    "derivatives_for",
    "make_contact_sheet",
    "make_poster",
    "make_proxy",
    "make_waveform",
    "needs_transcode",
]

log = logging.getLogger(__name__)

FFMPEG = "ffmpeg"
"""The ffmpeg executable (looked up on PATH)."""

DerivedKind = Literal["proxy", "poster", "sheet", "waveform"]
Method = Literal["remux", "transcode", "frame", "keyframes", "showwavespic", "resize", "aac"]

PROXY_SHORT_SIDE = 720
"""Transcoded proxies are "720p": the shorter displayed side at most this (only downscaled)."""
PREVIEW_MAX = 1280
"""Photo previews fit in this square."""
POSTER_MAX = 640
"""Posters fit in this square (so at most 640 px wide in either orientation)."""
SHEET_TILE = 320
"""Each contact-sheet tile fits in this square."""
SHEET_COLUMNS = 5
WAVEFORM_SIZE = (1280, 240)
DURATION_TOLERANCE = 0.10
"""A proxy's duration may differ from the source's by this fraction (and at least 0.1 s)."""

# How long ffmpeg may take: a fixed floor plus seconds per second of media. Generous, since a
# busy machine is slower; they only catch a hung process.
_BUDGET: dict[str, tuple[float, float]] = {
    "remux": (60.0, 0.1),
    "transcode": (120.0, 2.0),  # at least 0.5x real time; 1080p measured 2.2-5.9x on 2 cores
    "aac": (60.0, 0.2),
    "frame": (60.0, 0.0),
    "keyframes": (60.0, 0.5),
    "showwavespic": (60.0, 0.2),
}
_PROBE_TIMEOUT = 60.0

_CONTENT_TYPES = {"mp4": "video/mp4", "m4a": "audio/mp4", "jpg": "image/jpeg", "png": "image/png"}


class DerivativeFailed(EvidenceError):
    """A proxy, poster, sheet or waveform could not be made; the original is unaffected.

    The message says which and why, ending with the tail of ffmpeg's error output.
    """


@dataclass(frozen=True)
class Derived:
    """One derivative file made in ``out_dir``.

    ``method`` says how it was made: ``remux`` (video stream copied into a faststart MP4;
    audio copied, or encoded to AAC when it was not AAC), ``transcode`` (H.264 720p + AAC),
    ``aac`` (audio encoded to AAC in M4A), ``frame`` (one decoded frame), ``keyframes``
    (keyframes only, tiled), ``showwavespic`` (waveform picture), ``resize`` (photo scaled).
    """

    kind: DerivedKind
    path: Path
    content_type: str
    ext: str
    method: Method


# --- running ffmpeg ------------------------------------------------------------------------


def _budget(method: str, info: MediaInfo) -> float:
    floor, per_second = _BUDGET[method]
    return floor + per_second * (info.duration_s or 0.0)


def _compile(out: ffmpeg.nodes.OutputStream) -> list[str]:
    """The whole command line for one ffmpeg output, :data:`FFMPEG` first.

    Every run gets the same global options: no banner, never read stdin, errors only (stderr
    becomes the error message), and overwrite, since the staged output file already exists.
    The library puts them after the output file; ffmpeg takes global options anywhere.
    """
    return (
        out.global_args("-hide_banner", "-nostdin", "-loglevel", "error")
        .overwrite_output()
        .compile(cmd=FFMPEG)
    )


def _run_ffmpeg(cmd: list[str], *, timeout: float, what: str) -> None:
    """Run a command line made by :func:`_compile`; a non-zero exit or a timeout becomes
    :class:`DerivativeFailed`.

    stderr is captured (``-loglevel error`` keeps it small) and read to the end by
    ``subprocess.run``, so a chatty ffmpeg can never block on a full pipe; on timeout the
    process is killed before the error is raised.
    """
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise DerivativeFailed(
            f"{what}: ffmpeg not found on PATH",
            hint="install ffmpeg (apt-get install --no-install-recommends ffmpeg)",
        ) from None
    except subprocess.TimeoutExpired as exc:
        raise DerivativeFailed(
            f"{what}: ffmpeg timed out after {timeout:g} s: {stderr_tail(exc.stderr)}"
        ) from None
    if proc.returncode != 0:
        raise DerivativeFailed(
            f"{what}: ffmpeg failed (exit {proc.returncode}): {stderr_tail(proc.stderr) or 'no error output'}"
        )


@contextmanager
def _staged(out_dir: Path, kind: str, ext: str) -> Iterator[Path]:
    """A temporary path in ``out_dir``, renamed to ``{kind}.{ext}`` if the block succeeds.

    The temporary name starts with a dot and holds ``.part``, so a folder watcher or a
    listing never mistakes it for a result; on any error it is deleted.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=out_dir, prefix=f".{kind}-", suffix=f".part.{ext}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, out_dir / f"{kind}.{ext}")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _derived(kind: DerivedKind, out_dir: Path, ext: str, method: Method) -> Derived:
    return Derived(
        kind=kind, path=out_dir / f"{kind}.{ext}", content_type=_CONTENT_TYPES[ext], ext=ext, method=method
    )


# --- proxy ---------------------------------------------------------------------------------


def make_proxy(
    source: Path,
    info: MediaInfo,
    out_dir: Path,
    *,
    timeout: float | None = None,
    transcode_slots: threading.Semaphore | None = None,
) -> Derived:
    """The playable or viewable copy: ``proxy.mp4``, ``proxy.m4a`` or ``proxy.jpg``.

    - Video whose picture a browser plays as is (H.264 up to High, 8-bit 4:2:0, <= 1080p) in
      MP4/MOV: remuxed with ``-c copy -movflags +faststart`` (hundreds of times real time).
      Non-AAC audio (PCM in MOV) is encoded to AAC on the way; the picture is never touched.
    - Any other video: transcoded to H.264 (veryfast, CRF 28, yuv420p) with the shorter
      displayed side at most 720 px (rotation applied, never upscaled) and AAC 128k audio
      (AAC sources are copied). Waits for a slot of ``transcode_slots`` first; the wait does
      not count against ``timeout``.
    - Audio: AAC 128k in M4A (AAC in MP4/M4A is only remuxed). Encoding audio is cheap and
      single-threaded, so it takes no transcode slot.
    - Photo: a JPEG preview at most 1280 px, upright per EXIF Orientation, without EXIF.

    ``timeout`` is for the ffmpeg run; by default it grows with the duration.
    Raises :class:`DerivativeFailed`.
    """
    source, out_dir = Path(source), Path(out_dir)
    if info.kind == "photo":
        return _resized_photo(source, out_dir, "proxy", PREVIEW_MAX)
    if info.kind == "audio":
        return _audio_proxy(source, info, out_dir, timeout=timeout)
    if h264_browser_safe(info) and mp4_family(info.format_name):
        return _remux(source, info, out_dir, timeout=timeout)
    with transcode_slots if transcode_slots is not None else nullcontext():
        return _transcode(source, info, out_dir, timeout=timeout)


# ffmpeg-python writes each keyword as "-key value" (None: the bare flag), in sorted order;
# ffmpeg does not care about the order of one file's options. "-map" comes from the streams
# given to ffmpeg.output, in that order: 0:V:0 is the first real video stream (not cover art),
# a "?" makes a stream optional.


def _audio_opts(info: MediaInfo) -> dict[str, str]:
    if info.audio_codec is None:
        return {}
    if info.audio_codec == "aac":
        return {"c:a": "copy"}
    return {"c:a": "aac", "b:a": "128k"}


# Every proxy: no subtitles, data tracks or chapters, the index (moov) first so that it plays
# while downloading, MP4 whatever the extension.
_PROXY_OPTS: dict[str, str | None] = {
    "sn": None,
    "dn": None,
    "map_chapters": "-1",
    "movflags": "+faststart",
    "f": "mp4",
}


def _remux_cmd(source: Path, info: MediaInfo, dest: Path) -> list[str]:
    src = ffmpeg.input(str(source))
    return _compile(
        ffmpeg.output(
            src["V:0"], src["a:0?"], str(dest), **{"c:v": "copy"}, **_audio_opts(info), **_PROXY_OPTS
        )
    )


def _remux(source: Path, info: MediaInfo, out_dir: Path, *, timeout: float | None) -> Derived:
    what = f"proxy of {source.name} (remux)"
    with _staged(out_dir, "proxy", "mp4") as tmp:
        _run_ffmpeg(_remux_cmd(source, info, tmp), timeout=timeout or _budget("remux", info), what=what)
        _check_av(tmp, info, what=what, video_codec=info.video_codec)
    return _derived("proxy", out_dir, "mp4", "remux")


# Shorter displayed side at most PROXY_SHORT_SIDE, even sizes, never upscaled. The filter sees
# frames after ffmpeg's autorotation, so portrait footage stays portrait; -2 keeps the aspect.
_SCALE_720 = (
    f"scale=w='if(gte(iw,ih),-2,min({PROXY_SHORT_SIDE},trunc(iw/2)*2))'"
    f":h='if(gte(iw,ih),min({PROXY_SHORT_SIDE},trunc(ih/2)*2),-2)'"
)


# Filter chains with one input and one output go in "-vf" rather than being built with the
# library's .filter(): it writes every graph as -filter_complex, whose output stream no longer
# inherits the source stream's tags (language, handler name) and whose filters ignore -threads.


def _transcode_cmd(source: Path, info: MediaInfo, dest: Path) -> list[str]:
    src = ffmpeg.input(str(source))
    # No -threads: libx264 and the decoder use every core, which is what the slot is for.
    return _compile(
        ffmpeg.output(
            src["V:0"],
            src["a:0?"],
            str(dest),
            vf=_SCALE_720,
            **{"c:v": "libx264"},
            preset="veryfast",
            crf="28",
            pix_fmt="yuv420p",
            **_audio_opts(info),
            **_PROXY_OPTS,
        )
    )


def _transcode(source: Path, info: MediaInfo, out_dir: Path, *, timeout: float | None) -> Derived:
    what = f"proxy of {source.name} (transcode)"
    with _staged(out_dir, "proxy", "mp4") as tmp:
        _run_ffmpeg(
            _transcode_cmd(source, info, tmp), timeout=timeout or _budget("transcode", info), what=what
        )
        out = _check_av(tmp, info, what=what, video_codec="h264")
        shown = out.display_size
        if shown is None or min(shown) > PROXY_SHORT_SIDE:
            raise DerivativeFailed(f"{what}: output is {shown}, not at most {PROXY_SHORT_SIDE}p")
    return _derived("proxy", out_dir, "mp4", "transcode")


def _audio_proxy_cmd(source: Path, info: MediaInfo, dest: Path) -> list[str]:
    src = ffmpeg.input(str(source), threads="1")
    return _compile(ffmpeg.output(src["a:0"], str(dest), vn=None, **_audio_opts(info), **_PROXY_OPTS))


def _audio_proxy(source: Path, info: MediaInfo, out_dir: Path, *, timeout: float | None) -> Derived:
    if info.audio_codec is None:
        raise DerivativeFailed(f"proxy of {source.name}: no audio stream")
    method: Method = "remux" if info.audio_codec == "aac" and mp4_family(info.format_name) else "aac"
    what = f"proxy of {source.name} ({method})"
    with _staged(out_dir, "proxy", "m4a") as tmp:
        _run_ffmpeg(_audio_proxy_cmd(source, info, tmp), timeout=timeout or _budget(method, info), what=what)
        _check_av(tmp, info, what=what, video_codec=None)
    return _derived("proxy", out_dir, "m4a", method)


def _check_av(path: Path, source: MediaInfo, *, what: str, video_codec: str | None) -> MediaInfo:
    """Probe a proxy: the expected streams, and the source's duration within tolerance."""
    try:
        out = probe(path, timeout=_PROBE_TIMEOUT)
    except ProbeFailed as exc:
        raise DerivativeFailed(f"{what}: output is not readable: {exc}") from None
    if video_codec is not None and out.video_codec != video_codec:
        raise DerivativeFailed(f"{what}: output video is {out.video_codec}, not {video_codec}")
    if video_codec is None and out.video_codec is not None:
        raise DerivativeFailed(f"{what}: audio proxy has a video stream")
    if source.audio_codec is not None and out.audio_codec != "aac":
        raise DerivativeFailed(f"{what}: output audio is {out.audio_codec}, not aac")
    if source.duration_s:
        if out.duration_s is None:
            raise DerivativeFailed(f"{what}: output has no duration")
        allowed = max(DURATION_TOLERANCE * source.duration_s, 0.1)
        if abs(out.duration_s - source.duration_s) > allowed:
            raise DerivativeFailed(
                f"{what}: output lasts {out.duration_s:.2f} s, source {source.duration_s:.2f} s "
                "(source damaged or cut short?)"
            )
    elif not out.duration_s:
        raise DerivativeFailed(f"{what}: output has no duration")
    return out


# --- pictures ------------------------------------------------------------------------------


def _check_picture(path: Path, *, what: str, max_side: int | None = None) -> tuple[int, int]:
    """Open a picture with Pillow and decode it fully; return its size."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            size = img.size
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for a bad file
        raise DerivativeFailed(f"{what}: output is not a readable picture ({exc})") from None
    if min(size) < 1 or (max_side is not None and max(size) > max_side):
        raise DerivativeFailed(f"{what}: output is {size[0]}x{size[1]}")
    return size


def _resized_photo(source: Path, out_dir: Path, kind: DerivedKind, max_side: int) -> Derived:
    """A photo scaled to fit ``max_side``, turned upright, saved as JPEG without its EXIF
    (the original keeps it; previews need not carry the location around)."""
    from PIL import Image, ImageOps

    what = f"{kind} of {source.name} (resize)"
    with _staged(out_dir, kind, "jpg") as tmp:
        try:
            with Image.open(source) as img:
                # JPEG decodes at 1/2..1/8 scale directly: a 12 MP photo loads in a fraction.
                img.draft("RGB", (max_side, max_side))
                upright = ImageOps.exif_transpose(img)
                upright.thumbnail((max_side, max_side))
                upright.convert("RGB").save(tmp, format="JPEG", quality=85)
        except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for a bad file
            raise DerivativeFailed(f"{what}: {type(exc).__name__}: {exc}") from None
        _check_picture(tmp, what=what, max_side=max_side)
    return _derived(kind, out_dir, "jpg", "resize")


_FIT = "scale=w='min({n},iw)':h='min({n},ih)':force_original_aspect_ratio=decrease"


def _poster_output(source: Path, start: float, dest: Path) -> ffmpeg.nodes.OutputStream:
    # -ss as an input option seeks in the file rather than decoding up to that point.
    keyframes = {"skip_frame": "nokey"} if start > 0 else {}
    src = ffmpeg.input(str(source), threads="1", ss=f"{start:g}", **keyframes)
    return ffmpeg.output(
        src["V:0"],
        str(dest),
        an=None,
        sn=None,
        dn=None,
        **{"frames:v": "1", "q:v": "3"},
        vf=_FIT.format(n=POSTER_MAX),
        threads="1",
        f="image2",
        update="1",
    )


def _poster_cmd(source: Path, start: float, dest: Path) -> list[str]:
    return _compile(_poster_output(source, start, dest))


def _poster_at(info: MediaInfo) -> float:
    return round(0.1 * info.duration_s, 3) if info.duration_s else 0.0


def make_poster(source: Path, info: MediaInfo, out_dir: Path, *, timeout: float | None = None) -> Derived:
    """``poster.jpg``: the first keyframe at or after 10% of the duration, fitting 640x640,
    upright.

    10% skips the first seconds, often a pocket or a black sensor start-up. Seeking and
    decoding keyframes only (``-skip_frame nokey``) costs one or two frame decodes whatever
    the length or GOP (an exact frame decodes up to a whole GOP: 1.3-1.9 s for HEVC 1080p
    with 8 s GOPs, against 0.15 s). When there is no keyframe after that point (a short
    clip, a damaged tail), the first frame is used. Photos get a 640 px version of the picture.
    Raises :class:`DerivativeFailed`.
    """
    source, out_dir = Path(source), Path(out_dir)
    if info.kind == "photo":
        return _resized_photo(source, out_dir, "poster", POSTER_MAX)
    if info.kind != "video":
        raise DerivativeFailed(f"poster of {source.name}: {info.kind} has no picture")
    what = f"poster of {source.name} (frame)"
    at = _poster_at(info)
    with _staged(out_dir, "poster", "jpg") as tmp:
        for start in [at, 0.0] if at > 0 else [0.0]:
            tmp.write_bytes(b"")
            try:
                _run_ffmpeg(
                    _poster_cmd(source, start, tmp), timeout=timeout or _budget("frame", info), what=what
                )
            except DerivativeFailed:
                if start == 0:
                    raise
                continue  # seeking into a damaged file can fail where the start decodes
            if tmp.stat().st_size > 0:
                break
        _check_picture(tmp, what=what, max_side=POSTER_MAX)
    return _derived("poster", out_dir, "jpg", "frame")


def _sheet_frames_cmd(
    source: Path, work: Path, times: list[float], *, poster: tuple[float, Path] | None = None
) -> list[str]:
    """One ffmpeg run, one input per tile: each seeks (in the file's index, without reading
    what lies before) to the keyframe at or before its time and decodes that frame alone.
    With ``poster`` (time, path), the poster is one more output of the same run."""
    outputs = [] if poster is None else [_poster_output(source, poster[0], poster[1])]
    for n, at in enumerate(times):
        src = ffmpeg.input(str(source), threads="1", ss=f"{at:.3f}", skip_frame="nokey", noaccurate_seek=None)
        outputs.append(
            ffmpeg.output(
                src["V:0"],
                str(work / f"{n:04d}.png"),
                an=None,
                sn=None,
                dn=None,
                vf=_FIT.format(n=SHEET_TILE),
                # passthrough: the frame found lies before the seek point, and the default
                # constant-rate output would drop it for its negative timestamp
                fps_mode="passthrough",
                **{"frames:v": "1", "c:v": "png"},
                threads="1",
                f="image2",
                update="1",
            )
        )
    return _compile(ffmpeg.merge_outputs(*outputs))


def _first_frame_cmd(source: Path, pattern: str) -> list[str]:
    src = ffmpeg.input(str(source), threads="1")
    return _compile(
        ffmpeg.output(
            src["V:0"],
            pattern,
            an=None,
            sn=None,
            dn=None,
            **{"frames:v": "1", "c:v": "png"},
            vf=_FIT.format(n=SHEET_TILE),
            threads="1",
            f="image2",
        )
    )


def make_poster_and_sheet(
    source: Path, info: MediaInfo, out_dir: Path, *, frames: int = 10
) -> tuple[list[Derived], list[tuple[str, str]]]:
    """Poster and contact sheet of a video from one ffmpeg run: one process, and the file's
    index read once per seek. A poster that run did not give is made on its own
    (:func:`make_poster`, with its fallback to the first frame). Returns ``(made, failures)``
    as :func:`derivatives_for` does."""
    source, out_dir = Path(source), Path(out_dir)
    made: list[Derived] = []
    failures: list[tuple[str, str]] = []
    poster: Derived | None = None
    try:
        with _staged(out_dir, "poster", "jpg") as poster_tmp:
            try:
                made.append(
                    _sheet(source, info, out_dir, frames=frames, timeout=None, poster_dest=poster_tmp)
                )
            except DerivativeFailed as exc:
                failures.append(("sheet", str(exc)))
            _check_picture(poster_tmp, what=f"poster of {source.name} (frame)", max_side=POSTER_MAX)
        poster = _derived("poster", out_dir, "jpg", "frame")
    except DerivativeFailed:
        try:  # not from the shared run: on its own
            poster = make_poster(source, info, out_dir)
        except DerivativeFailed as exc:
            failures.append(("poster", str(exc)))
    return ([poster] if poster else []) + made, failures


def make_contact_sheet(
    source: Path,
    info: MediaInfo,
    out_dir: Path,
    *,
    frames: int = 10,
    timeout: float | None = None,
) -> Derived:
    """``sheet.jpg``: up to ``frames`` keyframes spread over the video, in rows of 5.

    Tile ``n`` is the keyframe at or before ``(n + 0.5) / frames`` of the duration, found by an
    input seek and decoded alone, all in one ffmpeg run: at most ``frames`` frames are
    decoded and the rest of the file is never read, so a 2-hour recording costs about what a
    4-minute one does. A keyframe found by two tiles (keyframes sparser than the tiles) is
    shown once, so a 2-second clip with a single keyframe gives a one-tile sheet. The grid is
    sized to what was found (never empty tiles); if no keyframe comes out at all (a damaged
    index), the first frame is used. Raises :class:`DerivativeFailed`.
    """
    return _sheet(Path(source), info, Path(out_dir), frames=frames, timeout=timeout, poster_dest=None)


def _sheet(
    source: Path,
    info: MediaInfo,
    out_dir: Path,
    *,
    frames: int,
    timeout: float | None,
    poster_dest: Path | None,
) -> Derived:
    source, out_dir = Path(source), Path(out_dir)
    if info.kind != "video":
        raise DerivativeFailed(f"sheet of {source.name}: {info.kind} has no video")
    if frames < 1:
        raise ValueError("frames must be >= 1")
    what = f"sheet of {source.name} (keyframes)"
    duration = info.duration_s or 0.0
    times = sorted({round((n + 0.5) * duration / frames, 3) for n in range(frames)})
    # Bounded per tile, not per second of media: the whole point is not to read it all.
    budget = timeout or _BUDGET["keyframes"][0] + 2.0 * len(times)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".sheet-frames-") as work:
        poster = (_poster_at(info), poster_dest) if poster_dest is not None else None
        try:
            _run_ffmpeg(
                _sheet_frames_cmd(source, Path(work), times, poster=poster), timeout=budget, what=what
            )
        except DerivativeFailed:
            pass  # a seek into a damaged file can fail where the start decodes: next
        tiles = _distinct(sorted(p for p in Path(work).glob("*.png") if p.stat().st_size > 0))
        if not tiles:
            _run_ffmpeg(_first_frame_cmd(source, str(Path(work) / "%04d.png")), timeout=budget, what=what)
            tiles = sorted(Path(work).glob("*.png"))
        if not tiles:
            raise DerivativeFailed(f"{what}: ffmpeg produced no frame")
        with _staged(out_dir, "sheet", "jpg") as tmp:
            _tile(tiles, tmp, what=what)
            _check_picture(tmp, what=what)
    return _derived("sheet", out_dir, "jpg", "keyframes")


def _distinct(tiles: list[Path]) -> list[Path]:
    """The tiles without repeats of the one before (two seeks that found the same keyframe
    decode it to the same bytes)."""
    kept: list[Path] = []
    last = b""
    for path in tiles:
        data = path.read_bytes()
        if data != last:
            kept.append(path)
        last = data
    return kept


def _tile(tiles: list[Path], out: Path, *, what: str, gap: int = 2) -> None:
    """Lay the tiles out in rows of SHEET_COLUMNS on black, each centred in its cell."""
    from PIL import Image

    images: list[Image.Image] = []
    try:
        for path in tiles:
            with Image.open(path) as opened:
                images.append(opened.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for a bad frame
        raise DerivativeFailed(f"{what}: a frame is unreadable ({exc})") from None
    cell_w = max(img.width for img in images)
    cell_h = max(img.height for img in images)
    columns = min(SHEET_COLUMNS, len(images))
    rows = math.ceil(len(images) / columns)
    sheet = Image.new("RGB", (columns * cell_w + (columns + 1) * gap, rows * cell_h + (rows + 1) * gap))
    for i, img in enumerate(images):
        row, col = divmod(i, columns)
        x = gap + col * (cell_w + gap) + (cell_w - img.width) // 2
        y = gap + row * (cell_h + gap) + (cell_h - img.height) // 2
        sheet.paste(img, (x, y))
    sheet.save(out, format="JPEG", quality=85)


def _waveform_cmd(source: Path, dest: Path) -> list[str]:
    # Audio in, picture out: this graph needs -filter_complex anyway, so it is built with the
    # library's filters (and the picture has no source stream whose tags it could keep).
    width, height = WAVEFORM_SIZE
    wave = (
        ffmpeg.input(str(source), threads="1")["a:0"]
        .filter("aformat", channel_layouts="mono")
        .filter("aresample", 8000)
        .filter("showwavespic", s=f"{width}x{height}", colors="0x3b6ea5")
    )
    return _compile(
        ffmpeg.output(wave, str(dest), **{"frames:v": "1", "c:v": "png"}, threads="1", f="image2", update="1")
    )


def make_waveform(source: Path, info: MediaInfo, out_dir: Path, *, timeout: float | None = None) -> Derived:
    """``waveform.png``: the first audio stream's loudness over time (1280x240).

    Mixed to mono and resampled to 8 kHz first: the picture has 1280 columns, and showwavespic
    keeps every sample until the end, so a one-hour 48 kHz stereo file would otherwise hold
    hundreds of MB. Raises :class:`DerivativeFailed` when there is no audio.
    """
    source, out_dir = Path(source), Path(out_dir)
    what = f"waveform of {source.name} (showwavespic)"
    if info.audio_codec is None:
        raise DerivativeFailed(f"{what}: no audio stream")
    with _staged(out_dir, "waveform", "png") as tmp:
        _run_ffmpeg(_waveform_cmd(source, tmp), timeout=timeout or _budget("showwavespic", info), what=what)
        _check_picture(tmp, what=what)
    return _derived("waveform", out_dir, "png", "showwavespic")


def needs_transcode(info: MediaInfo, *, damaged: bool = False) -> bool:
    """The recording's proxy is a video transcode (the expensive kind a worker can take):
    a video that browsers do not play as it is and whose picture cannot merely be copied."""
    if info.kind != "video" or playback.plays_as_is("video", info.summary(), damaged=damaged):
        return False
    return not (h264_browser_safe(info) and mp4_family(info.format_name))


# --- all of them ---------------------------------------------------------------------------


def derivatives_for(
    source: Path,
    info: MediaInfo,
    out_dir: Path,
    *,
    transcode_slots: threading.Semaphore | None = None,
    damaged: bool = False,
    transcode: bool = True,
    timed: Callable[[str, float], None] | None = None,
) -> tuple[list[Derived], list[tuple[str, str]]]:
    """Make every derivative that applies to the recording's kind, one after the other.

    - video: poster and sheet (one ffmpeg run, :func:`make_poster_and_sheet`), proxy
    - audio: waveform, proxy
    - no proxy for a video or audio file browsers play as it is
      (:func:`catalog.playback.plays_as_is`; a damaged file always gets one: its repair pass)
    - with ``transcode=False``, no proxy that needs a transcode (:func:`needs_transcode`):
      the caller queues it for a worker
    - photo: proxy (the 1280 px preview), poster (640 px, so listings treat photos and videos
      alike)

    Cheap pictures come first, so they exist even while the proxy waits for a transcode slot.
    ``timed(kind, seconds)`` is told how long each one took (made or failed); the shared run
    of a video's poster and sheet counts as ``sheet``.
    Returns ``(made, failures)``; a failure is ``(kind, message)`` and never stops the others
    (a recording is archived whether or not it can be previewed).
    """
    source, out_dir = Path(source), Path(out_dir)
    plan: Sequence[tuple[str, Callable[[], Derived | tuple[list[Derived], list[tuple[str, str]]]]]]
    proxy = ("proxy", lambda: make_proxy(source, info, out_dir, transcode_slots=transcode_slots))
    needs_proxy = not playback.plays_as_is(info.kind, info.summary(), damaged=damaged)
    if not transcode and needs_transcode(info, damaged=damaged):
        needs_proxy = False
    if info.kind == "video":
        plan = [
            ("sheet", lambda: make_poster_and_sheet(source, info, out_dir)),
        ] + ([proxy] if needs_proxy else [])
    elif info.kind == "audio":
        plan = [("waveform", lambda: make_waveform(source, info, out_dir))] + ([proxy] if needs_proxy else [])
    else:
        plan = [proxy, ("poster", lambda: make_poster(source, info, out_dir))]

    made: list[Derived] = []
    failures: list[tuple[str, str]] = []
    for kind, make in plan:
        started = time.monotonic()
        try:
            result = make()
            if isinstance(result, tuple):
                made += result[0]
                failures += result[1]
            else:
                made.append(result)
        except EvidenceError as exc:  # expected (a damaged source...): the caller records it
            failures.append((kind, str(exc)))
        except Exception as exc:  # noqa: BLE001 - one derivative must not stop the others
            log.exception("%s of %s failed unexpectedly", kind, source)
            failures.append((kind, f"{type(exc).__name__}: {exc}"))
        if timed is not None:
            timed(kind, time.monotonic() - started)
    return made, failures
