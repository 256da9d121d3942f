"""ingest.probe on real files made by ffmpeg (tests/synthetic.py)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.probe import (
    MediaInfo,
    ProbeFailed,
    browser_playable,
    parse_iso6709,
    photo_info,
    probe,
)
from tests import synthetic

WHEN = datetime(2020, 11, 5, 0, 50, 56, tzinfo=UTC)  # 08:50:56 in Shanghai
SHANGHAI = (31.2304, 121.4737)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One file of each kind, made once for the module (about 1.5 s in all)."""
    synthetic.require_ffmpeg()
    d = tmp_path_factory.mktemp("probe-media")
    return {
        "h264": synthetic.make_video(
            d / "A123456@202011050850560000.mp4",
            size="1920x1080",
            creation_time=WHEN,
            text="A123456",
            burn_in=True,
        ),
        "hevc": synthetic.make_video(
            d / "TA00716_JX0227_20201105085056.MOV", codec="hevc", faststart=False, creation_time=WHEN
        ),
        "wav": synthetic.make_audio(d / "note.WAV"),
        "exif": synthetic.make_photo(d / "exif.JPG", exif=True, taken=WHEN, orientation=6),
        "exif_offset": synthetic.make_photo(d / "offset.JPG", exif=True, taken=WHEN, offset=True),
        "plain_jpg": synthetic.make_photo(d / "plain.JPG"),
        "located": synthetic.make_video(
            d / "located.mp4", seconds=1, audio=False, location="+31.2304+121.4737/"
        ),
        "rotated": synthetic.make_video(d / "rotated.mp4", seconds=1, rotate=90),
        "moov_at_end": synthetic.make_video(d / "moov_at_end.mp4", faststart=False),
    }


def test_h264_1080p_video(media: dict[str, Path]) -> None:
    info = probe(media["h264"])
    assert info.kind == "video"
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height, info.rotation) == (1920, 1080, 0)
    assert info.fps == 15.0
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert "mp4" in (info.format_name or "")
    assert info.bit_rate and info.bit_rate > 0
    assert info.creation_time == WHEN and info.creation_time.tzinfo is not None
    assert info.gps is None
    assert browser_playable(info)


def test_hevc_mov_is_not_browser_playable(media: dict[str, Path]) -> None:
    info = probe(media["hevc"])
    assert (info.kind, info.video_codec, info.audio_codec) == ("video", "hevc", "aac")
    assert info.creation_time == WHEN
    assert not browser_playable(info)


def test_wav_is_audio(media: dict[str, Path]) -> None:
    info = probe(media["wav"])
    assert info.kind == "audio"
    assert (info.audio_codec, info.video_codec) == ("pcm_s16le", None)
    assert (info.width, info.height, info.fps, info.rotation) == (None, None, None, None)
    assert info.duration_s == pytest.approx(2.0, abs=0.05)
    assert not browser_playable(info)


def test_jpeg_with_exif_time_gps_and_orientation(media: dict[str, Path]) -> None:
    info = probe(media["exif"])
    assert info.kind == "photo"
    assert (info.format_name, info.video_codec) == ("jpeg", "mjpeg")
    assert info.duration_s is None
    # EXIF time has no zone: the camera's wall clock, naive, for the caller to place
    assert info.creation_time_local == datetime(2020, 11, 5, 8, 50, 56)
    assert info.creation_time is None
    assert info.gps == pytest.approx(SHANGHAI, abs=1e-5)
    assert (info.width, info.height) == (320, 240)
    assert info.rotation == 90 and info.display_size == (240, 320)
    assert photo_info(media["exif"]).gps == info.gps


def test_exif_offset_gives_an_absolute_time(media: dict[str, Path]) -> None:
    info = probe(media["exif_offset"])
    assert info.creation_time == WHEN
    assert info.creation_time_local == datetime(2020, 11, 5, 8, 50, 56)


def test_jpeg_without_exif(media: dict[str, Path]) -> None:
    info = probe(media["plain_jpg"])
    assert info.kind == "photo"
    assert (info.creation_time, info.creation_time_local, info.gps) == (None, None, None)


def test_location_tag_gives_gps(media: dict[str, Path]) -> None:
    info = probe(media["located"])
    assert info.gps == pytest.approx(SHANGHAI)
    assert info.audio_codec is None and browser_playable(info)


def test_rotation_from_display_matrix(media: dict[str, Path]) -> None:
    info = probe(media["rotated"])
    assert (info.width, info.height, info.rotation) == (320, 240, 90)
    assert info.display_size == (240, 320)


def test_summary_is_json_for_manifests(media: dict[str, Path]) -> None:
    summary = probe(media["h264"]).summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["creation_time"] == "2020-11-05T00:50:56Z"
    assert summary["kind"] == "video" and summary["gps"] is None
    photo = probe(media["exif"]).summary()
    assert photo["creation_time_local"] == "2020-11-05T08:50:56"
    assert photo["gps"] == pytest.approx(list(SHANGHAI), abs=1e-5)
    assert set(photo) == set(summary)


def test_probe_reads_the_file_held_open_whatever_its_path_now_is(
    media: dict[str, Path], tmp_path: Path
) -> None:
    """Through /proc/self/fd/N: seekable, so an index at the end is found; the path only
    names the file in messages (it may be gone, or be something else by now)."""
    path = tmp_path / "A123456@202011050850560000.mp4"
    path.write_bytes(media["moov_at_end"].read_bytes())
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        path.unlink()
        path.write_text("now something else")
        info = probe(path, fd=fd)
        assert info == probe(media["moov_at_end"])
        os.lseek(fd, 0, os.SEEK_SET)
        assert info.duration_s and os.lseek(fd, 0, os.SEEK_CUR) == 0  # its offset left alone
    finally:
        os.close(fd)
    photo = tmp_path / "exif.JPG"
    photo.write_bytes(media["exif"].read_bytes())
    fd = os.open(photo, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        photo.unlink()
        assert photo_info(photo, fd=fd) == photo_info(media["exif"])
    finally:
        os.close(fd)


def test_truncated_moov_at_end_fails_with_ffprobe_reason(media: dict[str, Path], tmp_path: Path) -> None:
    cut = synthetic.truncate(media["moov_at_end"], 0.6, dest=tmp_path / "cut.mp4")
    with pytest.raises(ProbeFailed, match="moov atom not found"):
        probe(cut)


@pytest.mark.parametrize("content", [b"not a video, just notes\n" * 20, b""], ids=["text", "empty"])
def test_non_media_fails(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.mp4"
    path.write_bytes(content)
    with pytest.raises(ProbeFailed) as caught:
        probe(path)
    assert "notes.mp4" in str(caught.value) and "ffprobe failed" in str(caught.value)


def test_zero_byte_and_missing_files_fail(tmp_path: Path) -> None:
    with pytest.raises(ProbeFailed):
        probe(synthetic.make_zero_byte(tmp_path / "A123456@202011050850560000.mp4"))
    with pytest.raises(ProbeFailed, match="No such file"):
        probe(tmp_path / "gone.mp4")


def test_probe_times_out(tmp_path: Path) -> None:
    fifo = tmp_path / "stuck.mp4"
    os.mkfifo(fifo)  # opening it for reading blocks until a writer comes: ffprobe hangs
    with pytest.raises(ProbeFailed, match="timed out"):
        probe(fifo, timeout=0.5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+31.2304+121.4737/", (31.2304, 121.4737)),
        ("-33.8688+151.2093+025.000/", (-33.8688, 151.2093)),  # with altitude
        ("+3113.824+12128.422/", (31.2304, 121.4737)),  # degrees and minutes
        ("+311349.44+1212825.32/", (31.2304, 121.4737)),  # degrees, minutes, seconds
        ("+40.7128-074.0060CRSWGS_84/", (40.7128, -74.006)),
        ("+00.0000+000.0000/", None),  # no fix
        ("+91.0000+000.0000/", None),
        ("somewhere", None),
        ("", None),
    ],
)
def test_parse_iso6709(text: str, expected: tuple[float, float] | None) -> None:
    result = parse_iso6709(text)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected, abs=1e-4)


def _video(**changes: object) -> MediaInfo:
    base = MediaInfo(
        kind="video",
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        duration_s=10.0,
        video_codec="h264",
        audio_codec="aac",
        width=1920,
        height=1080,
        fps=30.0,
        creation_time=None,
        gps=None,
        rotation=0,
        bit_rate=6_000_000,
        video_profile="High",
        pix_fmt="yuv420p",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "playable"),
    [
        ({}, True),
        ({"audio_codec": None}, True),
        ({"video_profile": "Main", "width": 1280, "height": 720}, True),
        ({"width": 1080, "height": 1920}, True),  # portrait 1080p
        ({"rotation": 90}, True),
        ({"width": 2560, "height": 1440}, False),
        ({"width": 1920, "height": 1200}, False),
        ({"video_profile": "High 10", "pix_fmt": "yuv420p10le"}, False),
        ({"pix_fmt": "yuv422p"}, False),
        ({"video_codec": "hevc", "video_profile": "Main"}, False),
        ({"audio_codec": "pcm_s16le"}, False),
        ({"format_name": "matroska,webm"}, False),
        ({"kind": "audio"}, False),
    ],
)
def test_browser_playable(changes: dict[str, object], playable: bool) -> None:
    assert browser_playable(_video(**changes)) is playable
