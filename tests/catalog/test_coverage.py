from datetime import UTC, datetime, timedelta

from catalog.coverage import find_gaps
from catalog.timeline import ItemView

T = datetime(2020, 11, 5, 1, 0, tzinfo=UTC)
RULES = {"on_site_types": {"现场检查（勘验）笔录", "询问笔录"}, "window": timedelta(minutes=30)}


def doc(n: int, doc_type: str, at: datetime, officer: str | None = "JX0227") -> ItemView:
    return ItemView(f"K-{n:03d}D", n, "document", at, "0" * 64, 1, doc_type=doc_type, officer=officer)


def rec(n: int, at: datetime, seconds: float = 600, officer: str | None = "JX0227") -> ItemView:
    return ItemView(
        f"K-{n:03d}V", n, "video", at, "0" * 64, 1, archive_no=f"A-{n}", officer=officer, duration_s=seconds
    )


def test_a_fully_covered_case_has_no_gaps() -> None:
    items = [
        rec(1, T),
        doc(2, "现场检查（勘验）笔录", T + timedelta(minutes=25)),
        doc(3, "立案审批表", T - timedelta(days=3)),
    ]
    assert find_gaps(items, **RULES) == []


def test_an_on_site_record_without_a_recording_of_its_officer() -> None:
    items = [rec(1, T, officer="OTHER"), doc(2, "询问笔录", T + timedelta(minutes=5))]
    (gap,) = find_gaps(items, **RULES)
    assert (gap.item_no, gap.missing, gap.officer) == ("K-002D", "recording", "JX0227")


def test_the_window_counts_from_both_ends_of_the_recording() -> None:
    long = rec(1, T, seconds=3600)
    inside = doc(2, "询问笔录", T + timedelta(minutes=89))  # end + 29 min
    outside = doc(3, "询问笔录", T + timedelta(minutes=91))  # end + 31 min
    before = doc(4, "询问笔录", T - timedelta(minutes=31))
    gaps = find_gaps([long, inside, outside, before], **RULES)
    assert [g.item_no for g in gaps] == ["K-003D", "K-004D"]


def test_a_recording_without_any_written_record_nearby() -> None:
    items = [rec(1, T), rec(2, T + timedelta(days=1)), doc(3, "立案审批表", T + timedelta(minutes=5))]
    (gap,) = find_gaps(items, **RULES)
    assert (gap.item_no, gap.missing) == ("K-002V", "document")


def test_records_without_officer_or_time_do_not_crash() -> None:
    items = [
        doc(1, "询问笔录", T, officer=None),
        rec(2, T + timedelta(minutes=10), officer=None),
        ItemView("K-003D", 3, "document", None, "0" * 64, 1, doc_type="询问笔录"),
    ]
    assert find_gaps(items, **RULES) == []
