"""Filling a recording's missing metadata from the recorder-style name of a duplicate.

The same recording often reaches the archive twice: first copied by hand under a name like
``VID_0001.mp4`` (no device, officer or start time from it), later docked by its recorder as
``A123456@20201105085056.mp4``. The second copy is a duplicate and is not stored again, but its
name knows what the archived recording lacks. :func:`plan` decides what to fill: only fields
the recording does not have from a name already (device and officer when absent, the start
time when it came from the container or the file's time), and only values the duplicate's
file name gave (not a folder or an ``sn.txt``).

Manifests are written once, so the fill is a custody event (``metadata_filled``) whose
details carry the values; :func:`apply` sets them on the catalog row, and ``catalog rebuild``
replays the events in chain order over what the manifests say. The details hold strings
only (the start time as an instant in UTC, the name as shown).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from .canonical import format_instant, parse_instant
from .models import Recording
from .recordings import device_row, officer_row

__all__ = ["SOURCE", "apply", "plan"]

SOURCE = "duplicate_name"
"""What ``Recording.sources`` says of a value filled from a duplicate's name."""

# Sources of a start time that a recorder's name outranks.
_WEAKER_START = frozenset({"container", "file_time"})


def plan(
    *,
    has_device: bool,
    has_officer: bool,
    sources: Mapping[str, str],
    name_values: Mapping[str, Any],
    name_sources: Mapping[str, str],
) -> dict[str, str]:
    """The fields to fill (``device``, ``officer``, ``start_time`` as an instant string);
    empty when the duplicate's name adds nothing."""
    fill: dict[str, str] = {}
    from_name = {k for k, v in name_sources.items() if v == "filename"}
    if not has_device and "device" in from_name and name_values.get("device"):
        fill["device"] = str(name_values["device"])
    if not has_officer and "officer" in from_name and name_values.get("officer"):
        fill["officer"] = str(name_values["officer"])
    start = name_values.get("start")
    if isinstance(start, datetime) and "start" in from_name and sources.get("start_time") in _WEAKER_START:
        fill["start_time"] = format_instant(start)
    return fill


def apply(session: Session, recording: Recording, details: Mapping[str, Any]) -> None:
    """Set the values of a ``metadata_filled`` event's details on the recording."""
    sources = json.loads(recording.sources or "{}")
    if details.get("device"):
        recording.device_id = device_row(session, str(details["device"])).id
        sources["device"] = SOURCE
    if details.get("officer"):
        recording.officer_id = officer_row(session, str(details["officer"])).id
        sources["officer"] = SOURCE
    if details.get("start_time"):
        recording.start_time = parse_instant(str(details["start_time"]))
        sources["start_time"] = SOURCE
    recording.sources = json.dumps(sources, ensure_ascii=False)
