"""Wiring: builds engines, sessions and services from the settings.

Only this package reads settings; everything else is handed plain values.
"""

from __future__ import annotations

import getpass
from datetime import datetime, timezone
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from catalog import keys, schema
from catalog.checkpoint import key_id
from catalog.db import make_engine, session_factory

from .settings import Settings


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


class App:
    """Everything one command invocation needs, built lazily."""

    def __init__(self, settings: Settings, *, actor: str | None = None) -> None:
        self.settings = settings
        self.actor = actor or default_actor()
        self._checked = False

    @staticmethod
    def now() -> datetime:
        return datetime.now(timezone.utc)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def readonly_engine(self) -> Engine:
        return make_engine(self.settings.database_url, readonly=True)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine)

    @cached_property
    def reader_sessions(self) -> sessionmaker[Session]:
        return session_factory(self.readonly_engine)

    def require_catalog(self) -> App:
        """Refuse to go on unless the catalog is at the newest schema."""
        if not self._checked:
            schema.require_current(self.engine)
            self._checked = True
        return self

    def init(self) -> dict[str, object]:
        """Create or upgrade everything the settings name; safe to run again."""
        self.settings.data_path.mkdir(parents=True, exist_ok=True)
        before, after = schema.upgrade(self.engine)
        key, created = keys.ensure_signing_key(self.settings.signing_key_path)
        self._checked = True
        return {
            "catalog": self.engine.url.render_as_string(hide_password=True),
            "schema_before": before, "schema": after,
            "signing_key": str(self.settings.signing_key_path), "signing_key_created": created,
            "key_id": key_id(key.public_key()),
        }

    def close(self) -> None:
        for name in ("engine", "readonly_engine"):
            if name in self.__dict__:
                self.__dict__[name].dispose()
