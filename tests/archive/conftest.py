"""Fixtures for archive services: a catalog (SQLite, PostgreSQL) and a store (local, S3)."""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from archive.cases import open_case
from archive.digest import hash_file
from archive.originals import ArchivePolicy, OriginalFacts, store_original
from archive.store import ObjectStore
from catalog.cases import NewCase
from catalog.db import session_factory
from catalog.models import Recording
from catalog.numbering import NumberingFormats
from catalog.recordings import reserve_archive_number

ZONE = ZoneInfo("Asia/Shanghai")
FORMATS = NumberingFormats()


@dataclass
class Env:
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore
    tmp: Path
    policy: ArchivePolicy

    @staticmethod
    def now() -> datetime:
        return datetime.now(timezone.utc)

    def recording(self, n: int = 1, **facts) -> Recording:
        path = self.tmp / f"A123456@2020110508505{n % 10}{n:04d}.mp4"
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + hashlib.sha256(str(n).encode()).digest() * 5000)
        now = self.now()
        number = reserve_archive_number(self.engine, FORMATS, ZONE, unit="KZCG", station="ST01", now=now)
        base = dict(station="ST01", unit="KZCG", kind="video", original_name=path.name,
                    content_type="video/mp4", start_time=now - timedelta(days=400), device="A123456",
                    officer="JX0227")
        return store_original(self.sessions, self.store, self.policy, path, hash_file(path),
                              OriginalFacts(**(base | facts)), archive_no=number,
                              actor="station:ST01", now=now)

    def case(self, number: str = "开城管罚立〔2020〕42号"):
        return open_case(self.engine, self.sessions, self.store, FORMATS,
                         NewCase(number=number, unit="KZCG", opened_on=self.now().date()),
                         actor="clerk", now=self.now())


@pytest.fixture
def env(engine, store, tmp_path) -> Env:
    # Short locks so that expiry can be proven on the server's real clock.
    return Env(engine, session_factory(engine), store, tmp_path,
               ArchivePolicy(zone=ZONE, routine=(1, "days"), min_lock=timedelta(seconds=3)))
