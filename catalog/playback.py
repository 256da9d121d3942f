"""Whether browsers play an original as it is, so that it needs no proxy.

A proxy is a second copy of the evidence's picture: for an H.264 fleet a remux proxy doubles
the bytes stored while adding nothing a browser needs. The page plays the original itself
(``/media`` streams byte ranges, decrypted when the original is encrypted), and a proxy is
made only for what current Chromium and Firefox cannot play: H.265, MPEG-4 Part 2, MJPEG,
PCM audio in MOV, AVI and Matroska containers, more than 1080p, 10-bit or 4:2:2 pictures, and
damaged files (the proxy's remux or transcode is their repair pass). ``moov`` at the end is
no reason: browsers fetch the index with a range request.

The decision reads the media summary stored with the recording (``Recording.media_info``,
the manifest's ``media``), so the catalog, the pages and the ingest agree without probing
again. Photos always get their preview (a 12 MP JPEG is not something to page through).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["H264_PROFILES", "PIX_FMTS", "h264_plays", "mp4_family", "play_type", "plays_as_is"]

H264_PROFILES = frozenset({"constrained baseline", "baseline", "main", "high"})
"""H.264 profiles every current browser decodes (8-bit 4:2:0, Baseline to High)."""
PIX_FMTS = frozenset({"yuv420p", "yuvj420p"})


def mp4_family(format_name: str | None) -> bool:
    """ffprobe's format name is the ISO media family (MP4, MOV, M4A, 3GP)."""
    return bool(set((format_name or "").split(",")) & {"mov", "mp4"})


def h264_plays(media: Mapping[str, Any]) -> bool:
    """The picture alone plays in a browser: H.264 Baseline/Main/High, 8-bit 4:2:0, at most
    1080p in either orientation (long side <= 1920, short side <= 1080)."""
    width, height = media.get("width"), media.get("height")
    if media.get("video_codec") != "h264" or not isinstance(width, int) or not isinstance(height, int):
        return False
    if str(media.get("video_profile") or "").lower() not in H264_PROFILES:
        return False
    pix_fmt = media.get("pix_fmt")
    if pix_fmt is not None and pix_fmt not in PIX_FMTS:
        return False
    return max(width, height) <= 1920 and min(width, height) <= 1080


def plays_as_is(kind: str, media: Mapping[str, Any], *, damaged: bool = False) -> bool:
    """True when Chromium and Firefox both play the original file without help.

    - video: :func:`h264_plays`, AAC audio or none, in an MP4/MOV file;
    - audio: AAC in MP4/M4A, or MP3;
    - photos, damaged files and anything unknown: False (they get a proxy).
    """
    if damaged or not media:
        return False
    fmt = media.get("format_name")
    if kind == "video":
        return media.get("audio_codec") in (None, "aac") and h264_plays(media) and mp4_family(fmt)
    if kind == "audio" and media.get("video_codec") is None:
        codec = media.get("audio_codec")
        return (codec == "aac" and mp4_family(fmt)) or (codec == "mp3" and fmt == "mp3")
    return False


def play_type(kind: str, media: Mapping[str, Any]) -> str:
    """The media type to serve a playable original with: MOV holding H.264 and AAC is read by
    browsers' MP4 demuxers, but ``video/quicktime`` is not a type they say they play."""
    if kind == "audio":
        return "audio/mpeg" if media.get("format_name") == "mp3" else "audio/mp4"
    return "video/mp4"
