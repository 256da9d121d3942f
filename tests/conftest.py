"""Shared fixtures: catalogs on real SQLite and real PostgreSQL.

PostgreSQL is the machine's server (127.0.0.1:5432, trust auth) unless
EVIDENCE_TEST_PG_URL names another admin URL. Every test that asks for a
PostgreSQL catalog gets a database of its own, created and dropped here, so
parallel runs never collide. A missing server is a failure, not a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from catalog import schema
from catalog.db import make_engine

PG_ADMIN_URL = os.environ.get("EVIDENCE_TEST_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parent.parent


def _admin() -> Engine:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    engine = _admin()
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}. "
                    "Run `make test` (it starts it) or set EVIDENCE_TEST_PG_URL.", pytrace=False)
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


def run_evidence(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
                 input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `evidence` command in a child process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "config.cli", *args], env=full_env,
                          cwd=cwd or ROOT, capture_output=True, text=True, input=input, timeout=120)


# --- object stores ---------------------------------------------------------

@pytest.fixture
def local_store(tmp_path: Path):
    from archive.local_store import LocalStore

    store = LocalStore(tmp_path / "store")
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
    return S3Store(server.endpoint, bucket or f"t-{uuid.uuid4().hex[:12]}", access, secret,
                   secure=False, part_size=kwargs.pop("part_size", 5 << 20), **kwargs)


@pytest.fixture
def s3_store(rgw):
    store = s3_store_for(rgw)
    store.ensure_ready()
    return store


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest):
    """Each object store in turn: the contract both must keep."""
    return request.getfixturevalue("local_store" if request.param == "local" else "s3_store")
