"""What the pages are handed by ``config`` (which alone reads settings): services, zone, secret."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from archive.context import ServiceContext
from archive.store import ObjectStore
from catalog.checkpoint import Anchors
from catalog.models import User


@dataclass
class WebContext:
    """What the pages need, handed over by ``config`` (which alone reads settings)."""

    services: ServiceContext
    zone: ZoneInfo
    secret: bytes
    language: str = "zh"
    on_site_types: set[str] = field(default_factory=set)
    coverage_window: timedelta = timedelta(hours=1)
    # (case_key, folder, *, reason, actor, include_protected) -> zip path, or an ExportResult
    # that is ``pending`` until the next checkpoint (the web server holds no signing key)
    export: Callable[..., Any] | None = None
    # Where exports are prepared and wait for their checkpoint (None: the system's temp folder).
    exports: Path | None = None
    # The installation's trust anchor (pinned fingerprints): whose checkpoints the audit page trusts.
    anchors: Anchors = field(default_factory=Anchors)
    # Sessions for reads only; on SQLite they start with a plain BEGIN, so page reads do not
    # queue behind writers for the write lock. None: the services' sessions.
    readers: sessionmaker[Session] | None = None
    # A session ends after this long without a request, and this long after signing in.
    session_idle: timedelta = timedelta(minutes=30)
    session_lifetime: timedelta = timedelta(hours=12)
    # Reverse proxies (addresses or networks) whose X-Forwarded-For names the client.
    trusted_proxies: tuple[str, ...] = ()
    # How long a media link lives; pages renew theirs on the player's error event.
    link_seconds: float = 300.0
    # The most bytes one media response carries: a player asks again for the rest, and each
    # ask re-checks the link's expiry, the session and the grant, so an expired link or a
    # revoked grant stops an open stream within one chunk.
    media_chunk_bytes: int = 4 * 1024 * 1024
    # The TrueType CJK font of the case file PDF; None: Debian's fonts-wqy-zenhei.
    pdf_font: Path | None = None
    # Where users reach the pages; an https address (a TLS-terminating proxy in front) makes
    # the session cookie Secure even though the proxy speaks plain HTTP to this server.
    public_url: str = ""

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.services.sessions

    @property
    def store(self) -> ObjectStore:
        return self.services.store

    def reading(self) -> Session:
        """A session for reads only."""
        return (self.readers or self.sessions)()

    def now(self) -> datetime:
        return self.services.now()

    def acting(self, user: User) -> ServiceContext:
        """The services as this account, as the custody chain names it."""
        return self.services.acting_as(f"web:{user.name}")
