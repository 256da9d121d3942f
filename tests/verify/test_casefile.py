"""The case file index: built from the catalog in item-number order, drawn as a PDF whose text
(Chinese included) can be taken out again."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from archive.encryption import generate_kek
from archive.links import link_recordings
from catalog import cases
from verify.casefile import CaseFile, GapLine, Line, PdfUnavailable, case_file, render_pdf

ZONE = ZoneInfo("Asia/Shanghai")
NOTO = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


@pytest.fixture
def store(local_store):
    """The local store only: what is read here is the catalog; storage is tested elsewhere."""
    return local_store


def sample(lines: int = 3) -> CaseFile:
    return CaseFile(
        number="开城管罚立〔2020〕42号",
        case_key="KZCG-2020-0042",
        title="占道经营",
        case_type="市容管理",
        unit="KZCG",
        status="open",
        opened_on=date(2020, 11, 5),
        closed_on=None,
        lines=[
            Line(
                f"KZCG-2020-0042-{n:03d}V",
                "视频",
                "2020-11-05 08:50:56",
                "JX0227",
                "1分5秒",
                f"KZCG-20201105-ST01-{n:04d}",
                f"{n:064x}",
                "未校验",
            )
            for n in range(1, lines + 1)
        ]
        + [Line("KZCG-2020-0042-999P", "", "", "", "", "", "", "", withheld=True)],
        gaps=[GapLine("KZCG-2020-0042-001V", "视频", "2020-11-05 08:50:56", "document")],
        printed_by="审计员甲",
        printed_at="2026-11-30 20:00:00 +08:00",
        zone_offset="UTC+08:00",
    )


def text_of(pdf: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)


def test_the_pdf_holds_every_item_and_its_digest_as_text_with_the_chinese_readable() -> None:
    cf = sample(40)  # more than a page: the heading repeats, the footer is on every page
    pdf = render_pdf(cf)
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 2
    text = text_of(pdf)
    for line in cf.lines:
        assert line.item_no in text
        if not line.withheld:
            assert line.sha256 in text
    assert "卷宗目录" in text and "开城管罚立〔2020〕42号" in text and "缺少文书记录" in text
    assert "受保护记录" in text and "2020-11-05 · 办理中" in text
    for page in reader.pages:
        assert "打印人 审计员甲" in page.extract_text() and "共同编号" in page.extract_text()
    assert embedded_truetype(reader), "the CJK font is referred to, not embedded"


def embedded_truetype(reader: PdfReader) -> set[str]:
    """Names of the fonts whose TrueType outlines the file carries (``/FontFile2``)."""
    found = set()
    for page in reader.pages:
        for ref in page["/Resources"]["/Font"].values():
            font = ref.get_object()
            descriptor = font.get("/FontDescriptor")
            if descriptor is None and "/DescendantFonts" in font:
                descriptor = font["/DescendantFonts"][0].get_object().get("/FontDescriptor")
            if descriptor is not None and "/FontFile2" in descriptor.get_object():
                found.add(str(font["/BaseFont"]))
    return found


def test_english_by_the_language_setting() -> None:
    text = text_of(render_pdf(sample(1), "en"))
    assert "Case file index" in text and "Item number" in text and "Printed by" in text


def test_without_the_font_the_pdf_is_refused_with_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(PdfUnavailable) as refused:
        render_pdf(sample(1), font=tmp_path / "missing.ttc")
    assert "fonts-wqy-zenhei" in str(refused.value)


@pytest.mark.skipif(not NOTO.is_file(), reason="fonts-noto-cjk is not installed")
def test_a_cff_font_is_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(PdfUnavailable) as refused:
        render_pdf(sample(1), font=NOTO)
    assert "TrueType" in str(refused.value)


def test_a_fake_font_file_is_refused_not_a_crash(tmp_path: Path) -> None:
    fake = tmp_path / "fake.ttf"
    fake.write_bytes(b"\x00\x01\x00\x00" + b"not a font" * 10)
    with pytest.raises(PdfUnavailable):
        render_pdf(sample(1), font=fake)


def test_the_index_is_in_item_number_order_and_a_protected_item_shows_its_number_only(env) -> None:
    case = env.case()
    kek = generate_kek()
    first = env.recording(1, start_time=datetime(2020, 11, 5, 1, tzinfo=UTC))
    secret = env.recording(2, protected=True, kek=kek, start_time=datetime(2020, 11, 4, tzinfo=UTC))
    early = env.recording(3, start_time=datetime(2020, 11, 3, tzinfo=UTC))
    link_recordings(env.as_("r"), case.number, [first.archive_no, secret.archive_no, early.archive_no])
    with env.sessions() as s:
        found = cases.get_case(s, case.case_key)
        kwargs = dict(zone=ZONE, lang="zh", printed_by="aud", now=datetime(2026, 1, 1, tzinfo=UTC))
        kwargs |= dict(on_site_types=set(), window=timedelta(hours=1))
        without = case_file(s, found, show_protected=False, **kwargs)
        granted = case_file(s, found, show_protected=True, **kwargs)
    numbers = [line.item_no for line in without.lines]
    assert numbers == sorted(numbers) and len(numbers) == 3  # item-number order, not time order
    hidden = without.lines[1]
    assert hidden.withheld and hidden.sha256 == "" and hidden.number == "" and hidden.time == ""
    assert granted.lines[1].sha256 == secret.sha256 and granted.lines[1].number == secret.archive_no
    assert (
        without.lines[0].time == "2020-11-05 09:00:00" and without.printed_at == "2026-01-01 08:00:00 +08:00"
    )
    pdf = text_of(render_pdf(without))
    assert secret.sha256 not in pdf and secret.archive_no not in pdf and numbers[1] in pdf


def test_without_reportlab_the_pdf_is_refused_with_what_to_install(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "reportlab.platypus", None)  # an import of it fails
    with pytest.raises(PdfUnavailable) as refused:
        render_pdf(sample(1))
    assert "evidence-archive[pdf]" in str(refused.value)
