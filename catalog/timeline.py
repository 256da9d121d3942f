"""A case's items in time order: documents and recordings interleaved (plain values).

An item's time is when what it records happened: a recording's start, a
document's own date (else when it was added). Items at the same instant keep
the order of their item numbers, so a replay is stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class ItemView:
    item_no: str
    seq: int
    kind: str  # document, video, audio, photo
    time: datetime | None
    sha256: str
    size: int
    archive_no: str | None = None
    doc_type: str | None = None
    doc_number: str | None = None
    officer: str | None = None
    device: str | None = None
    station: str | None = None
    duration_s: float | None = None
    proxy: str = "none"
    damaged: bool = False
    important: bool = False
    protected: bool = False
    linked_at: datetime | None = None
    unlinked: bool = False
    storage_key: str | None = None
    storage_version: str | None = None
    encrypted: bool = False
    last_verified_at: datetime | None = None  # the last fixity check that read it whole
    # What the review pages need beyond the timeline, read with the rest in one pass.
    recording_id: int | None = None
    document_id: int | None = None
    content_type: str | None = None
    media: dict[str, Any] = field(default_factory=dict)  # what probing found: fps, size, codecs
    clock_suspect: str | None = None  # why the recorder's clock is doubted, if it is
    damage_reason: str | None = None
    custody: dict[str, Any] = field(default_factory=dict)
    verified: str | None = None


def in_time_order(items: list[ItemView]) -> list[ItemView]:
    """Time order; undated items last; ties by item number."""
    return sorted(items, key=lambda i: (i.time is None, i.time or datetime.min, i.seq))
