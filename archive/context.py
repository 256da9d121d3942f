"""The one value every service takes: where the catalog and storage are, who acts, and when.

``config`` builds it from the settings (``config.app``); the web pages and tests make their
own. It is immutable: acting for another user (a web request) or at a fixed moment (a drill,
a test) makes a copy with ``acting_as`` or ``at``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from catalog.custody import utcnow
from catalog.numbering import NumberingFormats

from .encryption import EncryptionKeyError
from .policy import ArchivePolicy
from .store import ObjectStore


@dataclass(frozen=True)
class ServiceContext:
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore
    formats: NumberingFormats
    policy: ArchivePolicy
    actor: str
    # Loads the key-encryption key on first need (a command that never meets a protected
    # record never reads the key file); None where no key is available at all.
    load_kek: Callable[[], bytes] | None = None
    clock: Callable[[], datetime] = utcnow

    def now(self) -> datetime:
        return self.clock()

    def kek(self) -> bytes:
        if self.load_kek is None:
            raise EncryptionKeyError(
                "this record is protected and no key-encryption key is loaded",
                hint="check [encryption] key_file in the settings",
            )
        return self.load_kek()

    def kek_for(self, encrypted: bool) -> bytes | None:
        """The key-encryption key when ``encrypted``, else None (nothing is loaded)."""
        return self.kek() if encrypted else None

    def acting_as(self, actor: str) -> ServiceContext:
        return replace(self, actor=actor)

    def at(self, moment: datetime) -> ServiceContext:
        """The same context with its clock stopped at ``moment`` (drills and tests)."""
        return replace(self, clock=lambda: moment)
