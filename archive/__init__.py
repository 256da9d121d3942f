"""Object stores, digests, encryption, retention arithmetic, and the services that make
catalog decisions durable in storage (originals, documents, links, holds, checkpoints, purges).

The small public surface: ``ObjectStore`` with ``LocalStore`` and ``S3Store``; the typed errors
in ``archive.errors``; the services in their own modules.
"""

from .errors import (
    ContentChanged,
    ObjectExists,
    ObjectLocked,
    ObjectMissing,
    ReceiptMismatch,
    StoreError,
    StoreUnavailable,
)
from .store import ObjectInfo, ObjectStore, PutResult, Retention

__all__ = [
    "ContentChanged",
    "ObjectExists",
    "ObjectInfo",
    "ObjectLocked",
    "ObjectMissing",
    "ObjectStore",
    "PutResult",
    "ReceiptMismatch",
    "Retention",
    "StoreError",
    "StoreUnavailable",
]
