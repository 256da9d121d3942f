"""Typed errors of the object stores and archive services."""

from __future__ import annotations

from catalog.errors import CheckFailed, EvidenceError, NotFound, Refused


class StoreError(EvidenceError):
    """The object store failed in a way a retry will not fix (bad settings, bad key)."""


class StoreUnavailable(EvidenceError):
    """The object store cannot be reached now; the work is left in place for a retry."""

    exit_code = 1


class ObjectMissing(NotFound):
    """No object (or no such version) at that key."""


class ObjectExists(Refused):
    """Objects are written once; the key is taken."""


class ObjectLocked(Refused):
    """Retention or a legal hold forbids the deletion (or the shortening)."""


class ReceiptMismatch(CheckFailed):
    """What the store received differs from what was sent (size, digest, ETag)."""


class ContentChanged(CheckFailed):
    """The source file changed between hashing and storing; it is left for a retry."""
