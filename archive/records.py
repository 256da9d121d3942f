"""JSON records in storage (manifests, case events, checkpoints, tombstones).

Records are written in the canonical serialization (``catalog.canonical``),
so the stored bytes of a record are a function of its content: writing the
same record again after a crash is recognised and accepted, writing other
content under a taken key is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime
from typing import Any, cast

from catalog.canonical import canonical_bytes

from .errors import ObjectExists
from .store import ObjectStore, PutResult

JSON = "application/json"


def put_json(
    store: ObjectStore, key: str, value: dict[str, Any], *, lock_until: datetime | None
) -> PutResult | None:
    """Store a record; returns None when the identical record was there already."""
    data = canonical_bytes(value)
    try:
        return store.put(
            key,
            io.BytesIO(data),
            content_type=JSON,
            retain_until=lock_until,
            metadata={"sha256": hashlib.sha256(data).hexdigest()},
        )
    except ObjectExists:
        if b"".join(store.read(key)) == data:
            return None
        raise


def get_json(store: ObjectStore, key: str, version: str | None = None) -> dict[str, Any]:
    # Records are JSON objects (put_json writes only dicts).
    return cast(dict[str, Any], json.loads(b"".join(store.read(key, version))))
