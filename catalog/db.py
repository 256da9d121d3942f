"""Database engines and sessions for the catalog (SQLite or PostgreSQL).

SQLite is opened in WAL mode with foreign keys on and full fsync, and every
writing transaction starts with ``BEGIN IMMEDIATE`` so that concurrent
writers queue on the busy timeout instead of failing halfway through with
"database is locked". A read-only engine (``readonly=True``) starts
transactions with a plain ``BEGIN`` so long reads never block writers.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    DateTime,
    Engine,
    FromClause,
    Result,
    Table,
    create_engine,
    event,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from .errors import InvalidInput

SQLITE_BUSY_TIMEOUT_S = 60


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise InvalidInput("catalog times must carry a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, readonly: bool = False) -> Engine:
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse text
        raise InvalidInput(f"catalog database URL {url!r} is not a valid URL: {exc}") from exc
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def insert_missing(
    db: Session | Connection, table: FromClause, values: dict[str, Any], keys: list[str]
) -> bool:
    """Insert a row unless one with the same ``keys`` exists; True when this call inserted it.

    ``INSERT … ON CONFLICT DO NOTHING``: a row another transaction inserts at the same
    moment is waited for (PostgreSQL) and then left alone, so two workers creating the
    same station, device or officer never fail on a unique violation. Read the row
    afterwards in a new statement: under READ COMMITTED it sees the other's commit.
    """
    bind = db.get_bind() if isinstance(db, Session) else db
    dialect = postgresql if bind.dialect.name == "postgresql" else sqlite
    # RETURNING says whether a row went in: the row count is -1 on PostgreSQL when a table's
    # generated key is fetched, whose returned row SQLAlchemy keeps for itself.
    target = cast(Table, table)
    statement = (
        dialect.insert(target)
        .values(**values)
        .on_conflict_do_nothing(index_elements=keys)
        .returning(*[target.c[k] for k in keys])
    )
    return db.execute(statement).first() is not None


def changed_rows(result: Result[Any]) -> int:
    """Rows an INSERT, UPDATE or DELETE changed (its result is a cursor result)."""
    return cast(CursorResult[Any], result).rowcount
