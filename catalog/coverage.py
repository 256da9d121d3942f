"""Whole-process coverage (全过程记录) as plain values: which steps lack their other half.

A written record of an on-site step (an inspection, evidence collection, service of
documents, enforcement: the document types named in the settings) needs a recording
by the same officer within a time window around it; a recording in a case needs some
written record within the window. Times and officers are compared, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .timeline import ItemView


@dataclass(frozen=True)
class Gap:
    item_no: str
    kind: str
    doc_type: str | None
    time: datetime | None
    missing: str  # "recording" or "document"
    officer: str | None = None


def _span(item: ItemView) -> tuple[datetime, datetime] | None:
    """When an item starts and ends; None when its time is unknown."""
    start = item.time
    if start is None:
        return None
    return start, start + timedelta(seconds=item.duration_s or 0)


def find_gaps(items: list[ItemView], *, on_site_types: set[str], window: timedelta) -> list[Gap]:
    """Gaps of one case, in the order of its items."""
    documents = [i for i in items if i.kind == "document"]
    recordings = [i for i in items if i.kind != "document"]
    gaps: list[Gap] = []
    for doc in documents:
        if doc.doc_type not in on_site_types or doc.time is None:
            continue
        covered = any(
            (span := _span(rec)) is not None
            and (doc.officer is None or rec.officer == doc.officer)
            and span[0] - window <= doc.time <= span[1] + window
            for rec in recordings
        )
        if not covered:
            gaps.append(Gap(doc.item_no, doc.kind, doc.doc_type, doc.time, "recording", doc.officer))
    for rec in recordings:
        span = _span(rec)
        if span is None:
            continue
        start, end = span
        documented = any(d.time is not None and start - window <= d.time <= end + window for d in documents)
        if not documented:
            gaps.append(Gap(rec.item_no, rec.kind, None, rec.time, "document", rec.officer))
    order = {i.item_no: n for n, i in enumerate(items)}
    return sorted(gaps, key=lambda g: order[g.item_no])
