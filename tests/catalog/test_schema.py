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
    assert schema.upgrade(engine) == ("0001", schema.head_revision())
    schema.require_current(engine)
    with engine.connect() as conn:
        assert conn.execute(text("select protected, encrypted, created_by from documents")).one() == (
            False,
            False,
            "",
        )
    engine.dispose()
