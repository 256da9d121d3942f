"""The canonical serialization that custody hashes and signatures are made over.

A value is serialized as JSON, UTF-8, keys sorted by code point, no
insignificant whitespace, non-ASCII characters written as themselves (not
``\\u`` escapes), integers in decimal, no NaN or infinity. Instants are
written as UTC with six fractional digits and a ``Z`` (``format_instant``).
The same rules are written out in the README so that anybody can recompute
a hash with their own tools.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidInput


def canonical_bytes(value: Any) -> bytes:
    """Serialize ``value`` (JSON types only) canonically."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"value cannot be serialized canonically: {exc}") from exc
    return text.encode("utf-8")


def format_instant(moment: datetime) -> str:
    """An aware datetime as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC."""
    if moment.tzinfo is None:
        raise InvalidInput("instant without a time zone cannot be serialized")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_instant(text: str) -> datetime:
    """Inverse of ``format_instant`` (accepts any ISO 8601 with an offset)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise InvalidInput(f"instant {text!r} carries no offset")
    return moment.astimezone(UTC)
