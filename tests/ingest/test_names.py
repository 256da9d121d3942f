from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

import pytest

from catalog.errors import InvalidInput
from config.settings import DEFAULT_FILENAME_PATTERNS
from ingest.names import (
    NameFacts,
    companions_of,
    compile_patterns,
    find_sn_txt,
    is_companion,
    parse_path,
    read_sn_txt,
    safe_display,
    sidecar_for,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
PATTERNS = compile_patterns(DEFAULT_FILENAME_PATTERNS)


def parse(relpath: str, sn_officer: str | None = None) -> NameFacts:
    return parse_path(PurePosixPath(relpath), PATTERNS, SHANGHAI, sn_officer=sn_officer)


# --- patterns ---------------------------------------------------------------------------------


def test_compile_patterns_keeps_order() -> None:
    compiled = compile_patterns(DEFAULT_FILENAME_PATTERNS)
    assert [p.pattern for p in compiled] == DEFAULT_FILENAME_PATTERNS


def test_compile_patterns_names_the_bad_one() -> None:
    with pytest.raises(InvalidInput) as err:
        compile_patterns([DEFAULT_FILENAME_PATTERNS[0], r"^(?P<device>[A-Z+$"])
    assert "pattern 1" in err.value.message and "[A-Z+$" in err.value.message


def test_compile_patterns_refuses_unknown_groups() -> None:
    with pytest.raises(InvalidInput) as err:
        compile_patterns([r"^(?P<serial>\w+)\.mp4$"])
    assert "serial" in err.value.message and err.value.hint


# --- file names -------------------------------------------------------------------------------


def test_at_form_gives_device_start_and_sequence() -> None:
    facts = parse("1111111@201506250850560000.mp4")
    assert facts.device == "1111111"
    assert facts.start == datetime(2015, 6, 25, 8, 50, 56, tzinfo=SHANGHAI)
    assert facts.start.astimezone(UTC) == datetime(2015, 6, 25, 0, 50, 56, tzinfo=UTC)
    assert facts.seq == "0000" and facts.officer is None and facts.marker is None
    assert facts.kind == "video" and not facts.important
    assert facts.sources == {"device": "filename", "start": "filename", "seq": "filename"}
    assert facts.notes == []


def test_at_form_with_five_digit_sequence_and_marker() -> None:
    facts = parse("A123456@2020110508505612345_SOS.MP4")
    assert (facts.device, facts.seq, facts.marker, facts.important) == ("A123456", "12345", "SOS", True)
    assert facts.sources["important"] == "filename"


def test_underscore_form_gives_officer_and_reads_extension_in_any_case() -> None:
    facts = parse("TA00716_JX0227_20170623093621.MOV")
    assert (facts.device, facts.officer, facts.seq, facts.kind) == ("TA00716", "JX0227", None, "video")
    assert facts.start == datetime(2017, 6, 23, 9, 36, 21, tzinfo=SHANGHAI)
    assert facts.sources == {"device": "filename", "officer": "filename", "start": "filename"}


def test_underscore_form_with_sequence_and_important_marker() -> None:
    facts = parse("TA00716_JX0227_20170623093621_3_IMP.mp4")
    assert (facts.seq, facts.marker, facts.important) == ("3", "IMP", True)


@pytest.mark.parametrize(
    "name, kind",
    [
        ("TA00716_JX0227_20170623093621.WAV", "audio"),
        ("TA00716_JX0227_20170623093621.amr", "audio"),
        ("TA00716_JX0227_20170623093621.JPG", "photo"),
        ("TA00716_JX0227_20170623093621.jpeg", "photo"),
        ("TA00716_JX0227_20170623093621.ts", "video"),
        ("TA00716_JX0227_20170623093621.txt", None),
    ],
)
def test_kind_comes_from_the_extension(name: str, kind: str | None) -> None:
    assert parse(name).kind == kind


def test_impossible_date_gives_no_start_and_a_note() -> None:
    facts = parse("TA00716_JX0227_20201345093621.mp4")
    assert facts.start is None and "start" not in facts.sources
    assert facts.device == "TA00716"
    assert any("20201345093621" in n and "not a real date" in n for n in facts.notes)


def test_time_that_does_not_exist_in_the_zone_is_kept_with_a_note() -> None:
    facts = parse_path(
        PurePosixPath("TA00716_JX0227_20210314023000.mp4"), PATTERNS, ZoneInfo("America/New_York")
    )
    assert facts.start is not None and any("clock change" in n for n in facts.notes)


def test_name_matching_no_pattern_still_gives_kind() -> None:
    facts = parse("holiday clip.MP4")
    assert facts.kind == "video" and facts.device is None and facts.start is None
    assert facts.sources == {} and facts.notes


def test_platform_alias_with_officer_name_does_not_crash() -> None:
    facts = parse("吴晓@201506250850560000.mp4")
    assert facts.device is None and facts.start is None and facts.kind == "video"
    assert facts.sources == {}
    assert any("alias" in n for n in facts.notes)


def test_non_ascii_digits_never_give_a_start() -> None:
    facts = parse("A123456@２０１５０６２５０８５０５６0000.mp4")
    assert facts.start is None and facts.device is None


def test_custom_pattern_first_match_wins() -> None:
    patterns = compile_patterns(
        [r"^(?P<officer>\d{6})-(?P<start>\d{14})\.(?P<ext>\w+)$", *DEFAULT_FILENAME_PATTERNS]
    )
    facts = parse_path(PurePosixPath("012345-20201105085056.mp4"), patterns, SHANGHAI)
    assert (facts.officer, facts.device) == ("012345", None)
    assert facts.start == datetime(2020, 11, 5, 8, 50, 56, tzinfo=SHANGHAI)


def test_name_with_trailing_newline_does_not_match() -> None:
    assert parse("1111111@201506250850560000.mp4\n").device is None


# --- folders and sn.txt -------------------------------------------------------------------------


def test_station_storage_folder_gives_the_device() -> None:
    facts = parse("1111111/20150625/mp4/clip.mp4")
    assert facts.device == "1111111" and facts.sources == {"device": "folder"}


def test_name_beats_folder_with_a_note() -> None:
    facts = parse("2222222/20150625/mp4/1111111@201506250850560000.mp4")
    assert facts.device == "1111111" and facts.sources["device"] == "filename"
    assert any("2222222" in n for n in facts.notes)


def test_dcim_parent_is_the_recorder() -> None:
    assert parse("TA00716/DCIM/100MEDIA/clip.mp4").device == "TA00716"
    assert parse("TA00716/dcim/clip.mp4").device == "TA00716"


def test_dcim_at_the_watched_root_gives_no_device() -> None:
    facts = parse("DCIM/100MEDIA/clip.mp4")
    assert facts.device is None and "device" not in facts.sources


def test_inbox_subfolder_is_the_device() -> None:
    assert parse("inbox/CAM0042/clip.mp4").device == "CAM0042"
    assert parse("Inbox/CAM0042/sub/clip.mp4").device == "CAM0042"


@pytest.mark.parametrize(
    "relpath",
    [
        "Record/20201105/clip.mp4",  # no digit: a generic folder name, not a serial
        "A1/20201105/clip.mp4",  # too short
        "A123456/20201345/clip.mp4",  # not a calendar date below it
        "A123456/clips/clip.mp4",  # nothing marks it as a device folder
        "20201104/20201105/clip.mp4",  # a date folder is not a serial
        "clip.mp4",
    ],
)
def test_folders_that_are_not_device_folders(relpath: str) -> None:
    assert parse(relpath).device is None


def test_nearest_device_folder_wins() -> None:
    facts = parse("inbox/CAM0001/B222222/20201105/mp4/clip.mp4")
    assert facts.device == "B222222"
    assert any("CAM0001" in n for n in facts.notes)


def test_sn_officer_fills_in_but_name_beats_it() -> None:
    a = parse("1111111@201506250850560000.mp4", sn_officer="012345")
    assert a.officer == "012345" and a.sources["officer"] == "sn.txt"
    b = parse("TA00716_JX0227_20170623093621.MOV", sn_officer="012345")
    assert b.officer == "JX0227" and b.sources["officer"] == "filename"


def test_find_sn_txt_nearest_and_not_above_the_root(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    clip = root / "A123456" / "DCIM" / "100MEDIA" / "clip.mp4"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"x")
    (tmp_path / "sn.txt").write_text("999999\n")  # above the watched root: never used
    assert find_sn_txt(clip, root) is None
    (root / "A123456" / "SN.TXT").write_text("012345\n")
    assert find_sn_txt(clip, root) == root / "A123456" / "SN.TXT"
    (clip.parent / "sn.txt").write_text("054321\n")
    assert find_sn_txt(clip, root) == clip.parent / "sn.txt"


def test_find_sn_txt_at_the_root_and_outside_it(tmp_path: Path) -> None:
    (tmp_path / "sn.txt").write_text("012345")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    assert find_sn_txt(clip, tmp_path) == tmp_path / "sn.txt"
    assert find_sn_txt(tmp_path / "other" / "clip.mp4", tmp_path / "elsewhere") is None


def test_find_sn_txt_ignores_symlinks_and_folders(tmp_path: Path) -> None:
    target = tmp_path.parent / f"{tmp_path.name}-secret.txt"
    target.write_text("012345")
    try:
        (tmp_path / "sn.txt").symlink_to(target)
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / "SN.txt").mkdir()
        assert find_sn_txt(tmp_path / "d" / "clip.mp4", tmp_path) is None
    finally:
        target.unlink()


@pytest.mark.parametrize(
    "content, officer",
    [
        (b"012345\n", "012345"),
        (b"\n\n  JX0227  \r\nsecond\n", "JX0227"),
        (b"\xef\xbb\xbf012345", "012345"),
        (b"", None),
        (b"   \n", None),
        (b"officer 012345\n", None),
        (b"\xff\xfe0\x001\x00", None),
        ("吴晓".encode(), None),
        (b"A" * 33, None),
        (b"A" * 32, "A" * 32),
        (b"\x00\x01\x02", None),
    ],
)
def test_read_sn_txt(tmp_path: Path, content: bytes, officer: str | None) -> None:
    path = tmp_path / "sn.txt"
    path.write_bytes(content)
    assert read_sn_txt(path) == officer


# --- companions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "clip.mp4.md5",
        "clip.MP4.SHA256",
        "clip.mp4.evidence.json",
        "clip.json",
        "clip.vtt",
        "clip.SRT",
        "sn.txt",
        "SN.TXT",
        "log-20201105.txt",
        "LOG-1",
        "recorder.log",
        "clip.mp4.part",
        "clip.tmp",
        "clip.mp4.crdownload",
        ".DS_Store",
        ".clip.mp4.swp",
    ],
)
def test_companions(name: str) -> None:
    assert is_companion(name)


@pytest.mark.parametrize(
    "name",
    [
        "clip.mp4",
        "clip.MOV",
        "clip.wav",
        "clip.jpg",
        "catalog.txt",
        "logo.png",
        "1111111@201506250850560000.mp4",
    ],
)
def test_not_companions(name: str) -> None:
    assert not is_companion(name)


def test_companions_of_lists_name_and_stem_sidecars(tmp_path: Path) -> None:
    clip = tmp_path / "TA00716_JX0227_20170623093621.MOV"
    clip.write_bytes(b"x")
    stem = clip.stem
    for name in [
        f"{clip.name}.md5",
        f"{clip.name}.SHA256",
        f"{clip.name}.evidence.json",
        f"{stem}.json",
        f"{stem}.vtt",
        f"{stem}.srt",
        f"{stem}.md5",  # md5 goes with the full name, not the stem
        f"{stem}.evidence.json",  # so does the evidence sidecar
        f"{stem}.WAV",
        "other.json",
        f"{stem}x.json",
    ]:
        (tmp_path / name).write_text("x")
    (tmp_path / f"{clip.name}.sha256").mkdir()  # a folder is never a companion
    assert [p.name for p in companions_of(clip)] == sorted(
        [
            f"{clip.name}.md5",
            f"{clip.name}.SHA256",
            f"{clip.name}.evidence.json",
            f"{stem}.json",
            f"{stem}.vtt",
            f"{stem}.srt",
        ]
    )


def test_companions_of_skips_symlinks(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    (tmp_path / "elsewhere").write_text("x")
    (tmp_path / "clip.mp4.md5").symlink_to(tmp_path / "elsewhere")
    assert companions_of(clip) == []
    assert sidecar_for(clip, ".md5") is None


def test_sidecar_for_prefers_the_exact_spelling(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    assert sidecar_for(clip, ".md5") is None
    (tmp_path / "clip.mp4.MD5").write_text("x")
    assert sidecar_for(clip, ".md5") == tmp_path / "clip.mp4.MD5"
    (tmp_path / "clip.mp4.md5").write_text("x")
    assert sidecar_for(clip, ".md5") == tmp_path / "clip.mp4.md5"
    (tmp_path / "clip.VTT").write_text("x")
    assert sidecar_for(clip, ".vtt", stem=True) == tmp_path / "clip.VTT"


def test_a_name_at_the_length_limit_has_no_sidecar_and_no_error(tmp_path: Path) -> None:
    clip = tmp_path / ("A" * 251 + ".mp4")
    clip.write_bytes(b"x")
    assert sidecar_for(clip, ".evidence.json") is None
    assert sidecar_for(clip, ".md5") is None
    assert companions_of(clip) == []
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert sidecar_for(clip, ".evidence.json", dir_fd=fd) is None
    finally:
        os.close(fd)


def test_sidecars_are_found_in_the_folder_held_not_the_path(tmp_path: Path) -> None:
    held = tmp_path / "held"
    held.mkdir()
    (held / "clip.mp4.md5").write_text("x")
    (held / "clip.json").write_text("{}")
    fd = os.open(held, os.O_RDONLY | os.O_DIRECTORY)
    try:
        held.rename(tmp_path / "moved")
        held.mkdir()  # what the path names now: an empty folder
        named = held / "clip.mp4"
        assert sidecar_for(named, ".md5", dir_fd=fd) == held / "clip.mp4.md5"
        assert [p.name for p in companions_of(named, dir_fd=fd)] == ["clip.json", "clip.mp4.md5"]
        assert sidecar_for(named, ".md5") is None
    finally:
        os.close(fd)


# --- safe display --------------------------------------------------------------------------------


def test_safe_display_escapes_what_could_break_a_log_line() -> None:
    raw = os.fsdecode(b"clip\xff\n\x1b[31m\\x.mp4")
    assert safe_display(raw) == "clip\\xff\\n\\x1b[31m\\\\x.mp4"
    assert safe_display(b"clip\xfe.mp4") == "clip\\xfe.mp4"
    assert safe_display("a\u202eb") == "a\\u202eb"
    assert safe_display(PurePosixPath("吴晓@201506250850560000.mp4")) == "吴晓@201506250850560000.mp4"
    assert safe_display("plain.mp4") == "plain.mp4"


def test_safe_display_never_raises() -> None:
    assert isinstance(safe_display(123), str)  # type: ignore[arg-type]
    assert safe_display("\ud800") == "\\ud800"


def test_undecodable_name_parses() -> None:
    name = os.fsdecode(b"TA00716_JX0227_20170623093621\xff.mp4")
    facts = parse(name)
    assert facts.kind == "video" and facts.device is None
    assert all("\udcff" not in n for n in facts.notes)
