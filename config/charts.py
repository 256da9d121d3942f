"""The annual report's chart as a PNG, drawn with Pillow: recordings per month.

A chart a bureau can print: a title in the report's language naming the bureau and the
year, a y axis with gridlines, ticks at round numbers and its unit, a labelled x axis with the
months, and each bar's value. The CJK text needs a font with CJK glyphs: the first found of
``FONTS`` (Noto CJK or WenQuanYi, as Debian installs them); without one the chart is still drawn
and the text is left to Pillow's own font, which has no CJK glyphs, so ``bar_chart`` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONTS = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
)

TEXTS = {
    "zh": {
        "title": "{unit} {year}年执法音像记录数量（按月）",
        "y": "记录数（条）",
        "x": "月份",
        "month": "{m}月",
        "total": "全年合计 {n} 条",
    },
    "en": {
        "title": "{unit}: recordings per month, {year}",
        "y": "Recordings (count)",
        "x": "Month",
        "month": "{m:02d}",
        "total": "Year total: {n}",
    },
}


@dataclass(frozen=True)
class ChartResult:
    path: Path
    font: Path | None  # None: no CJK font was found, the Chinese text will not show


def nice_ticks(peak: int, most: int = 6) -> list[int]:
    """Round tick values from 0 to at least ``peak`` (1, 2 or 5 times a power of ten apart)."""
    if peak <= 0:
        return [0, 1]
    raw = peak / most
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(1, int(step))
    top = step * math.ceil(peak / step)
    return list(range(0, top + 1, step))


def _font(
    size: int, fonts: tuple[Path, ...]
) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, Path | None]:
    for path in fonts:
        if path.is_file():
            return ImageFont.truetype(str(path), size), path
    return ImageFont.load_default(size), None


def bar_chart(
    path: Path,
    *,
    year: int,
    unit: str,
    values: list[int],
    lang: str = "zh",
    fonts: tuple[Path, ...] = FONTS,
) -> ChartResult:
    """Twelve monthly counts as a bar chart (1200 x 600 PNG)."""
    texts = TEXTS["en" if lang == "en" else "zh"]
    width, height = 1200, 600
    left, right, top, bottom = 110, 40, 90, 90
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    title_font, used = _font(28, fonts)
    font, _ = _font(18, fonts)
    small, _ = _font(15, fonts)

    title = texts["title"].format(unit=unit, year=year)
    draw.text((width / 2, 24), title, fill="black", font=title_font, anchor="mt")
    draw.text((width - right, 64), texts["total"].format(n=sum(values)), fill="#444", font=small, anchor="rt")

    plot_w, plot_h = width - left - right, height - top - bottom
    ticks = nice_ticks(max(values, default=0))
    scale = plot_h / ticks[-1]
    for tick in ticks:
        y = top + plot_h - tick * scale
        draw.line([(left, y), (left + plot_w, y)], fill="#ddd" if tick else "black", width=1)
        draw.line([(left - 6, y), (left, y)], fill="black", width=1)
        draw.text((left - 10, y), f"{tick:,}", fill="black", font=small, anchor="rm")
    draw.line([(left, top), (left, top + plot_h)], fill="black", width=2)
    draw.line([(left, top + plot_h), (left + plot_w, top + plot_h)], fill="black", width=2)

    # The y axis's name and unit, written upright above the axis (CJK reads well that way).
    draw.text((left, top - 14), texts["y"], fill="black", font=font, anchor="mb")
    draw.text((left + plot_w / 2, height - 24), texts["x"], fill="black", font=font, anchor="mb")

    slot = plot_w / max(1, len(values))
    for i, value in enumerate(values):
        x0, x1 = left + i * slot + slot * 0.18, left + (i + 1) * slot - slot * 0.18
        y0 = top + plot_h - value * scale
        if value:
            draw.rectangle([x0, y0, x1, top + plot_h - 1], fill=(52, 101, 164))
        draw.text(((x0 + x1) / 2, y0 - 4), f"{value:,}", fill="black", font=small, anchor="mb")
        draw.text(
            ((x0 + x1) / 2, top + plot_h + 10),
            texts["month"].format(m=i + 1),
            fill="black",
            font=font,
            anchor="mt",
        )
    image.save(path, "PNG")
    return ChartResult(path, used)
