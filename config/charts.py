"""A bar chart as a PNG (Pillow only): recordings per month for the annual report."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def bar_chart(path: Path, title: str, labels: list[str], values: list[int]) -> Path:
    width, height, margin = 900, 420, 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((margin, 18), title, fill="black", font=font)
    top, bottom = 50, height - margin
    peak = max(values) or 1
    slot = (width - 2 * margin) / max(1, len(values))
    draw.line([(margin, bottom), (width - margin, bottom)], fill="black")
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x0 = margin + i * slot + slot * 0.15
        x1 = margin + (i + 1) * slot - slot * 0.15
        y0 = bottom - (bottom - top) * value / peak
        draw.rectangle([x0, y0, x1, bottom], fill=(52, 101, 164))
        draw.text((x0, bottom + 8), label, fill="black", font=font)
        draw.text((x0, y0 - 14), str(value), fill="black", font=font)
    image.save(path, "PNG")
    return path
