"""The annual chart: round ticks, axes, a Chinese title naming the bureau, a value on each bar."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from config.charts import FONTS, bar_chart, nice_ticks

MONTHS = [0, 3, 12, 40, 41, 7, 0, 0, 120, 99, 5, 1]
CJK = next((f for f in FONTS if f.is_file()), None)


@pytest.mark.parametrize(
    ("peak", "ticks"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (5, [0, 1, 2, 3, 4, 5]),
        (120, [0, 20, 40, 60, 80, 100, 120]),
        (7, [0, 2, 4, 6, 8]),
    ],
)
def test_ticks_are_round_and_reach_the_peak(peak: int, ticks: list[int]) -> None:
    assert nice_ticks(peak) == ticks


def _dark(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    region = image.crop(box).convert("L")
    return sum(1 for p in region.tobytes() if p < 128)


@pytest.mark.skipif(CJK is None, reason="no CJK font installed (fonts-noto-cjk or fonts-wqy-zenhei)")
def test_the_chart_has_axes_ticks_bars_and_a_chinese_title(tmp_path: Path) -> None:
    drawn = bar_chart(tmp_path / "c.png", year=2020, unit="开封市城市管理局", values=MONTHS)
    assert drawn.font == CJK
    image = Image.open(drawn.path)
    assert image.size == (1200, 600)
    # The axes: a dark vertical line at x=110 and a horizontal one at the plot's foot (y=510).
    assert _dark(image, (109, 100, 112, 500)) > 300
    assert _dark(image, (120, 509, 1150, 512)) > 2000
    # The tallest bar (September, 120) reaches the top tick; an empty month has no bar.
    slot = (1200 - 110 - 40) / 12
    september = int(110 + 8.5 * slot)
    assert image.getpixel((september, 95)) == (52, 101, 164)
    july = int(110 + 6.5 * slot)
    assert image.getpixel((july, 300))[2] != 164  # no bar: gridline or white
    # The title is drawn in the CJK font: the same text in Pillow's own font (no CJK glyphs)
    # draws boxes or nothing, and never the same pixels.
    plain = bar_chart(tmp_path / "p.png", year=2020, unit="开封市城市管理局", values=MONTHS, fonts=())
    assert plain.font is None
    title = (0, 0, 1200, 60)
    assert _dark(image, title) > 500
    assert Image.open(plain.path).crop(title).tobytes() != image.crop(title).tobytes()


def test_english_by_the_language_setting(tmp_path: Path) -> None:
    drawn = bar_chart(tmp_path / "e.png", year=2020, unit="KZCG", values=MONTHS, lang="en")
    assert Image.open(drawn.path).size == (1200, 600)
