"""The case file index (卷宗目录): a case's header and every item in item-number order.

``case_file`` builds the value (a read over the catalog), the case page prints it through its
print stylesheet, and ``render_pdf`` draws it as a PDF with reportlab (an optional extra:
``pip install evidence-archive[pdf]``) in a TrueType CJK font that it embeds, so the Chinese
text can be read, searched and copied from the file. reportlab embeds TrueType outlines only
(it refuses CFF fonts such as Noto CJK), hence Debian's fonts-wqy-zenhei by default.

Each item's SHA-256 is printed in full on a line of its own, so that text taken from the
PDF (or from paper, by hand) can be compared with ``sha256sum`` of the file.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from catalog.coverage import Gap, find_gaps
from catalog.errors import EvidenceError
from catalog.models import Case
from catalog.timeline import ItemView
from catalog.views import case_items

from . import custody_text as ct

# Debian's fonts-wqy-zenhei (TrueType collection); the settings may name another TrueType file.
DEFAULT_FONTS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/wqy-zenhei/wqy-zenhei.ttc"),
)


class PdfUnavailable(EvidenceError):
    """The server cannot draw PDFs: reportlab or the CJK TrueType font is missing."""


@dataclass(frozen=True)
class Line:
    """One item of the index; a protected item without the grant shows its number only."""

    item_no: str
    kind: str
    time: str
    officer: str
    duration: str
    number: str  # the archive number, or the document's type and number
    sha256: str
    last_verified: str
    withheld: bool = False


@dataclass(frozen=True)
class GapLine:
    item_no: str
    what: str  # the item's document type or kind
    time: str
    missing: str  # "recording" or "document"


@dataclass(frozen=True)
class CaseFile:
    number: str
    case_key: str
    title: str
    case_type: str
    unit: str
    status: str
    opened_on: date
    closed_on: date | None
    lines: list[Line]
    gaps: list[GapLine]
    printed_by: str
    printed_at: str  # local time with its offset
    zone_offset: str


def _duration(seconds: float | None, lang: str) -> str:
    return ct.value_text("duration_s", round(seconds), lang, ZoneInfo("UTC")) if seconds else ""


def case_file(
    session: Session,
    case: Case,
    *,
    show_protected: bool,
    zone: ZoneInfo,
    lang: str,
    printed_by: str,
    now: datetime,
    on_site_types: set[str],
    window: timedelta,
    items: list[ItemView] | None = None,
    found_gaps: list[Gap] | None = None,
) -> CaseFile:
    # The case page passes the items it has read and the gaps it has found already.
    items = case_items(session, case, custody=False) if items is None else items
    never = "未校验" if lang != "en" else "never"
    lines = []
    for i in sorted(items, key=lambda i: i.seq):
        if i.protected and not show_protected:
            lines.append(Line(i.item_no, "", "", "", "", "", "", "", withheld=True))
            continue
        checked = i.last_verified_at
        number = i.archive_no or " ".join(filter(None, [i.doc_type, i.doc_number]))
        lines.append(
            Line(
                item_no=i.item_no,
                kind=ct.value_text("kind", i.kind, lang, zone),
                time=ct.local_time(i.time, zone),
                officer=i.officer or "",
                duration=_duration(i.duration_s, lang),
                number=number,
                sha256=i.sha256,
                last_verified=ct.local_time(checked, zone) if checked else never,
            )
        )
    hidden = {i.item_no for i in items if i.protected and not show_protected}
    gaps = [
        GapLine(
            g.item_no,
            g.doc_type or ct.value_text("kind", g.kind, lang, zone),
            ct.local_time(g.time, zone),
            g.missing,
        )
        for g in (
            find_gaps(items, on_site_types=on_site_types, window=window) if found_gaps is None else found_gaps
        )
        if g.item_no not in hidden
    ]
    return CaseFile(
        number=case.number,
        case_key=case.case_key,
        title=case.title or "",
        case_type=case.case_type or "",
        unit=case.unit,
        status=case.status,
        opened_on=case.opened_on,
        closed_on=case.closed_on,
        lines=lines,
        gaps=gaps,
        printed_by=printed_by,
        printed_at=ct.local_time(now, zone, offset=True),
        zone_offset=ct.zone_offset(now, zone),
    )


# --- the PDF ---------------------------------------------------------------------------------

HEADINGS = {
    "zh": {
        "title": "卷宗目录",
        "number": "案号",
        "case_key": "案件代码",
        "case_title": "案由",
        "case_type": "案件类型",
        "unit": "办案单位",
        "opened": "立案日期",
        "closed": "结案日期",
        "item": "共同编号",
        "kind": "类别",
        "time": "时间",
        "officer": "执法人员",
        "duration": "时长",
        "archive": "档案号 / 文书",
        "verified": "最近校验",
        "gaps": "全过程记录缺口",
        "no_gaps": "无缺口",
        "recording": "缺少音像记录",
        "document": "缺少文书记录",
        "withheld": "受保护记录（涉密/隐私），不列出内容",
        "printed_by": "打印人",
        "printed_at": "打印时间",
        "page": "第 {n} 页",
        "items": "共 {n} 项",
        "status_open": "办理中",
        "status_closed": "已结案",
    },
    "en": {
        "title": "Case file index",
        "number": "Case number",
        "case_key": "Case key",
        "case_title": "Title",
        "case_type": "Case type",
        "unit": "Unit",
        "opened": "Opened",
        "closed": "Closed",
        "item": "Item number",
        "kind": "Kind",
        "time": "Time",
        "officer": "Officer",
        "duration": "Duration",
        "archive": "Archive number / document",
        "verified": "Last verified",
        "gaps": "Coverage gaps",
        "no_gaps": "No gaps",
        "recording": "no recording",
        "document": "no written record",
        "withheld": "Protected record (secret or private): content not listed",
        "printed_by": "Printed by",
        "printed_at": "Printed at",
        "page": "page {n}",
        "items": "{n} items",
        "status_open": "open",
        "status_closed": "closed",
    },
}


def find_font(candidates: tuple[Path, ...] = DEFAULT_FONTS) -> Path:
    for path in candidates:
        if path.is_file():
            return path
    raise PdfUnavailable(
        "no CJK TrueType font for the case file PDF",
        hint="install Debian's fonts-wqy-zenhei (apt-get install fonts-wqy-zenhei)",
    )


def _register_font(path: Path) -> str:
    """The font's name in reportlab, registered once per file."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    name = "CJK-" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if name not in pdfmetrics.getRegisteredFontNames():
        try:
            # A .ttc holds several faces; the first of wqy-zenhei is the proportional one.
            pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=0))
        except TTFError as exc:
            raise PdfUnavailable(
                f"{path} cannot be embedded in a PDF: {exc}",
                hint="name a TrueType font (.ttf/.ttc) such as fonts-wqy-zenhei's, not a CFF one",
            ) from None
    return name


def render_pdf(cf: CaseFile, lang: str = "zh", *, font: Path | None = None) -> bytes:
    """The case file as PDF bytes (A4 landscape; header, items, gaps; printed-by on each page)."""
    try:
        from reportlab.lib import colors
        from reportlab.lib.pagesizes import A4, landscape
        from reportlab.lib.styles import ParagraphStyle
        from reportlab.lib.units import mm
        from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table
    except ImportError:
        raise PdfUnavailable(
            "the case file PDF needs reportlab, which is not installed",
            hint="pip install 'evidence-archive[pdf]'",
        ) from None
    FONT = _register_font(find_font((font,) if font else DEFAULT_FONTS))
    h = HEADINGS["en" if lang == "en" else "zh"]
    text = ParagraphStyle("t", fontName=FONT, fontSize=8.5, leading=11, wordWrap="CJK")
    title = ParagraphStyle("h", fontName=FONT, fontSize=16, leading=20, spaceAfter=6)
    sub = ParagraphStyle("s", fontName=FONT, fontSize=11, leading=14, spaceBefore=8, spaceAfter=4)

    def p(value: str) -> Paragraph:
        from xml.sax.saxutils import escape

        return Paragraph(escape(value), text)

    status = h["status_" + cf.status]
    header = [
        [p(h["number"]), p(cf.number), p(h["case_key"]), p(cf.case_key)],
        [p(h["case_title"]), p(cf.title), p(h["case_type"]), p(cf.case_type)],
        [
            p(h["unit"]),
            p(cf.unit),
            p(h["opened"]),
            p(f"{cf.opened_on}{' — ' + str(cf.closed_on) if cf.closed_on else ''} · {status}"),
        ],
    ]
    story: list = [
        Paragraph(f"{h['title']}  {cf.number}", title),
        Table(
            header, colWidths=[28 * mm, 100 * mm, 28 * mm, 100 * mm], style=_grid(colors, FONT), hAlign="LEFT"
        ),
        Paragraph(f"{h['items'].format(n=len(cf.lines))}", sub),
    ]
    rows: list[list] = [
        [
            p(h["item"]),
            p(h["kind"]),
            p(f"{h['time']} ({cf.zone_offset})"),
            p(h["officer"]),
            p(h["duration"]),
            p(h["archive"]),
            p(h["verified"]),
        ]
    ]
    spans: list[tuple[Any, ...]] = []
    for line in cf.lines:
        if line.withheld:
            rows.append([p(line.item_no), p(h["withheld"]), "", "", "", "", ""])
            spans.append(("SPAN", (1, len(rows) - 1), (-1, len(rows) - 1)))
            continue
        rows.append(
            [
                p(line.item_no),
                p(line.kind),
                p(line.time),
                p(line.officer),
                p(line.duration),
                p(line.number),
                p(line.last_verified),
            ]
        )
        # The digest on a row of its own, unbroken, so it reads (and extracts) as one string.
        rows.append(["", f"SHA-256 {line.sha256}", "", "", "", "", ""])
        spans.append(("SPAN", (1, len(rows) - 1), (-1, len(rows) - 1)))
        spans.append(("SPAN", (0, len(rows) - 2), (0, len(rows) - 1)))
        spans.append(("FONT", (1, len(rows) - 1), (1, len(rows) - 1), "Courier", 8.5))
    widths = [42 * mm, 16 * mm, 36 * mm, 28 * mm, 22 * mm, 80 * mm, 36 * mm]
    story.append(Table(rows, colWidths=widths, repeatRows=1, style=_grid(colors, FONT, spans), hAlign="LEFT"))
    story.append(Paragraph(h["gaps"], sub))
    if cf.gaps:
        gap_rows = [[p(g.item_no), p(g.what), p(g.time), p(h[g.missing])] for g in cf.gaps]
        story.append(
            Table(
                gap_rows,
                colWidths=[42 * mm, 60 * mm, 40 * mm, 50 * mm],
                style=_grid(colors, FONT),
                hAlign="LEFT",
            )
        )
    else:
        story.append(p(h["no_gaps"]))
    story.append(Spacer(1, 4 * mm))

    footer = (
        f"{h['printed_by']} {cf.printed_by} · {h['printed_at']} {cf.printed_at} · {cf.number} ({cf.case_key})"
    )

    def on_page(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 8)
        canvas.drawString(15 * mm, 8 * mm, footer)
        canvas.drawRightString(landscape(A4)[0] - 15 * mm, 8 * mm, h["page"].format(n=doc.page))
        canvas.restoreState()

    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=landscape(A4),
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=12 * mm,
        bottomMargin=15 * mm,
        title=f"{h['title']} {cf.number}",
        author=cf.printed_by,
    )
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return out.getvalue()


def _grid(colors, font: str, extra: list | None = None) -> object:
    from reportlab.platypus import TableStyle

    return TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("FONT", (0, 0), (-1, -1), font, 8.5),
            *(extra or []),
        ]
    )
