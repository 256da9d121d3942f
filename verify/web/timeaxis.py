"""The case page's time axis as plain values: rows, bars, marks, shaded gaps, ticks, zoom.

Written records are marks in the first row; recordings are bars in one row per officer (or
device, when the officer is unknown); the stretches covered by some recording are a strip
under the rows; each coverage gap (``catalog.coverage``) is shaded over the stretch the rule
looked at and explained in words. Positions are in SVG user units over a ``width`` wide
drawing; the template only draws what this module lays out. Only items the account may see
are given here: a protected item's place in time would tell its time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from catalog.coverage import Gap
from catalog.timeline import ItemView

MIN_SPAN = timedelta(minutes=1)
TICK_STEPS = [
    timedelta(seconds=s)
    for s in (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)
]
LEFT, WIDTH, ROW, TOP = 170, 1100, 30, 22
LANE = 22  # items of one row that would overlap are drawn in lanes one under the other
MARK_HALF = 9


@dataclass(frozen=True)
class Bar:
    item_no: str
    kind: str
    x: float
    w: float
    start: datetime
    end: datetime
    label: str
    clock_suspect: bool = False
    gap: bool = False
    lane: int = 0


@dataclass(frozen=True)
class Mark:
    item_no: str
    x: float
    time: datetime
    label: str
    gap: bool = False
    lane: int = 0


@dataclass
class Row:
    label: str
    y: float
    bars: list[Bar] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    lanes: int = 1

    @property
    def height(self) -> float:
        return ROW + (self.lanes - 1) * LANE

    def lane_y(self, lane: int) -> float:
        return self.y + lane * LANE


def _lanes(row: Row) -> Row:
    """Puts each bar and mark in the first lane where it overlaps nothing drawn before it."""
    ends: list[float] = []

    def lane_for(x0: float, x1: float) -> int:
        for n, end in enumerate(ends):
            if x0 > end + 1:
                ends[n] = x1
                return n
        ends.append(x1)
        return len(ends) - 1

    spans = [(b.x, b.x + b.w, "b", n) for n, b in enumerate(row.bars)]
    spans += [(m.x - MARK_HALF, m.x + MARK_HALF, "m", n) for n, m in enumerate(row.marks)]
    bars, marks = list(row.bars), list(row.marks)
    for x0, x1, what, n in sorted(spans):
        lane = lane_for(x0, x1)
        if what == "b":
            bars[n] = replace(bars[n], lane=lane)
        else:
            marks[n] = replace(marks[n], lane=lane)
    row.bars, row.marks, row.lanes = bars, marks, max(len(ends), 1)
    return row


@dataclass(frozen=True)
class Shade:
    item_no: str
    x: float
    w: float
    missing: str  # "recording" or "document"
    local_time: str  # when the item is, in the settings' zone (HH:MM)
    minutes: str  # the rule's window
    doc_type: str | None = None
    officer: str | None = None


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass
class Axis:
    start: datetime
    end: datetime
    whole: tuple[datetime, datetime]
    rows: list[Row]
    shades: list[Shade]
    covered: list[tuple[float, float]]
    ticks: list[Tick]
    width: int = WIDTH
    left: int = LEFT
    height: float = 0.0
    covered_y: float = 0.0

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    def zoom(self, factor: float, shift: float = 0.0) -> tuple[datetime, int]:
        """(centre, span in seconds) of the view zoomed by ``factor`` and moved by ``shift``
        spans, kept within the whole case and at least a minute wide."""
        whole = self.whole[1] - self.whole[0]
        span = min(max(self.span * factor, MIN_SPAN), whole)
        centre = self.start + self.span / 2 + self.span * shift
        low, high = self.whole[0] + span / 2, self.whole[1] - span / 2
        centre = min(max(centre, low), high) if low <= high else self.whole[0] + whole / 2
        return centre, int(span.total_seconds())


def _end(item: ItemView) -> datetime:
    assert item.time is not None
    return item.time + timedelta(seconds=item.duration_s or 0)


def whole_case(items: list[ItemView]) -> tuple[datetime, datetime] | None:
    """The case's stretch of time with a margin of 5 % each side (at least a minute wide)."""
    dated = [i for i in items if i.time is not None]
    if not dated:
        return None
    start = min(i.time for i in dated if i.time is not None)
    end = max(_end(i) for i in dated)
    span = max(end - start, MIN_SPAN)
    margin = span * 0.05
    return start - margin, start + span + margin


def view(
    whole: tuple[datetime, datetime], centre: datetime | None, seconds: float | None
) -> tuple[datetime, datetime]:
    """The stretch shown: the whole case, or ``seconds`` around ``centre`` (a minute at least)."""
    if centre is None or not seconds:
        return whole
    span = max(timedelta(seconds=seconds), MIN_SPAN)
    return centre - span / 2, centre + span / 2


def row_label(item: ItemView) -> str:
    if item.officer:
        return f"officer:{item.officer}"
    if item.device:
        return f"device:{item.device}"
    return "unknown"


def layout(
    items: list[ItemView],
    gaps: list[Gap],
    *,
    zone: ZoneInfo,
    window: timedelta,
    whole: tuple[datetime, datetime],
    shown: tuple[datetime, datetime],
    suspect: frozenset[str] = frozenset(),
) -> Axis:
    start, end = shown
    scale = (WIDTH - LEFT) / max((end - start).total_seconds(), 1.0)

    def x_of(moment: datetime) -> float:
        return round(LEFT + (moment - start).total_seconds() * scale, 1)

    def clip(a: datetime, b: datetime) -> tuple[float, float] | None:
        if b < start or a > end:
            return None
        x0, x1 = x_of(max(a, start)), x_of(min(b, end))
        return x0, max(x1 - x0, 2.0)  # a short recording stays visible

    gap_items = {g.item_no for g in gaps}
    documents = Row("documents", TOP)
    rows: dict[str, Row] = {}
    for item in items:
        if item.time is None:
            continue
        if item.kind == "document":
            if start <= item.time <= end:
                documents.marks.append(
                    Mark(
                        item.item_no,
                        x_of(item.time),
                        item.time,
                        item.doc_type or "",
                        item.item_no in gap_items,
                    )
                )
            continue
        label = row_label(item)
        row = rows.setdefault(label, Row(label, 0.0))
        span = clip(item.time, _end(item))
        if span is not None:
            row.bars.append(
                Bar(
                    item.item_no,
                    item.kind,
                    span[0],
                    span[1],
                    item.time,
                    _end(item),
                    item.item_no,
                    item.item_no in suspect,
                    item.item_no in gap_items,
                )
            )
    ordered = [_lanes(r) for r in [documents] + [rows[k] for k in sorted(rows)]]
    y = float(TOP)
    for row in ordered:
        row.y = y
        y += row.height
    covered_y = y
    # Stretches where some recording runs (merged), clipped to the view.
    spans = sorted((i.time, _end(i)) for i in items if i.kind != "document" and i.time is not None)
    merged: list[list[datetime]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    covered = [c for a, b in merged if (c := clip(a, b)) is not None]
    by_no = {i.item_no: i for i in items}
    shades: list[Shade] = []
    minutes = f"{window.total_seconds() / 60:g}"
    for gap in gaps:
        found = by_no.get(gap.item_no)
        if found is None or found.time is None:
            continue
        when = found.time
        local = when.astimezone(zone).strftime("%H:%M")
        # The stretch the rule looked at: the window around the record, or around the recording.
        a = when - window
        b = (when if gap.missing == "recording" else _end(found)) + window
        span = clip(a, b)
        if span is not None:
            shades.append(
                Shade(gap.item_no, span[0], span[1], gap.missing, local, minutes, gap.doc_type, gap.officer)
            )
    return Axis(
        start=start,
        end=end,
        whole=whole,
        rows=ordered,
        shades=shades,
        covered=covered,
        ticks=ticks(start, end, zone, x_of),
        height=covered_y + ROW + 8,
        covered_y=covered_y,
    )


def ticks(start: datetime, end: datetime, zone: ZoneInfo, x_of) -> list[Tick]:
    """About eight ticks on round local times."""
    span = end - start
    step = next((s for s in TICK_STEPS if span / s <= 8), TICK_STEPS[-1])
    local = start.astimezone(zone)
    seconds = int(step.total_seconds())
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    offset = int((local - midnight).total_seconds())
    first = midnight + timedelta(seconds=-(-offset // seconds) * seconds)
    fmt = (
        "%m-%d %H:%M"
        if span > timedelta(days=1) or step >= timedelta(days=1)
        else ("%H:%M:%S" if step < timedelta(minutes=1) else "%H:%M")
    )
    out: list[Tick] = []
    moment = first
    while moment <= end:
        out.append(Tick(x_of(moment), moment.strftime(fmt)))
        moment += step
    return out
