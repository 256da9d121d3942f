"""The synthetic recorder files the other tests are built on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests import synthetic


@pytest.fixture(scope="module")
def ffprobe() -> str:
    path = shutil.which("ffprobe")
    if not path or not shutil.which("ffmpeg"):
        pytest.fail(
            "ffmpeg/ffprobe not found on PATH: the test suite needs them "
            "(run `make test-deps`, or apt-get install --no-install-recommends ffmpeg)",
            pytrace=False,
        )
    return path


def probe(ffprobe: str, path: Path) -> dict:
    proc = subprocess.run(
        [ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"ffprobe failed on {path}: {proc.stderr}"
    return json.loads(proc.stdout)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_video_duration_streams_and_creation_time(tmp_path: Path, ffprobe: str, codec: str) -> None:
    when = datetime(2020, 11, 5, 0, 50, 56, tzinfo=timezone.utc)
    path = synthetic.make_video(tmp_path / "clip.mp4", seconds=3.0, codec=codec, creation_time=when)
    assert path.is_file()
    assert path.stat().st_size < 200_000
    info = probe(ffprobe, path)
    assert abs(float(info["format"]["duration"]) - 3.0) < 0.5
    kinds = sorted(s["codec_type"] for s in info["streams"])
    assert kinds == ["audio", "video"]
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert video["codec_name"] == codec
    assert (video["width"], video["height"]) == (320, 240)
    assert info["format"]["tags"]["creation_time"].startswith("2020-11-05T00:50:56")


def test_audio_and_photo_probe_as_audio_and_image(tmp_path: Path, ffprobe: str) -> None:
    wav = synthetic.make_audio(tmp_path / "note.WAV", seconds=2.0)
    info = probe(ffprobe, wav)
    assert [s["codec_type"] for s in info["streams"]] == ["audio"]
    stream = info["streams"][0]
    assert stream["codec_name"] == "pcm_s16le"
    assert (int(stream["sample_rate"]), stream["channels"]) == (16000, 1)
    assert abs(float(info["format"]["duration"]) - 2.0) < 0.5

    jpg = synthetic.make_photo(tmp_path / "photo.JPG", size=(160, 120))
    assert jpg.read_bytes()[:3] == b"\xff\xd8\xff"
    info = probe(ffprobe, jpg)
    assert info["format"]["format_name"] in ("image2", "jpeg_pipe")
    (stream,) = info["streams"]
    assert stream["codec_name"] == "mjpeg"
    assert (stream["width"], stream["height"]) == (160, 120)


def test_truncate_makes_the_file_shorter(tmp_path: Path, ffprobe: str) -> None:
    original = synthetic.make_video(tmp_path / "whole.mp4", faststart=False)
    size = original.stat().st_size

    copy = synthetic.truncate(original, 0.5, dest=tmp_path / "cut.mp4")
    assert original.stat().st_size == size
    assert copy.stat().st_size == size // 2
    assert copy.read_bytes() == original.read_bytes()[: size // 2]

    same = synthetic.truncate(original)
    assert same == original
    assert original.stat().st_size == int(size * 0.6)


def test_inbox_has_the_recorder_name_shapes(tmp_path: Path, ffprobe: str) -> None:
    paths = synthetic.make_inbox(tmp_path / "inbox", count=2)
    names = [p.name for p in paths]
    assert names == [
        "A123456@202011050850560000.mp4",
        "TA00716_JX0227_20201105085809.MOV",
        "TA00716_JX0227_20201105090522_IMP.mp4",
        "TA00716_JX0227_20201105091235.WAV",
        "TA00716_JX0227_20201105091948.JPG",
    ]
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert len({p.read_bytes() for p in paths}) == len(paths)

    mov = probe(ffprobe, paths[1])
    assert "mov" in mov["format"]["format_name"]
    # names carry Asia/Shanghai wall time, containers the same moment in UTC
    assert mov["format"]["tags"]["creation_time"].startswith("2020-11-05T00:58:09")

    stamps = [re.search(r"(\d{14})", n).group(1) for n in names]
    assert stamps == sorted(set(stamps))
