from __future__ import annotations

import os
import random
import shutil
import struct
import time
from pathlib import Path

import pytest

from ingest.container import Integrity, check_fd, check_file
from tests.synthetic import make_audio, make_photo, make_video, truncate

GIB = 1024**3


# --- hand-made containers ------------------------------------------------------------------------


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def ftyp(brand: bytes = b"isom") -> bytes:
    return box(b"ftyp", brand + b"\0\0\2\0" + brand + b"mp41")


def hdlr(handler: bytes) -> bytes:
    return box(b"hdlr", b"\0\0\0\0" + b"\0\0\0\0" + handler + b"\0" * 12 + b"\0")


def moov(*handlers: bytes) -> bytes:
    traks = b"".join(
        box(b"trak", box(b"tkhd", b"\0" * 84) + box(b"mdia", box(b"mdhd", b"\0" * 24) + hdlr(h)))
        for h in handlers
    )
    return box(b"moov", box(b"mvhd", b"\0" * 100) + traks)


def riff_wav(
    data: bytes = b"\0\1" * 800,
    *,
    data_size: int | None = None,
    riff_size: int | None = None,
    with_fmt: bool = True,
) -> bytes:
    fmt = (b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)) if with_fmt else b""
    chunk = b"data" + struct.pack("<I", len(data) if data_size is None else data_size) + data
    body = b"WAVE" + fmt + chunk
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_zero_bytes_is_empty(tmp_path: Path) -> None:
    assert check_file(write(tmp_path, "a.mp4", b"")) == Integrity("empty", None, None, "zero bytes")


def test_hand_made_faststart_mp4(tmp_path: Path) -> None:
    data = ftyp() + moov(b"vide", b"soun") + box(b"mdat", b"\0" * 100)
    assert check_file(write(tmp_path, "a.bin", data)) == Integrity("ok", "video", "mp4")


def test_audio_only_mp4_is_audio(tmp_path: Path) -> None:
    data = ftyp(b"M4A ") + box(b"mdat", b"\0" * 10) + moov(b"soun")
    assert check_file(write(tmp_path, "a.mp4", data)).kind == "audio"


def test_mdat_past_the_end_is_damaged_with_numbers(tmp_path: Path) -> None:
    head = ftyp() + moov(b"vide")
    data = head + struct.pack(">I", 1000) + b"mdat" + b"\0" * 92
    result = check_file(write(tmp_path, "a.mp4", data))
    assert result.status == "damaged" and result.kind == "video"
    assert result.reason == f"mdat declares 1000 bytes, file has 100 after offset {len(head)}"


def test_no_moov_is_damaged(tmp_path: Path) -> None:
    data = ftyp() + box(b"free") + box(b"mdat", b"\1" * 500)
    result = check_file(write(tmp_path, "a.mp4", data))
    assert result.status == "damaged" and "moov atom not found" in (result.reason or "")


def test_no_mdat_is_damaged(tmp_path: Path) -> None:
    result = check_file(write(tmp_path, "a.mp4", ftyp() + moov(b"vide")))
    assert result.status == "damaged" and "mdat" in (result.reason or "")


def test_size_zero_last_box_runs_to_the_end(tmp_path: Path) -> None:
    ok = ftyp() + moov(b"vide") + struct.pack(">I", 0) + b"mdat" + b"\7" * 5000
    assert check_file(write(tmp_path, "a.mp4", ok)).status == "ok"
    # what a recorder leaves when power fails: mdat's size never written, moov never written
    died = ftyp() + box(b"free") + struct.pack(">I", 0) + b"mdat" + b"\7" * 5000
    result = check_file(write(tmp_path, "b.mp4", died))
    assert result.status == "damaged" and "moov atom not found" in (result.reason or "")


def test_64_bit_largesize_box(tmp_path: Path) -> None:
    payload = b"\5" * 300
    large = struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", 16 + len(payload)) + payload
    data = ftyp() + moov(b"vide") + large
    assert check_file(write(tmp_path, "a.mp4", data)).status == "ok"
    short = ftyp() + moov(b"vide") + struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", 10 * GIB)
    result = check_file(write(tmp_path, "b.mp4", short + payload))
    assert result.status == "damaged" and f"declares {10 * GIB} bytes" in (result.reason or "")


def test_header_cut_inside_a_box_header(tmp_path: Path) -> None:
    data = ftyp() + moov(b"vide") + box(b"mdat", b"\1" * 10) + b"\0\0\1"
    result = check_file(write(tmp_path, "a.mp4", data))
    assert result.status == "damaged" and "cut short" in (result.reason or "")


def test_zero_padding_after_the_last_box_is_ignored(tmp_path: Path) -> None:
    data = ftyp() + moov(b"vide") + box(b"mdat", b"\1" * 10) + b"\0" * 10000
    result = check_file(write(tmp_path, "a.mp4", data))
    assert result.status == "ok" and "zero bytes" in (result.reason or "")


def test_garbage_after_boxes_is_damaged(tmp_path: Path) -> None:
    data = ftyp() + moov(b"vide") + box(b"mdat", b"\1" * 10) + b"\xff\xfe\x00\x01garbage!"
    assert check_file(write(tmp_path, "a.mp4", data)).status == "damaged"


def test_quicktime_without_ftyp_is_mov(tmp_path: Path) -> None:
    data = box(b"wide") + box(b"mdat", b"\2" * 64) + moov(b"vide")
    assert check_file(write(tmp_path, "a.mp4", data)) == Integrity("ok", "video", "mov")
    qt = ftyp(b"qt  ") + moov(b"vide") + box(b"mdat")
    assert check_file(write(tmp_path, "b.mp4", qt)).container == "mov"


def test_unknown_first_box_is_not_media(tmp_path: Path) -> None:
    result = check_file(write(tmp_path, "a.mp4", box(b"abcd", b"\0" * 40) + moov(b"vide")))
    assert result.status == "not_media" and result.kind is None


def test_heif_photo_needs_meta(tmp_path: Path) -> None:
    ok = ftyp(b"heic") + box(b"meta", b"\0" * 20) + box(b"mdat", b"\1" * 20)
    assert check_file(write(tmp_path, "a.heic", ok)) == Integrity("ok", "photo", "heif")
    assert check_file(write(tmp_path, "b.heic", ftyp(b"heic") + box(b"mdat", b"\1"))).status == "damaged"


def test_hand_made_wav(tmp_path: Path) -> None:
    assert check_file(write(tmp_path, "a.wav", riff_wav())) == Integrity("ok", "audio", "wav")


def test_wav_data_past_the_end(tmp_path: Path) -> None:
    data = riff_wav()[:-600]
    result = check_file(write(tmp_path, "a.wav", data))
    assert result.status == "damaged"
    assert result.reason == "data declares 1600 bytes, file has 1000 after offset 44"


def test_wav_riff_size_inconsistent(tmp_path: Path) -> None:
    too_small = riff_wav(riff_size=100)
    assert check_file(write(tmp_path, "a.wav", too_small)).status == "damaged"
    too_large = riff_wav(riff_size=10_000)
    result = check_file(write(tmp_path, "b.wav", too_large))
    assert result.status == "damaged" and "RIFF declares 10000 bytes" in (result.reason or "")
    placeholder = riff_wav(data_size=0xFFFFFFFF, riff_size=0xFFFFFFFF)  # streamed, never finished
    assert check_file(write(tmp_path, "c.wav", placeholder)).status == "damaged"


def test_wav_without_fmt_or_data(tmp_path: Path) -> None:
    assert check_file(write(tmp_path, "a.wav", riff_wav(with_fmt=False))).status == "damaged"
    no_data = b"RIFF" + struct.pack("<I", 4) + b"WAVE"
    assert check_file(write(tmp_path, "b.wav", no_data)).status == "damaged"


def test_riff_of_another_form_is_not_media(tmp_path: Path) -> None:
    data = b"RIFF" + struct.pack("<I", 12) + b"WEBPVP8 " + b"\0" * 4
    assert check_file(write(tmp_path, "a.wav", data)).status == "not_media"


def test_jpeg_end_marker_and_zero_padding(tmp_path: Path) -> None:
    body = b"\xff\xd8\xff\xe0" + b"\x10" * 500
    assert check_file(write(tmp_path, "a.jpg", body + b"\xff\xd9")) == Integrity("ok", "photo", "jpeg")
    assert check_file(write(tmp_path, "b.jpg", body + b"\xff\xd9" + b"\0" * 100_000)).status == "ok"
    assert check_file(write(tmp_path, "c.jpg", body)).status == "damaged"
    assert check_file(write(tmp_path, "d.jpg", body + b"\0" * 100)).status == "damaged"


def test_png_needs_iend(tmp_path: Path) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + b"\0\0\0\0"

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", b"\0" * 13) + chunk(b"IDAT", b"\1" * 50)
    assert check_file(write(tmp_path, "a.png", png + chunk(b"IEND", b""))) == Integrity("ok", "photo", "png")
    assert check_file(write(tmp_path, "b.png", png)).status == "damaged"
    assert check_file(write(tmp_path, "c.png", png[:-20])).status == "damaged"


@pytest.mark.parametrize(
    "data, container",
    [
        (b"ID3\x04\0\0\0\0\0\x0a" + b"\0" * 10 + b"\xff\xfb\x90\x64" + b"\0" * 400, "mp3"),
        (b"\xff\xfb\x90\x64" + b"\0" * 400, "mp3"),
        (b"\xff\xf1\x50\x80\x02\x1f\xfc" + b"\0" * 400, "aac"),
        (b"#!AMR\n" + b"\x3c" * 100, "amr"),
        (b"#!AMR-WB\n" + b"\x3c" * 100, "amr"),
    ],
)
def test_audio_streams_recognised_but_not_checked(tmp_path: Path, data: bytes, container: str) -> None:
    result = check_file(write(tmp_path, "a.bin", data))
    assert (result.status, result.kind, result.container) == ("ok", "audio", container)
    assert "not checked" in (result.reason or "")


def test_random_bytes_are_not_media(tmp_path: Path) -> None:
    data = b"\x00" + random.Random(7).randbytes(4095)
    result = check_file(write(tmp_path, "a.mp4", data))
    assert result.status == "not_media" and result.kind is None
    assert data[:8].hex(" ") not in (result.reason or "")  # a reason never quotes the content


def test_text_file_named_mp4_is_not_media(tmp_path: Path) -> None:
    result = check_file(write(tmp_path, "clip.mp4", b"this is not a video, just a note\n"))
    assert result.status == "not_media" and "not a known media format" in (result.reason or "")
    assert "74 68 69 73" not in (result.reason or "") and "this is" not in (result.reason or "")


def test_symlink_and_folder_are_not_media_and_never_followed(tmp_path: Path) -> None:
    target = write(tmp_path, "real.mp4", ftyp() + moov(b"vide") + box(b"mdat"))
    (tmp_path / "link.mp4").symlink_to(target)
    result = check_file(tmp_path / "link.mp4")
    assert result.status == "not_media" and "symbolic link" in (result.reason or "")
    (tmp_path / "dir.mp4").mkdir()
    assert check_file(tmp_path / "dir.mp4").status == "not_media"
    os.mkfifo(tmp_path / "fifo.mp4")
    assert check_file(tmp_path / "fifo.mp4").status == "not_media"  # never blocks on open


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        check_file(tmp_path / "gone.mp4")


def test_unreadable_file_raises_oserror() -> None:
    """Run as an unprivileged user (root reads any file): the error reaches the caller."""
    import shutil
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="unreadable-"))
    try:
        folder.chmod(0o755)
        path = write(folder, "a.mp4", ftyp())
        path.chmod(0o600)
        code = (
            "import sys; from pathlib import Path; from ingest.container import check_file\n"
            "try:\n    check_file(Path(sys.argv[1]))\nexcept PermissionError:\n    sys.exit(7)\n"
        )
        # The unprivileged user may not be able to read the checkout: give it the module.
        package = folder / "lib" / "ingest"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        shutil.copy(Path(__file__).resolve().parents[2] / "ingest" / "container.py", package)
        for item in (folder / "lib", package, *package.iterdir()):
            item.chmod(0o755)
        result = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-c",
                code,
                str(path),
            ],
            cwd=folder,
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(folder / "lib")},
        )
        assert result.returncode == 7, result.stderr
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize(
    "content",
    [
        b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA\n",  # a key: not media
        b"ID3\x04\x00\x00\xff\xfe\xfd\xfc secret",  # an ID3 tag with impossible size bytes
        b"RIFF\x10\x00\x00\x00AVI LIST" + b"\0" * 8 + b"SECRETSECRET" * 4,  # an AVI gone wrong
    ],
)
def test_a_reason_never_quotes_the_content(tmp_path: Path, content: bytes) -> None:
    result = check_file(write(tmp_path, "kek.key", content))
    assert result.status != "ok"
    reason = result.reason or ""
    for quoted in (
        content[:8].hex(" "),
        content[:8].hex(),
        content[8:16].hex(" "),
        "SECRET",
        "PRIVATE",
        "secret",
    ):
        assert quoted not in reason, reason


def test_check_fd_judges_the_open_file_not_the_path(tmp_path: Path) -> None:
    path = write(tmp_path, "a.mp4", ftyp() + moov(b"vide") + box(b"mdat", b"\1" * 64))
    fd = os.open(path, os.O_RDONLY)
    try:
        path.unlink()
        os.symlink("/etc/passwd", path)
        assert check_fd(fd) == Integrity("ok", "video", "mp4")
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0  # read with pread: the offset is untouched
    finally:
        os.close(fd)


def test_sparse_4_gib_mp4_is_checked_in_milliseconds(tmp_path: Path) -> None:
    head = ftyp() + moov(b"vide", b"soun")
    mdat_size = 4 * GIB
    path = tmp_path / "big.mp4"
    with open(path, "wb") as fh:
        fh.write(head + struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", mdat_size))
        fh.truncate(len(head) + mdat_size)  # sparse: no data blocks written
    started = time.perf_counter()
    result = check_file(path)
    elapsed = time.perf_counter() - started
    assert result == Integrity("ok", "video", "mp4")
    assert elapsed < 0.1
    with open(path, "r+b") as fh:  # one byte short: the declaration no longer fits
        fh.truncate(len(head) + mdat_size - 1)
    started = time.perf_counter()
    result = check_file(path)
    assert time.perf_counter() - started < 0.1
    assert result.status == "damaged" and f"mdat declares {mdat_size} bytes" in (result.reason or "")


# --- real files made by ffmpeg ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    return {
        "faststart": make_video(d / "fast.mp4", seconds=1, faststart=True),
        "moov_at_end": make_video(d / "slow.mp4", seconds=1, faststart=False),
        "mov": make_video(d / "TA00716_JX0227_20201105093621.MOV", seconds=1, codec="hevc", faststart=False),
        "wav": make_audio(d / "note.WAV", seconds=1),
        "jpeg": make_photo(d / "photo.JPG"),
    }


@pytest.mark.parametrize(
    "key, expected",
    [
        ("faststart", Integrity("ok", "video", "mp4")),
        ("moov_at_end", Integrity("ok", "video", "mp4")),
        ("mov", Integrity("ok", "video", "mov")),
        ("wav", Integrity("ok", "audio", "wav")),
        ("jpeg", Integrity("ok", "photo", "jpeg")),
    ],
)
def test_real_files_are_ok(media: dict[str, Path], key: str, expected: Integrity) -> None:
    assert check_file(media[key]) == expected


@pytest.mark.parametrize("key", ["faststart", "moov_at_end", "mov", "wav", "jpeg"])
@pytest.mark.parametrize("keep", [0.05, 0.6, 0.98])
def test_truncated_real_files_are_damaged(
    media: dict[str, Path], tmp_path: Path, key: str, keep: float
) -> None:
    cut = truncate(media[key], keep, dest=tmp_path / media[key].name)
    result = check_file(cut)
    assert result.status == "damaged", result
    assert result.kind == check_file(media[key]).kind


def test_truncated_faststart_names_mdat(media: dict[str, Path], tmp_path: Path) -> None:
    result = check_file(truncate(media["faststart"], 0.6, dest=tmp_path / "cut.mp4"))
    assert (result.reason or "").startswith("mdat declares ")


def test_moov_at_end_never_written_is_moov_not_found(media: dict[str, Path], tmp_path: Path) -> None:
    data = media["moov_at_end"].read_bytes()
    at = data.rindex(b"moov") - 4  # the recorder stopped right before writing its index
    result = check_file(write(tmp_path, "died.mp4", data[:at]))
    assert result.status == "damaged" and "moov atom not found" in (result.reason or "")


def test_extension_does_not_decide(media: dict[str, Path], tmp_path: Path) -> None:
    renamed = tmp_path / "clip.MOV"
    shutil.copyfile(media["faststart"], renamed)
    assert check_file(renamed) == Integrity("ok", "video", "mp4")
    as_jpg = tmp_path / "note.jpg"
    shutil.copyfile(media["wav"], as_jpg)
    assert check_file(as_jpg).kind == "audio"
