"""ingest.derivatives: the ffmpeg command lines it builds, then the real ffmpeg on synthetic
recordings."""

from __future__ import annotations

import struct
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from ingest import derivatives
from ingest.derivatives import (
    DerivativeFailed,
    Derived,
    derivatives_for,
    make_contact_sheet,
    make_poster,
    make_proxy,
    make_waveform,
)
from ingest.probe import MediaInfo, probe
from tests import synthetic

WHEN = datetime(2020, 11, 5, 0, 50, 56, tzinfo=UTC)


# --- command lines (no ffmpeg needed) ------------------------------------------------------

# What ffprobe says of a 12 s 1080p H.264 + AAC recording in MP4.
H264 = MediaInfo(
    kind="video",
    format_name="mov,mp4,m4a,3gp,3g2,mj2",
    duration_s=12.0,
    video_codec="h264",
    audio_codec="aac",
    width=1920,
    height=1080,
    fps=30.0,
    creation_time=None,
    gps=None,
    rotation=None,
    bit_rate=None,
    video_profile="High",
    pix_fmt="yuv420p",
)
HEVC = replace(H264, video_codec="hevc", video_profile="Main")
PCM_MOV = replace(H264, audio_codec="pcm_s16le")
WAV = replace(
    H264,
    kind="audio",
    format_name="wav",
    video_codec=None,
    audio_codec="pcm_s16le",
    width=None,
    height=None,
    fps=None,
    video_profile=None,
    pix_fmt=None,
)


class FakeRunner:
    """Stands in for ``_run_ffmpeg``: records each command line, writes nothing, and fails from
    run number ``fail_from`` on (so a fallback can be reached)."""

    def __init__(self) -> None:
        self.cmds: list[list[str]] = []
        self.fail_from = 1

    def __call__(self, cmd: list[str], *, timeout: float, what: str) -> None:
        assert timeout > 0
        self.cmds.append(cmd)
        if len(self.cmds) >= self.fail_from:
            raise DerivativeFailed(f"{what}: not run")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    fake = FakeRunner()
    monkeypatch.setattr(derivatives, "_run_ffmpeg", fake)
    return fake


def has(args: list[str], *seq: str) -> bool:
    """``seq`` appears in ``args`` as consecutive items."""
    return any(args[i : i + len(seq)] == list(seq) for i in range(len(args) - len(seq) + 1))


def value(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


def split(cmd: list[str], source: Path, out_dir: Path) -> tuple[list[str], list[str], str]:
    """(input options, output options, output file) of a one-input, one-output command line,
    after checking the executable and the global options."""
    assert cmd[0] == derivatives.FFMPEG
    for option in (["-hide_banner"], ["-nostdin"], ["-loglevel", "error"], ["-y"]):
        assert has(cmd, *option), option
    assert cmd.count("-i") == 1 and value(cmd, "-i") == str(source)
    i = cmd.index("-i")
    [o] = [n for n, arg in enumerate(cmd) if arg.startswith(str(out_dir))]
    return cmd[1:i], cmd[i + 2 : o], cmd[o]


def test_proxy_command_lines(runner: FakeRunner, tmp_path: Path) -> None:
    source, out = tmp_path / "in" / "A.mp4", tmp_path / "out"
    for info in (H264, PCM_MOV, HEVC, WAV):
        with pytest.raises(DerivativeFailed, match="not run"):
            make_proxy(source, info, out)
    remux, remux_pcm, transcode, audio = (split(cmd, source, out) for cmd in runner.cmds)

    # remux: the picture copied, AAC copied, moov first
    _, opts, dest = remux
    assert has(opts, "-map", "0:V:0") and has(opts, "-map", "0:a:0?")
    assert has(opts, "-c:v", "copy") and has(opts, "-c:a", "copy")
    assert has(opts, "-movflags", "+faststart") and has(opts, "-f", "mp4")
    assert has(opts, "-map_chapters", "-1") and "-sn" in opts and "-dn" in opts
    assert "-vf" not in opts and dest.endswith(".mp4")
    # PCM in MOV: the picture still copied, the sound encoded
    _, opts, _ = remux_pcm
    assert has(opts, "-c:v", "copy") and has(opts, "-c:a", "aac") and has(opts, "-b:a", "128k")

    # transcode: H.264 at most 720p on every core (no -threads anywhere)
    inputs, opts, dest = transcode
    assert has(opts, "-map", "0:V:0") and has(opts, "-map", "0:a:0?")
    assert has(opts, "-c:v", "libx264") and has(opts, "-preset", "veryfast")
    assert has(opts, "-crf", "28") and has(opts, "-pix_fmt", "yuv420p")
    assert value(opts, "-vf").startswith("scale=") and "720" in value(opts, "-vf")
    assert has(opts, "-c:a", "copy") and has(opts, "-movflags", "+faststart")
    assert "-threads" not in inputs + opts and dest.endswith(".mp4")

    # audio: AAC in M4A, one decoder thread
    inputs, opts, dest = audio
    assert has(inputs, "-threads", "1")
    assert has(opts, "-map", "0:a:0") and "-vn" in opts
    assert has(opts, "-c:a", "aac") and has(opts, "-b:a", "128k")
    assert has(opts, "-movflags", "+faststart") and has(opts, "-f", "mp4")
    assert dest.endswith(".m4a")
    assert list(out.iterdir()) == []


def test_poster_command_lines(runner: FakeRunner, tmp_path: Path) -> None:
    source, out = tmp_path / "in" / "A.mp4", tmp_path / "out"
    with pytest.raises(DerivativeFailed, match="not run"):
        make_poster(source, H264, out)
    # the keyframe at 10% of 12 s, then the first frame when that fails
    (seek_in, seek_out, _), (first_in, first_out, dest) = (split(c, source, out) for c in runner.cmds)
    assert has(seek_in, "-ss", "1.2") and has(seek_in, "-skip_frame", "nokey")
    assert has(first_in, "-ss", "0") and "-skip_frame" not in first_in
    for inputs, opts in ((seek_in, seek_out), (first_in, first_out)):
        assert has(inputs, "-threads", "1") and has(opts, "-threads", "1")
        assert has(opts, "-map", "0:V:0") and has(opts, "-frames:v", "1")
        assert value(opts, "-vf").startswith("scale=") and "640" in value(opts, "-vf")
        assert has(opts, "-f", "image2") and has(opts, "-update", "1")
    assert dest.endswith(".jpg")


def test_contact_sheet_command_lines(runner: FakeRunner, tmp_path: Path) -> None:
    source, out = tmp_path / "in" / "A.mp4", tmp_path / "out"
    runner.fail_from = 2  # the keyframe run "succeeds" with no frame: the fallback runs
    with pytest.raises(DerivativeFailed, match="not run"):
        make_contact_sheet(source, H264, out)
    tiles, first = runner.cmds
    # One run, one input per tile: a seek to 0.6 s, 1.8 s ... 11.4 s (12 s / 10 tiles, each in
    # the middle of its tenth), keyframes only, one frame decoded and written per input.
    assert tiles.count("-i") == 10 and all(
        tiles[i + 1] == str(source) for i, a in enumerate(tiles) if a == "-i"
    )
    seeks = [tiles[i + 1] for i, a in enumerate(tiles) if a == "-ss"]
    assert seeks == [f"{0.6 + 1.2 * n:.3f}" for n in range(10)]
    assert tiles.count("-skip_frame") == 10 and tiles.count("-noaccurate_seek") == 10
    assert tiles.count("-frames:v") == 10 and tiles.count("-update") == 10
    assert tiles.count("-fps_mode") == 10
    assert [tiles[i + 1] for i, a in enumerate(tiles) if a == "-map"] == [f"{n}:V:0" for n in range(10)]
    pngs = [a for a in tiles if a.endswith(".png")]
    assert len(pngs) == 10 and len(set(pngs)) == 10
    assert all(
        tiles[i + 1].startswith("scale=") and "320" in tiles[i + 1] for i, a in enumerate(tiles) if a == "-vf"
    )
    first_in, first_out, first_dest = split(first, source, out)
    assert "-skip_frame" not in first_in and "-ss" not in first_in
    assert value(first_out, "-vf").startswith("scale=") and has(first_out, "-frames:v", "1")
    assert has(first_in, "-threads", "1") and has(first_out, "-threads", "1")
    assert has(first_out, "-map", "0:V:0") and has(first_out, "-c:v", "png")
    assert first_dest.endswith("%04d.png")
    assert list(out.iterdir()) == []


def test_waveform_command_line(runner: FakeRunner, tmp_path: Path) -> None:
    source, out = tmp_path / "in" / "note.WAV", tmp_path / "out"
    with pytest.raises(DerivativeFailed, match="not run"):
        make_waveform(source, WAV, out)
    [cmd] = runner.cmds
    inputs, opts, dest = split(cmd, source, out)
    graph = value(cmd, "-filter_complex")
    assert graph.startswith("[0:a:0]aformat=channel_layouts=mono")
    assert "aresample=8000" in graph and "showwavespic=" in graph and "s=1280x240" in graph
    # the picture mapped is the graph's last output
    label = value(opts, "-map")
    assert label.startswith("[") and graph.endswith(label)
    assert has(inputs, "-threads", "1") and has(opts, "-threads", "1")
    assert has(opts, "-frames:v", "1") and has(opts, "-update", "1")
    assert has(opts, "-f", "image2") and has(opts, "-c:v", "png") and dest.endswith(".png")


# --- the real ffmpeg -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sources, made once for the module (about 2.5 s in all)."""
    synthetic.require_ffmpeg()
    d = tmp_path_factory.mktemp("sources")
    return {
        # moov at the end, as recorders write it: the proxy must come out faststart
        "h264": synthetic.make_video(
            d / "A123456@202011050850560000.mp4",
            size="1920x1080",
            faststart=False,
            creation_time=WHEN,
            text="A123456",
            burn_in=True,
        ),
        "hevc": synthetic.make_video(
            d / "TA00716_JX0227_20201105085056.MOV", size="1920x1080", codec="hevc", creation_time=WHEN
        ),
        "pcm_mov": synthetic.make_video(d / "pcm.MOV", audio_codec="pcm"),
        "rotated_h264": synthetic.make_video(d / "rot.mp4", seconds=1, rotate=90),
        "rotated_hevc": synthetic.make_video(
            d / "roth.mp4", seconds=1, size="1280x720", codec="hevc", rotate=90
        ),
        "keyframes": synthetic.make_video(d / "gop.mp4", seconds=4, keyint=15, audio=False),
        "silent": synthetic.make_video(d / "silent.mp4", seconds=1, audio=False),
        "wav": synthetic.make_audio(d / "note.WAV"),
        "photo": synthetic.make_photo(d / "photo.JPG", size=(2000, 1500), exif=True, orientation=6),
    }


@pytest.fixture(scope="module")
def infos(src: dict[str, Path]) -> dict[str, MediaInfo]:
    return {name: probe(path) for name, path in src.items()}


def leftovers(out_dir: Path) -> list[str]:
    """Temporary names (dot files, .part) left in an output folder."""
    if not out_dir.exists():
        return []
    return sorted(p.name for p in out_dir.iterdir() if p.name.startswith(".") or ".part" in p.name)


def top_level_boxes(path: Path) -> list[str]:
    boxes = []
    with open(path, "rb") as fh:
        while header := fh.read(8):
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", fh.read(8))[0] - 8
            boxes.append(kind.decode("latin-1"))
            fh.seek(size - 8, 1)
    return boxes


def test_browser_playable_video_is_remuxed_faststart(
    src: dict[str, Path], infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    made = make_proxy(src["h264"], infos["h264"], tmp_path)
    assert made == Derived(
        kind="proxy", path=tmp_path / "proxy.mp4", content_type="video/mp4", ext="mp4", method="remux"
    )
    out = probe(made.path)
    source = infos["h264"]
    assert (out.video_codec, out.audio_codec, out.width, out.height) == ("h264", "aac", 1920, 1080)
    assert out.video_profile == source.video_profile  # copied, not re-encoded
    assert out.duration_s == pytest.approx(source.duration_s, abs=0.05)
    boxes = top_level_boxes(made.path)
    assert boxes.index("moov") < boxes.index("mdat")
    assert top_level_boxes(src["h264"]).index("moov") > top_level_boxes(src["h264"]).index("mdat")
    assert leftovers(tmp_path) == []


def test_hevc_is_transcoded_to_720p_h264(
    src: dict[str, Path], infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    made = make_proxy(src["hevc"], infos["hevc"], tmp_path)
    assert (made.method, made.path.name) == ("transcode", "proxy.mp4")
    out = probe(made.path)
    assert (out.video_codec, out.audio_codec) == ("h264", "aac")
    assert (out.width, out.height) == (1280, 720)
    assert out.pix_fmt == "yuv420p"
    assert out.duration_s == pytest.approx(infos["hevc"].duration_s, rel=0.1)
    assert top_level_boxes(made.path).index("moov") < top_level_boxes(made.path).index("mdat")
    assert leftovers(tmp_path) == []


def test_pcm_audio_is_encoded_while_the_picture_is_copied(
    src: dict[str, Path], infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    made = make_proxy(src["pcm_mov"], infos["pcm_mov"], tmp_path)
    out = probe(made.path)
    assert made.method == "remux"
    assert (out.video_codec, out.audio_codec) == ("h264", "aac")
    assert out.video_profile == infos["pcm_mov"].video_profile


def test_portrait_keeps_its_orientation(
    src: dict[str, Path], infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    remuxed = make_proxy(src["rotated_h264"], infos["rotated_h264"], tmp_path / "remux")
    out = probe(remuxed.path)
    assert remuxed.method == "remux"
    assert (out.width, out.height, out.rotation) == (320, 240, 90)  # matrix copied

    transcoded = make_proxy(src["rotated_hevc"], infos["rotated_hevc"], tmp_path / "transcode")
    out = probe(transcoded.path)
    assert transcoded.method == "transcode"
    assert out.display_size == (720, 1280)  # upright, short side 720, not upscaled

    poster = make_poster(src["rotated_hevc"], infos["rotated_hevc"], tmp_path / "poster")
    with Image.open(poster.path) as img:
        assert img.size == (360, 640)


def test_audio_gets_m4a_proxy_and_waveform(
    src: dict[str, Path], infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    made, failures = derivatives_for(src["wav"], infos["wav"], tmp_path)
    assert failures == []
    by_kind = {d.kind: d for d in made}
    assert set(by_kind) == {"proxy", "waveform"}
    proxy = by_kind["proxy"]
    assert (proxy.ext, proxy.content_type, proxy.method) == ("m4a", "audio/mp4", "aac")
    out = probe(proxy.path)
    assert (out.kind, out.audio_codec, out.video_codec) == ("audio", "aac", None)
    assert out.duration_s == pytest.approx(2.0, abs=0.1)
    wave = by_kind["waveform"]
    assert (wave.path.name, wave.content_type, wave.method) == ("waveform.png", "image/png", "showwavespic")
    with Image.open(wave.path) as img:
        assert (img.format, img.size) == ("PNG", (1280, 240))
    assert leftovers(tmp_path) == []


def test_photo_gets_upright_preview_and_poster(
    src: dict[str, Path], infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    made, failures = derivatives_for(src["photo"], infos["photo"], tmp_path)
    assert failures == []
    by_kind = {d.kind: d for d in made}
    assert by_kind["proxy"] == Derived(
        kind="proxy", path=tmp_path / "proxy.jpg", content_type="image/jpeg", ext="jpg", method="resize"
    )
    with Image.open(by_kind["proxy"].path) as img:
        # 2000x1500 stored, EXIF Orientation 6: shown as portrait, fit in 1280
        assert (img.format, img.size) == ("JPEG", (960, 1280))
        assert not img.getexif().get_ifd(0x8825)  # the location stays with the original
    with Image.open(by_kind["poster"].path) as img:
        assert img.size == (480, 640)


def test_video_poster_and_sheet_are_jpegs(
    src: dict[str, Path], infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    poster = make_poster(src["h264"], infos["h264"], tmp_path)
    sheet = make_contact_sheet(src["h264"], infos["h264"], tmp_path)
    assert (poster.path.name, poster.method) == ("poster.jpg", "frame")
    assert (sheet.path.name, sheet.method) == ("sheet.jpg", "keyframes")
    with Image.open(poster.path) as img:
        assert (img.format, img.size) == ("JPEG", (640, 360))
    # a 2 s clip has a single keyframe: a one-tile sheet, not a failure
    with Image.open(sheet.path) as img:
        assert img.format == "JPEG" and img.size == (324, 184)
    assert leftovers(tmp_path) == []


def test_sheet_spreads_keyframes_and_sizes_the_grid(
    src: dict[str, Path], infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    # 4 s at 15 fps with a keyframe every second: 4 keyframes, 320x240 tiles, 2 px gaps
    sheet = make_contact_sheet(src["keyframes"], infos["keyframes"], tmp_path / "all")
    with Image.open(sheet.path) as img:
        assert img.size == (4 * 320 + 5 * 2, 240 + 2 * 2)
    two = make_contact_sheet(src["keyframes"], infos["keyframes"], tmp_path / "two", frames=2)
    with Image.open(two.path) as img:
        assert img.size == (2 * 320 + 3 * 2, 240 + 2 * 2)
    assert leftovers(tmp_path / "all") == [] and leftovers(tmp_path / "two") == []


def test_waveform_of_a_video_without_audio_fails_cleanly(
    src: dict[str, Path], infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    with pytest.raises(DerivativeFailed, match="no audio stream"):
        make_waveform(src["silent"], infos["silent"], tmp_path)
    with pytest.raises(DerivativeFailed, match="has no picture"):
        make_poster(src["wav"], infos["wav"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_one_failure_does_not_stop_the_others(src: dict[str, Path], tmp_path: Path) -> None:
    # A faststart file cut short still probes with its full duration; the proxy made from it
    # is shorter, so it is refused, while poster and sheet come from what is left.
    whole = synthetic.make_video(tmp_path / "whole.mp4", seconds=4, keyint=15)
    cut = synthetic.truncate(whole, 0.5, dest=tmp_path / "cut.mp4")
    info = probe(cut)
    out_dir = tmp_path / "out"
    # damaged, as the container check finds it: a damaged file always gets a proxy
    made, failures = derivatives_for(cut, info, out_dir, damaged=True)
    assert sorted(d.kind for d in made) == ["poster", "sheet"]
    assert [kind for kind, _ in failures] == ["proxy"]
    assert "cut.mp4" in failures[0][1] and "source damaged or cut short" in failures[0][1]
    assert sorted(p.name for p in out_dir.iterdir()) == ["poster.jpg", "sheet.jpg"]


def test_every_derivative_failing_is_reported_and_leaves_nothing(
    infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    garbage = tmp_path / "note.WAV"
    garbage.write_text("not audio\n")
    out_dir = tmp_path / "out"
    made, failures = derivatives_for(garbage, infos["wav"], out_dir)
    assert made == []
    assert [kind for kind, _ in failures] == ["waveform", "proxy"]
    assert all("ffmpeg failed" in message for _, message in failures)
    assert list(out_dir.iterdir()) == []


def test_only_transcodes_take_a_slot(
    src: dict[str, Path], infos: dict[str, MediaInfo], tmp_path: Path
) -> None:
    slots = threading.BoundedSemaphore(1)
    slots.acquire()  # the only slot is busy with another file
    try:
        # a remux needs no slot
        remux = make_proxy(src["h264"], infos["h264"], tmp_path / "remux", transcode_slots=slots)
        assert remux.method == "remux"

        # a transcode waits for one, but the cheap pictures are made meanwhile
        result: dict[str, tuple[list[Derived], list[tuple[str, str]]]] = {}
        out_dir = tmp_path / "hevc"
        worker = threading.Thread(
            target=lambda: result.setdefault(
                "hevc", derivatives_for(src["hevc"], infos["hevc"], out_dir, transcode_slots=slots)
            )
        )
        worker.start()
        deadline = time.monotonic() + 30
        while not ((out_dir / "poster.jpg").exists() and (out_dir / "sheet.jpg").exists()):
            assert time.monotonic() < deadline, "poster and sheet were not made while waiting"
            time.sleep(0.05)
        worker.join(timeout=0.5)
        assert worker.is_alive()
        assert not (out_dir / "proxy.mp4").exists()
    finally:
        slots.release()
    worker.join(timeout=60)
    assert not worker.is_alive()
    made, failures = result["hevc"]
    assert failures == []
    assert [(d.kind, d.method) for d in made] == [
        ("poster", "frame"),
        ("sheet", "keyframes"),
        ("proxy", "transcode"),
    ]
    assert leftovers(out_dir) == []
    slots.acquire(blocking=False)  # the slot was given back
    slots.release()


def test_poster_and_sheet_come_from_one_ffmpeg_run(
    src: dict[str, Path], infos: dict[str, MediaInfo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[list[str]] = []
    real = derivatives._run_ffmpeg

    def counted(cmd: list[str], *, timeout: float, what: str) -> None:
        runs.append(cmd)
        real(cmd, timeout=timeout, what=what)

    monkeypatch.setattr(derivatives, "_run_ffmpeg", counted)
    made, failures = derivatives_for(src["keyframes"], infos["keyframes"], tmp_path)
    assert failures == [] and sorted(d.kind for d in made) == ["poster", "sheet"]
    (run,) = runs  # one process made both (and no proxy: the original plays)
    assert run.count("-i") == 1 + 10 and any(a.endswith(".jpg") for a in run)
    with Image.open(tmp_path / "poster.jpg") as img:
        assert img.format == "JPEG" and max(img.size) <= 640
    with Image.open(tmp_path / "sheet.jpg") as img:
        assert img.size == (4 * 320 + 5 * 2, 240 + 2 * 2)  # the four keyframes
    assert leftovers(tmp_path) == []
