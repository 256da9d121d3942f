from datetime import date

import pytest

from archive import layout
from archive.errors import StoreError


def test_keys_follow_the_design() -> None:
    day = date(2020, 11, 5)
    assert (
        layout.original_key("KZCG-20201105-ST01-0007", day, "mp4")
        == "originals/2020/11/05/KZCG-20201105-ST01-0007.mp4"
    )
    assert (
        layout.manifest_key("KZCG-20201105-ST01-0007", day)
        == "originals/2020/11/05/KZCG-20201105-ST01-0007.manifest.json"
    )
    assert (
        layout.derivative_key("A-1", "proxy", "abcdef0123456789", "mp4")
        == "derivatives/A-1/proxy-abcdef012345.mp4"
    )
    assert (
        layout.document_key("KZCG-2020-0042", "KZCG-2020-0042-001D", "pdf")
        == "documents/KZCG-2020-0042/KZCG-2020-0042-001D.pdf"
    )
    assert layout.case_event_key("KZCG-2020-0042", 3) == "cases/KZCG-2020-0042/events/000003.json"
    assert layout.segment_key(1, 250) == "custody/segments/000000000001-000000000250.jsonl"
    assert layout.checkpoint_key(12) == "custody/checkpoints/00000012.json"
    assert layout.tombstone_key("KZCG-20201105-ST01-0007") == "tombstones/KZCG-20201105-ST01-0007.json"


@pytest.mark.parametrize(
    "name, ext",
    [
        ("吴晓@201506250850560000.MP4", "mp4"),
        ("a.MOV", "mov"),
        ("noext", "bin"),
        ("x.tar.gz", "gz"),
        ("evil.m/p4", "bin"),
        ("x.verylongext", "bin"),
        ("x.视频", "bin"),
    ],
)
def test_extensions_are_safe(name: str, ext: str) -> None:
    assert layout.extension(name) == ext


@pytest.mark.parametrize(
    "key", ["", "../etc/passwd", "a//b", "a/../b", "/abs", "a/./b", "原件/x", "a b", "a\\b", ".hidden/x"]
)
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(StoreError):
        layout.check_key(key)
