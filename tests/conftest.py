"""Shared fixtures: catalogs on real SQLite and PostgreSQL, stores (local, Ceph RGW), services.

PostgreSQL is the machine's server (127.0.0.1:5432, trust auth) unless
EVIDENCE_TEST_PG_URL names another admin URL. Every test that asks for a
PostgreSQL catalog gets a database of its own, created and dropped here, so
parallel runs never collide. A missing server is a failure, not a skip.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from archive.cases import open_case
from archive.context import ServiceContext
from archive.digest import hash_file
from archive.originals import OriginalFacts, store_original
from archive.policy import ArchivePolicy
from archive.store import ObjectStore
from catalog import schema, users
from catalog.cases import NewCase
from catalog.db import make_engine, session_factory
from catalog.models import Recording
from catalog.numbering import NumberingFormats
from catalog.recordings import reserve_archive_number

# Cheaper password hashes in tests; the real cost (2^17) is tested where it matters.
TEST_PASSWORD_COST = 12
users.set_cost(TEST_PASSWORD_COST)


@pytest.fixture(autouse=True)
def cheap_password_hashes() -> None:
    """Each test starts at the cheap cost: building a web context applies the settings' cost
    (2^17) to the process, which would leak into the tests that run after it."""
    users.set_cost(TEST_PASSWORD_COST)


PG_ADMIN_URL = os.environ.get("EVIDENCE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parent.parent


def _admin() -> Engine:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    engine = _admin()
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect is reported the same way
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}. "
            "Run `make test` (it starts it) or set EVIDENCE_TEST_PG_URL.",
            pytrace=False,
        )
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin: Engine) -> Iterator[str]:
    name = f"evidence_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with pg_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty catalog database URL on each backend in turn."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A catalog at the newest schema."""
    eng = make_engine(db_url)
    schema.upgrade(eng)
    yield eng
    eng.dispose()


def run_evidence(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `evidence` command in a child process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "config.cli", *args],
        env=full_env,
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
    )


def invoke_evidence(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    """The `evidence` command in this process (click's runner): the same parser and code as
    `run_evidence` without a new interpreter, for tests that run many commands. The settings
    come from ``env`` alone; the logging the command sets up is put back afterwards."""
    import logging

    from click.testing import CliRunner

    from config.cli import main

    cleared: dict[str, str | None] = {k: None for k in os.environ if k.startswith("EVIDENCE_")}
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return CliRunner().invoke(main, list(args), env=cleared | dict(env or {}), input=input)
    finally:
        root.handlers[:], root.level = handlers, level


# --- object stores ---------------------------------------------------------


@pytest.fixture
def local_store(tmp_path: Path):
    from archive.local_store import LocalStore

    store = LocalStore(tmp_path / "store", lock_mode="COMPLIANCE")
    store.ensure_ready()
    return store


@pytest.fixture(scope="session")
def rgw(tmp_path_factory: pytest.TempPathFactory):
    """A real Ceph RADOS Gateway with Object Lock, for the whole run."""
    from tests.servers.rgw import start_rgw

    server = start_rgw(tmp_path_factory.mktemp("rgw"))
    yield server
    server.stop()


def s3_store_for(server, role: str = "admin", bucket: str | None = None, **kwargs):
    from archive.s3_store import S3Store

    access, secret = server.users[role]
    return S3Store(
        server.endpoint,
        bucket or f"t-{uuid.uuid4().hex[:12]}",
        access,
        secret,
        secure=False,
        part_size=kwargs.pop("part_size", 5 << 20),
        lock_mode=kwargs.pop("lock_mode", "COMPLIANCE"),
        **kwargs,
    )


@pytest.fixture
def s3_store(rgw):
    store = s3_store_for(rgw)
    store.ensure_ready()
    return store


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest):
    """Each object store in turn: the contract both must keep."""
    return request.getfixturevalue("local_store" if request.param == "local" else "s3_store")


# --- archive services: a catalog and a store together --------------------------

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
        return datetime.now(UTC)

    def as_(
        self,
        actor: str = "tester",
        *,
        now: datetime | None = None,
        kek: bytes | None = None,
        policy: ArchivePolicy | None = None,
    ) -> ServiceContext:
        """The services as ``actor`` (at a fixed moment, with a key-encryption key, under
        another policy, where given)."""
        return ServiceContext(
            self.engine,
            self.sessions,
            self.store,
            FORMATS,
            policy or self.policy,
            actor,
            load_kek=(lambda: kek) if kek is not None else None,
            clock=(lambda: now) if now is not None else self.now,
        )

    def recording(self, n: int = 1, kek: bytes | None = None, **facts) -> Recording:
        path = self.tmp / f"A123456@2020110508505{n % 10}{n:04d}.mp4"
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + hashlib.sha256(str(n).encode()).digest() * 5000)
        now = self.now()
        number = reserve_archive_number(self.engine, FORMATS, ZONE, unit="KZCG", station="ST01", now=now)
        base = dict(
            station="ST01",
            unit="KZCG",
            kind="video",
            original_name=path.name,
            content_type="video/mp4",
            start_time=now - timedelta(days=400),
            device="A123456",
            officer="JX0227",
        )
        return store_original(
            self.as_("station:ST01", now=now, kek=kek),
            path,
            hash_file(path),
            OriginalFacts(**(base | facts)),
            archive_no=number,
        )

    def case(self, number: str = "开城管罚立〔2020〕42号"):
        return open_case(self.as_("clerk"), NewCase(number=number, unit="KZCG", opened_on=self.now().date()))

    @classmethod
    def embedded(cls, tmp: Path) -> Env:
        """An SQLite catalog and a local store in ``tmp``, for module fixtures that build one
        package and tamper with copies (dispose of ``engine`` when done)."""
        from archive.local_store import LocalStore

        engine = make_engine(f"sqlite:///{tmp / 'catalog.sqlite3'}")
        schema.upgrade(engine)
        store = LocalStore(tmp / "store", lock_mode="COMPLIANCE")
        store.ensure_ready()
        policy = ArchivePolicy(zone=ZONE, routine=(1, "days"), min_lock=timedelta(seconds=3))
        return cls(engine, session_factory(engine), store, tmp, policy)


@pytest.fixture
def env(engine, store, tmp_path) -> Env:
    # Short locks so that expiry can be proven on the server's real clock: no routine
    # period (it counts from the archiving), only the minimum lock.
    return Env(
        engine,
        session_factory(engine),
        store,
        tmp_path,
        ArchivePolicy(zone=ZONE, routine=(0, "days"), min_lock=timedelta(seconds=3)),
    )
