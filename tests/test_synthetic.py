"""The synthetic recorder files the other tests are built on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
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
        timeout=60,
    )
    assert proc.returncode == 0, f"ffprobe failed on {path}: {proc.stderr}"
    return json.loads(proc.stdout)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_video_duration_streams_and_creation_time(tmp_path: Path, ffprobe: str, codec: str) -> None:
    when = datetime(2020, 11, 5, 0, 50, 56, tzinfo=UTC)
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


def _frame(path: Path, out: Path, at: float = 0.5) -> Path:
    proc = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-y",
            "-ss",
            str(at),
            "-i",
            str(path),
            "-frames:v",
            "1",
            "-update",
            "1",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_burned_in_overlay_is_drawn_and_deterministic(tmp_path: Path, ffprobe: str) -> None:
    from PIL import Image, ImageChops, ImageStat

    when = datetime(2020, 11, 5, 0, 50, 56, tzinfo=UTC)
    plain = synthetic.make_video(tmp_path / "plain.mp4", size="640x360", creation_time=when, text="A123456")
    burned = synthetic.make_video(
        tmp_path / "burned.mp4", size="640x360", creation_time=when, text="A123456", burn_in=True
    )
    again = synthetic.make_video(
        tmp_path / "again.mp4", size="640x360", creation_time=when, text="A123456", burn_in=True
    )
    assert burned.read_bytes() == again.read_bytes()
    with (
        Image.open(_frame(plain, tmp_path / "p.png")) as a,
        Image.open(_frame(burned, tmp_path / "b.png")) as b,
    ):
        # the overlay sits in the top-left corner and leaves the rest of the picture alone
        # (but for compression noise)
        def mean_difference(box: tuple[int, int, int, int]) -> float:
            diff = ImageChops.difference(a.crop(box), b.crop(box)).convert("L")
            return float(ImageStat.Stat(diff).mean[0])

        assert mean_difference((0, 0, 320, 40)) > 20
        assert mean_difference((0, 200, 640, 360)) < 3
    assert probe(ffprobe, burned)["format"]["tags"]["comment"] == "A123456"

    with pytest.raises(ValueError, match="burned-in text"):
        synthetic.make_video(tmp_path / "bad.mp4", text="a:b'c", burn_in=True)


def test_1080p_hevc_rotation_location_pcm_and_keyframes(tmp_path: Path, ffprobe: str) -> None:
    big = probe(
        ffprobe, synthetic.make_video(tmp_path / "big.mp4", seconds=1, size="1920x1080", codec="hevc")
    )
    video = next(s for s in big["streams"] if s["codec_type"] == "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("hevc", 1920, 1080)

    turned = probe(
        ffprobe,
        synthetic.make_video(tmp_path / "turned.mp4", seconds=1, rotate=90, location="+31.2304+121.4737/"),
    )
    video = next(s for s in turned["streams"] if s["codec_type"] == "video")
    # ffprobe gives the display matrix's angle counter-clockwise: -90 is "turn 90 clockwise"
    assert [d.get("rotation") for d in video["side_data_list"]] == [-90]
    assert turned["format"]["tags"]["location"] == "+31.2304+121.4737/"
    assert not list(tmp_path.glob(".*"))  # the unrotated intermediate is gone

    pcm = probe(ffprobe, synthetic.make_video(tmp_path / "pcm.MOV", seconds=1, audio_codec="pcm"))
    assert [s["codec_name"] for s in pcm["streams"]] == ["h264", "pcm_s16le"]

    gop = synthetic.make_video(tmp_path / "gop.mp4", seconds=3, keyint=15, audio=False)
    keys = subprocess.run(
        [
            ffprobe,
            "-v",
            "error",
            "-select_streams",
            "v",
            "-skip_frame",
            "nokey",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
            str(gop),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    assert [round(float(k.strip(","))) for k in keys] == [0, 1, 2]

    with pytest.raises(ValueError, match="rotate"):
        synthetic.make_video(tmp_path / "odd.mp4", rotate=45)


def test_photo_exif_time_gps_and_orientation(tmp_path: Path) -> None:
    from PIL import Image

    when = datetime(2020, 11, 5, 0, 50, 56, tzinfo=UTC)
    path = synthetic.make_photo(tmp_path / "exif.JPG", taken=when, exif=True, orientation=6)
    with Image.open(path) as img:
        assert (img.format, img.size) == ("JPEG", (320, 240))
        exif = img.getexif()
        assert exif[0x0112] == 6
        assert exif.get_ifd(0x8769)[0x9003] == "2020:11:05 08:50:56"  # Shanghai wall time
        assert 0x9011 not in exif.get_ifd(0x8769)
        gps = exif.get_ifd(0x8825)
        assert (gps[1], gps[3]) == ("N", "E")
        lat = sum(float(v) / 60**i for i, v in enumerate(gps[2]))
        lon = sum(float(v) / 60**i for i, v in enumerate(gps[4]))
        assert (lat, lon) == pytest.approx(synthetic.DEFAULT_GPS, abs=1e-5)
    assert path.stat().st_mtime == when.timestamp()

    other = synthetic.make_photo(tmp_path / "other.JPG", exif=True, gps=(-33.8688, -70.6693), offset=True)
    with Image.open(other) as img:
        exif = img.getexif()
        assert exif.get_ifd(0x8769)[0x9011] == "+08:00"
        assert exif.get_ifd(0x8769)[0x9003] == "2020:11:05 08:50:56"  # DEFAULT_START
        assert (exif.get_ifd(0x8825)[1], exif.get_ifd(0x8825)[3]) == ("S", "W")

    nogps = synthetic.make_photo(tmp_path / "nogps.JPG", exif=True, gps=None)
    plain = synthetic.make_photo(tmp_path / "plain.JPG")
    with Image.open(nogps) as a, Image.open(plain) as b:
        assert not a.getexif().get_ifd(0x8825)
        assert 0x9003 in a.getexif().get_ifd(0x8769)
        assert not b.getexif()


def test_zero_byte(tmp_path: Path) -> None:
    path = synthetic.make_zero_byte(tmp_path / "sub" / "A123456@202011050850560000.mp4")
    assert path.is_file() and path.stat().st_size == 0
