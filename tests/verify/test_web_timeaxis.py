"""The case page's time axis as values: rows, lanes, gaps, coverage, zoom and ticks."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from catalog.coverage import find_gaps
from catalog.timeline import ItemView
from verify.web import timeaxis

ZONE = ZoneInfo("Asia/Shanghai")
T0 = datetime(2020, 11, 5, 9, 30, tzinfo=ZONE)
WINDOW = timedelta(minutes=60)


def video(
    n: int, minutes: float, seconds: float, officer: str | None = "JX0227", device: str | None = None
) -> ItemView:
    return ItemView(
        item_no=f"K-{n:03d}V",
        seq=n,
        kind="video",
        time=T0 + timedelta(minutes=minutes),
        sha256="0" * 64,
        size=1,
        officer=officer,
        device=device,
        duration_s=seconds,
    )


def document(n: int, minutes: float, doc_type: str, officer: str | None = "JX0227") -> ItemView:
    return ItemView(
        item_no=f"K-{n:03d}D",
        seq=n,
        kind="document",
        time=T0 + timedelta(minutes=minutes),
        sha256="0" * 64,
        size=1,
        doc_type=doc_type,
        officer=officer,
    )


def axis_of(items, at=None, span=None, suspect=frozenset()):
    gaps = find_gaps(items, on_site_types={"询问笔录", "现场检查（勘验）笔录"}, window=WINDOW)
    whole = timeaxis.whole_case(items)
    assert whole is not None
    return timeaxis.layout(
        items,
        gaps,
        zone=ZONE,
        window=WINDOW,
        whole=whole,
        shown=timeaxis.view(whole, at, span),
        suspect=suspect,
    )


CASE = [
    video(1, 0, 600),
    video(2, 2, 300, officer="JX0310"),
    video(3, 5, 60, officer=None, device="TB00817"),
    document(4, 1, "现场检查（勘验）笔录"),
    document(5, 180, "询问笔录", officer="JX0310"),  # three hours later, nobody filming: a gap
]


def test_documents_are_marks_and_recordings_bars_in_one_row_per_officer_or_device() -> None:
    axis = axis_of(CASE)
    labels = [r.label for r in axis.rows]
    assert labels == ["documents", "device:TB00817", "officer:JX0227", "officer:JX0310"]
    rows = {r.label: r for r in axis.rows}
    assert [m.item_no for m in rows["documents"].marks] == ["K-004D", "K-005D"]
    assert [b.item_no for b in rows["officer:JX0227"].bars] == ["K-001V"]
    assert [b.item_no for b in rows["device:TB00817"].bars] == ["K-003V"]
    # Rows are stacked without overlap and the drawing ends below the coverage strip.
    ys = [r.y for r in axis.rows]
    assert ys == sorted(ys) and axis.covered_y >= ys[-1] + axis.rows[-1].height
    assert axis.height > axis.covered_y


def test_the_planted_gap_is_shaded_over_the_window_the_rule_looked_at() -> None:
    axis = axis_of(CASE)
    (shade,) = axis.shades
    assert shade.item_no == "K-005D" and shade.missing == "recording" and shade.officer == "JX0310"
    assert shade.local_time == "12:30" and shade.minutes == "60"
    # From an hour before the record to the end of the view (the view ends 5 % after it).
    scale = (axis.width - axis.left) / axis.span.total_seconds()
    start = axis.left + ((T0 + timedelta(minutes=120)) - axis.start).total_seconds() * scale
    assert abs(shade.x - start) < 1 and abs(shade.x + shade.w - axis.width) < 1
    (mark,) = [m for m in axis.rows[0].marks if m.gap]
    assert mark.item_no == "K-005D"


def test_a_recording_without_a_written_record_is_a_gap_of_its_own() -> None:
    items = [video(1, 0, 60), video(2, 300, 60, officer="JX0310"), document(3, 1, "现场检查（勘验）笔录")]
    axis = axis_of(items)
    assert [(s.item_no, s.missing) for s in axis.shades] == [("K-002V", "document")]
    bars = {b.item_no: b for r in axis.rows for b in r.bars}
    assert bars["K-002V"].gap and not bars["K-001V"].gap


def test_coverage_merges_overlapping_recordings() -> None:
    axis = axis_of(CASE)
    # 09:30-09:40 (officer JX0227) takes in 09:32-09:37 and 09:35-09:36: one stretch.
    (covered,) = axis.covered
    scale = (axis.width - axis.left) / axis.span.total_seconds()
    assert abs(covered[1] - 600 * scale) < 1


def test_marks_close_in_time_go_to_lanes_instead_of_covering_each_other() -> None:
    items = [document(1, 0, "立案审批表"), document(2, 0.5, "询问笔录"), document(3, 300, "送达回证")]
    axis = axis_of(items)
    lanes = {m.item_no: m.lane for m in axis.rows[0].marks}
    assert lanes == {"K-001D": 0, "K-002D": 1, "K-003D": 0}
    assert axis.rows[0].lanes == 2 and axis.rows[0].height > timeaxis.ROW


def test_zoom_in_to_minutes_and_out_to_the_whole_case_stays_within_it() -> None:
    axis = axis_of(CASE, at=T0 + timedelta(minutes=3), span=120)
    assert axis.span == timedelta(seconds=120)
    bars = {b.item_no: b for r in axis.rows for b in r.bars}
    assert bars["K-001V"].x == axis.left  # started before the view: clipped at its left edge
    assert "K-005D" not in {m.item_no for m in axis.rows[0].marks} and axis.shades == []
    centre, span = axis.zoom(0.25)
    assert span == 60  # never under a minute
    centre, span = axis.zoom(1000)
    whole = axis.whole[1] - axis.whole[0]
    assert span == int(whole.total_seconds()) and centre == axis.whole[0] + whole / 2
    centre, _ = axis.zoom(1, -100)  # panned far to the left: stops at the case's start
    assert centre - timedelta(seconds=60) == axis.whole[0]


def test_ticks_are_round_local_times() -> None:
    axis = axis_of(CASE)
    labels = [t.label for t in axis.ticks]
    assert labels[0] == "09:30" and "12:30" in labels and len(labels) <= 9
    minutes = axis_of(CASE, at=T0 + timedelta(minutes=3), span=120).ticks
    assert [t.label for t in minutes][:2] == ["09:32:00", "09:32:30"]


def test_a_clock_suspect_recording_is_marked() -> None:
    axis = axis_of(CASE, suspect=frozenset({"K-002V"}))
    bars = {b.item_no: b for r in axis.rows for b in r.bars}
    assert bars["K-002V"].clock_suspect and not bars["K-001V"].clock_suspect


def test_a_case_without_times_has_no_axis() -> None:
    undated = [ItemView(item_no="K-001D", seq=1, kind="document", time=None, sha256="0" * 64, size=1)]
    assert timeaxis.whole_case(undated) is None
