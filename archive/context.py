"""The one value every service takes: where the catalog and storage are, who acts, and when.

``config`` builds it from the settings (``config.app``); the web pages and tests make their
own. It is immutable: acting for another user (a web request) or at a fixed moment (a drill,
a test) makes a copy with ``acting_as`` or ``at``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from catalog.custody import utcnow
from catalog.numbering import NumberingFormats

from .encryption import EncryptionKeyError, Keyring
from .key_wraps import DEFAULT_WRAP_LOCK, CatalogWraps
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
    # Every configured KEK by id and which one wraps new data keys (``config`` loads them);
    # without it the single ``load_kek`` key is the ring.
    load_keks: Callable[[], tuple[dict[str, bytes], str]] | None = None
    wrap_lock: timedelta = DEFAULT_WRAP_LOCK

    def now(self) -> datetime:
        return self.clock()

    def wraps(self) -> CatalogWraps:
        """Where this archive's key wraps are kept (storage and the catalog's copies)."""
        return CatalogWraps(self.sessions, self.store, self.clock, self.wrap_lock)

    def kek(self) -> Keyring:
        """The key ring: every loaded KEK, the current one, and the archive's wraps."""
        if self.load_keks is not None:
            keks, current = self.load_keks()
            return self.wraps().ring(keks, current)
        if self.load_kek is None:
            raise EncryptionKeyError(
                "this record is protected and no key-encryption key is loaded",
                hint="check [encryption] key_file in the settings",
            )
        return self.wraps().ring([self.load_kek()])

    def kek_for(self, encrypted: bool) -> Keyring | None:
        """The key ring when ``encrypted``, else None (nothing is loaded)."""
        return self.kek() if encrypted else None

    def acting_as(self, actor: str) -> ServiceContext:
        return replace(self, actor=actor)

    def at(self, moment: datetime) -> ServiceContext:
        """The same context with its clock stopped at ``moment`` (drills and tests)."""
        return replace(self, clock=lambda: moment)
