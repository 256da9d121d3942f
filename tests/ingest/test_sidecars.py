from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from catalog.errors import InvalidInput
from ingest.sidecars import (
    EvidenceSidecar,
    check_vendor_checksum,
    file_digest,
    file_md5,
    read_evidence_sidecar,
    vendor_checksum,
    vendor_checksums,
)

CONTENT = b"recording bytes " * 1000
MD5 = hashlib.md5(CONTENT).hexdigest()
SHA256 = hashlib.sha256(CONTENT).hexdigest()
NAME = "TA00716_JX0227_20170623093621.MOV"


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / NAME
    path.write_bytes(CONTENT)
    return path


def side(clip: Path, suffix: str, text: str | bytes) -> Path:
    path = clip.with_name(clip.name + suffix)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# --- vendor checksums ---------------------------------------------------------------------------


def test_no_sidecar_gives_none(clip: Path) -> None:
    assert vendor_checksum(clip) is None
    assert check_vendor_checksum(clip, {"sha256": SHA256}) is None


@pytest.mark.parametrize(
    "text",
    [
        f"{MD5}\n",
        f"{MD5.upper()}",
        f"{MD5}  {NAME}\n",
        f"{MD5} *{NAME}\r\n",
        f"{MD5} {NAME}\n",
        f"\ufeff# made by the recorder\n\n{MD5}  ./DCIM/{NAME}\n",
        f"{MD5}  D:\\DCIM\\{NAME}\r\n",
        f"MD5 ({NAME}) = {MD5}\n",
        f"{'0' * 32}  other.MOV\n{MD5}  {NAME}\n{'1' * 32}  third.MOV\n",
    ],
)
def test_md5_sidecar_forms(clip: Path, text: str) -> None:
    side(clip, ".md5", text)
    assert vendor_checksum(clip) == ("md5", MD5)


def test_sha256_sidecar_and_preference(clip: Path) -> None:
    side(clip, ".sha256", f"{SHA256}  {NAME}\n")
    assert vendor_checksum(clip) == ("sha256", SHA256)
    side(clip, ".md5", MD5)
    assert vendor_checksum(clip) == ("sha256", SHA256)
    assert vendor_checksums(clip) == [("sha256", SHA256), ("md5", MD5)]


def test_sidecar_suffix_in_upper_case(clip: Path) -> None:
    side(clip, ".MD5", MD5)
    assert vendor_checksum(clip) == ("md5", MD5)


def test_escaped_gnu_line_for_a_name_with_a_newline(tmp_path: Path) -> None:
    clip = tmp_path / "a\nb.mp4"
    clip.write_bytes(CONTENT)
    side(clip, ".md5", f"\\{MD5}  a\\nb.mp4\n")
    assert vendor_checksum(clip) == ("md5", MD5)


def test_undecodable_name_matches(tmp_path: Path) -> None:
    clip = tmp_path / os.fsdecode(b"clip\xff.mp4")
    clip.write_bytes(CONTENT)
    side(clip, ".md5", MD5.encode() + b"  clip\xff.mp4\n")
    assert vendor_checksum(clip) == ("md5", MD5)


@pytest.mark.parametrize(
    "text, why",
    [
        ("", "no checksum"),
        ("# only a comment\n", "no checksum"),
        ("not a digest\n", "line 1 is not a checksum line"),
        (f"{MD5[:-1]}\n", "31 hex digits"),
        (f"{SHA256}\n", "64 hex digits"),
        (f"{MD5}  other.MOV\n", "no line names"),
        (f"{MD5}\n{MD5}  {NAME}\n", "without a file name"),
        (f"{MD5}  {NAME}\n{'0' * 32}  {NAME}\n", "different digests"),
        (f"SHA256 ({NAME}) = {SHA256}\n", "SHA256 line in a md5 file"),
    ],
)
def test_malformed_md5_sidecar(clip: Path, text: str, why: str) -> None:
    sidecar = side(clip, ".md5", text)
    with pytest.raises(InvalidInput) as err:
        vendor_checksum(clip)
    assert why in err.value.message
    assert str(sidecar.name) in err.value.message and err.value.hint


def test_oversized_checksum_file_is_refused(clip: Path) -> None:
    side(clip, ".md5", "#" * (1024 * 1024 + 10))
    with pytest.raises(InvalidInput, match="larger than"):
        vendor_checksum(clip)


def test_check_vendor_checksum_uses_given_digests(clip: Path) -> None:
    side(clip, ".md5", f"{MD5.upper()}  {NAME}\n")
    assert check_vendor_checksum(clip, {"md5": MD5, "sha256": SHA256}) == ("md5", True)
    assert check_vendor_checksum(clip, {"md5": "0" * 32}) == ("md5", False)


def test_check_vendor_checksum_computes_a_missing_digest(clip: Path) -> None:
    side(clip, ".md5", MD5)
    assert check_vendor_checksum(clip, {"sha256": SHA256}) == ("md5", True)
    clip.write_bytes(CONTENT + b"changed")
    assert check_vendor_checksum(clip, {}) == ("md5", False)


def test_check_vendor_checksum_reports_any_mismatch(clip: Path) -> None:
    side(clip, ".sha256", SHA256)
    side(clip, ".md5", "f" * 32)
    assert check_vendor_checksum(clip, {"md5": MD5, "sha256": SHA256}) == ("md5", False)


def test_streaming_digests(clip: Path) -> None:
    assert file_md5(clip) == MD5
    assert file_digest(clip, "sha256") == SHA256


# --- evidence sidecar -----------------------------------------------------------------------------


def evidence(clip: Path, doc: object) -> Path:
    return side(clip, ".evidence.json", json.dumps(doc, ensure_ascii=False))


def test_no_evidence_sidecar(clip: Path) -> None:
    assert read_evidence_sidecar(clip) is None


def test_full_evidence_sidecar(clip: Path) -> None:
    path = evidence(
        clip,
        {
            "case": "开城管罚立〔2020〕42号",
            "important": True,
            "protected": False,
            "note": "现场执法，当事人拒绝签字\n第二行",
            "flags": {"obstruction": True, "emergency": False},
        },
    )
    assert read_evidence_sidecar(clip) == EvidenceSidecar(
        path=path,
        case="开城管罚立〔2020〕42号",
        important=True,
        protected=False,
        note="现场执法，当事人拒绝签字\n第二行",
        flags={"obstruction": True, "emergency": False},
    )


def test_every_key_is_optional(clip: Path) -> None:
    path = evidence(clip, {})
    assert read_evidence_sidecar(clip) == EvidenceSidecar(path=path)
    evidence(clip, {"flags": {"emergency": True}})
    got = read_evidence_sidecar(clip)
    assert got is not None and got.flags == {"emergency": True} and got.important is None
    assert got.emergency is True and got.obstruction is None


def test_byte_order_mark_is_accepted(clip: Path) -> None:
    side(clip, ".evidence.json", b"\xef\xbb\xbf" + json.dumps({"important": True}).encode())
    got = read_evidence_sidecar(clip)
    assert got is not None and got.important is True


def test_case_is_stripped(clip: Path) -> None:
    evidence(clip, {"case": "  案〔2020〕1234号 "})
    got = read_evidence_sidecar(clip)
    assert got is not None and got.case == "案〔2020〕1234号"


@pytest.mark.parametrize(
    "doc, key, why",
    [
        ({"importnat": True}, "importnat", "not a known key"),
        ({"important": "yes"}, "important", "true or false"),
        ({"important": 1}, "important", "true or false"),
        ({"protected": None}, "protected", "not null"),
        ({"case": 42}, "case", "must be a string"),
        ({"case": "   "}, "case", "is empty"),
        ({"case": "a\u0000b"}, "case", "control characters"),
        ({"case": "x" * 201}, "case", "at most 200"),
        ({"note": "x" * 2001}, "note", "at most 2000"),
        ({"note": ["a"]}, "note", "not an array"),
        ({"flags": True}, "flags", "must be an object"),
        ({"flags": {"obstruction": "true"}}, "flags.obstruction", "true or false"),
        ({"flags": {"fire": True}}, "flags.fire", "not a known flag"),
    ],
)
def test_bad_values_name_key_and_file(clip: Path, doc: object, key: str, why: str) -> None:
    path = evidence(clip, doc)
    with pytest.raises(InvalidInput) as err:
        read_evidence_sidecar(clip)
    assert repr(key) in err.value.message and why in err.value.message
    assert path.name in err.value.message
    assert err.value.details == {"file": str(path), "key": key}
    assert err.value.hint


@pytest.mark.parametrize(
    "raw, why",
    [
        (b'{"important": true,}', "not valid JSON"),
        (b'{"note": "\xc0\xaf"}', "not UTF-8"),
        (b'{"important": true, "important": false}', "appears twice"),
        (b'["important"]', "JSON object"),
        (b'{"note": "\\ud800"}', "invalid Unicode"),
        (b" " * (64 * 1024 + 1), "larger than"),
    ],
)
def test_unreadable_sidecars(clip: Path, raw: bytes, why: str) -> None:
    path = side(clip, ".evidence.json", raw)
    with pytest.raises(InvalidInput) as err:
        read_evidence_sidecar(clip)
    assert why in err.value.message and path.name in err.value.message


def test_note_keeps_newlines_and_tabs(clip: Path) -> None:
    evidence(clip, {"note": "a\n\tb\r\n"})
    got = read_evidence_sidecar(clip)
    assert got is not None and got.note == "a\n\tb\r\n"
