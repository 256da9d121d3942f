"""Typed errors shared by every package.

Each error carries a message that says what went wrong and, where there is
one, what to do next (``hint``), plus the exit code the command line uses:
2 for bad usage, settings or input, 1 for a check that found a problem or an
action that was refused.
"""

from __future__ import annotations

from typing import Any


class EvidenceError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class NotFound(EvidenceError):
    """An unknown case, item, recording or document was named."""


class InvalidInput(EvidenceError):
    """A value given by the user cannot be used."""


class SchemaOutdated(EvidenceError):
    """The catalog is missing or older than this program."""


class CatalogConflict(EvidenceError):
    """A unique name or number is taken already."""


class CheckFailed(EvidenceError):
    """A check found a problem (tampered chain, bad signature, mismatch)."""

    exit_code = 1


class Refused(EvidenceError):
    """An action was refused by policy or by storage."""

    exit_code = 1
