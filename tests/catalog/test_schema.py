import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from catalog import schema
from catalog.db import make_engine
from catalog.errors import SchemaOutdated
from catalog.models import Base


def test_upgrade_creates_every_table_and_is_idempotent(db_url: str) -> None:
    engine = make_engine(db_url)
    assert schema.upgrade(engine) == (None, schema.head_revision())
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    assert schema.upgrade(engine) == (schema.head_revision(), schema.head_revision())
    with engine.connect() as conn:
        assert conn.execute(text("select seq, hash from custody_head")).one() == (0, "0" * 64)
    engine.dispose()


def test_migrations_match_the_models(engine) -> None:
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diffs == []


def test_downgrade_to_nothing_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    schema.upgrade(engine)
    command.downgrade(schema.alembic_config(engine), "base")
    assert not (set(Base.metadata.tables) & set(inspect(engine).get_table_names()))
    schema.upgrade(engine)
    schema.require_current(engine)
    engine.dispose()


def test_uninitialized_catalog_says_to_run_init(db_url: str) -> None:
    engine = make_engine(db_url)
    with pytest.raises(SchemaOutdated, match="run `evidence init`"):
        schema.require_current(engine)
    engine.dispose()


def test_older_catalog_says_to_run_init(engine) -> None:
    # Pretend the database is at an older revision this program knows of.
    with engine.begin() as conn:
        conn.execute(text("update alembic_version set version_num = :v"), {"v": "0000"})
    with pytest.raises(SchemaOutdated) as exc:
        schema.require_current(engine)
    assert "does not know" in str(exc.value)  # 0000 is not ours: written by a newer program
    with engine.begin() as conn:
        conn.execute(text("delete from alembic_version"))
    with pytest.raises(SchemaOutdated, match="not initialized"):
        schema.require_current(engine)


def test_a_catalog_with_rows_upgrades_from_the_first_revision(db_url: str) -> None:
    engine = make_engine(db_url)
    command.upgrade(schema.alembic_config(engine), "0001")
    with pytest.raises(SchemaOutdated, match="run `evidence init` to upgrade"):
        schema.require_current(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into cases (case_key, number, unit, major, status, opened_on, "
                "created_at, created_by) values ('K-2020-0001', 'N1', 'K', false, 'open', "
                "'2020-01-01', '2020-01-01 00:00:00+00', 'c')"
            )
        )
        conn.execute(
            text(
                "insert into documents (case_id, doc_type, sha256, size, original_name, "
                "storage_key, created_at) select id, '询问笔录', :h, 1, 'a.pdf', 'k', "
                "'2020-01-01 00:00:00+00' from cases"
            ),
            {"h": "0" * 64},
        )
        # A recording and its ingest job as the first release wrote them.
        conn.execute(
            text("insert into stations (id, unit, created_at) values ('ST01', 'K', '2020-01-01 00:00:00+00')")
        )
        conn.execute(
            text(
                "insert into recordings (archive_no, kind, sha256, size, original_name, station_id, "
                "ingested_at, storage_key, status, damaged, important, protected, encrypted, flags, "
                "media_info, sources) values ('K-20200101-ST01-0001', 'video', :h, 5, 'a.mp4', 'ST01', "
                "'2020-01-01 00:00:00+00', 'originals/2020/01/01/K-20200101-ST01-0001.mp4', "
                "'archived', false, false, false, false, '{}', '{}', '{}')"
            ),
            {"h": "1" * 64},
        )
        conn.execute(
            text(
                "insert into ingest_jobs (station_id, path, size, mtime_ns, state, sha256, archive_no, "
                "attempts, created_at, updated_at) values ('ST01', '/in/a.mp4', 5, 1, 'done', :h, "
                "'K-20200101-ST01-0001', 1, '2020-01-01 00:00:00+00', '2020-01-01 00:00:00+00')"
            ),
            {"h": "1" * 64},
        )
    assert schema.upgrade(engine) == ("0001", schema.head_revision())
    schema.require_current(engine)
    with engine.connect() as conn:
        assert conn.execute(text("select protected, encrypted, created_by from documents")).one() == (
            False,
            False,
            "",
        )
        # Every later migration kept the rows and gave the new columns their neutral values.
        assert conn.execute(
            text("select archive_no, stored_sha256, due_at, encrypted from recordings")
        ).one() == ("K-20200101-ST01-0001", None, None, False)
        assert conn.execute(
            text("select state, dev, ino, ctime_ns, moved_to, next_try from ingest_jobs")
        ).one() == ("done", None, None, None, None, None)
    # The newest tables work on the upgraded catalog through today's code: accounts (0007),
    # digest reservations (0009) and web sessions (0010).
    from datetime import UTC, datetime, timedelta

    from catalog import reservations, users
    from catalog.db import session_factory

    sessions = session_factory(engine)
    with sessions.begin() as session:
        user = users.add_user(
            session, "aud", "auditor", "a long enough password", protected=False, now=datetime.now(UTC)
        )
        sid = users.open_session(session, user, datetime.now(UTC))
    with sessions.begin() as session:
        hour = timedelta(hours=1)
        assert users.live_session(session, sid, user.id, datetime.now(UTC), idle=hour, lifetime=hour)
    held = reservations.reserve(sessions, "2" * 64, station="ST01")
    assert isinstance(held, reservations.Reservation)
    engine.dispose()
