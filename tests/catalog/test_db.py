from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from catalog.db import make_engine, session_factory
from catalog.errors import InvalidInput
from catalog.models import Station


def test_times_come_back_aware_utc_with_microseconds(engine) -> None:
    moment = datetime(2020, 11, 5, 8, 50, 56, 123456, tzinfo=timezone(timedelta(hours=8)))
    with session_factory(engine).begin() as s:
        s.add(Station(id="ST01", unit="KZCG", created_at=moment))
    with session_factory(engine)() as s:
        back = s.execute(select(Station.created_at)).scalar_one()
    assert back == moment and back.tzinfo == UTC and back.microsecond == 123456


def test_naive_times_are_refused(engine) -> None:
    with pytest.raises(Exception) as exc, session_factory(engine).begin() as s:
        s.add(Station(id="ST02", unit="KZCG", created_at=datetime(2020, 1, 1)))
        s.flush()
    assert isinstance(exc.value.__cause__ or exc.value, InvalidInput) or "time zone" in str(exc.value)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("pragma journal_mode")).scalar() == "wal"
        assert conn.execute(text("pragma foreign_keys")).scalar() == 1
    engine.dispose()


def test_bad_url_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="not a valid URL"):
        make_engine("no such url")


def test_insert_missing_says_whether_it_inserted_also_with_a_generated_key(engine) -> None:
    """On PostgreSQL a table with a generated id is inserted with ``RETURNING id`` (row count
    -1): the answer must still be True the first time and False the second."""
    from catalog.db import insert_missing
    from catalog.models import Officer

    with session_factory(engine).begin() as s:
        assert insert_missing(s, Officer.__table__, {"number": "JX0227"}, ["number"]) is True
        assert insert_missing(s, Officer.__table__, {"number": "JX0227"}, ["number"]) is False
        assert insert_missing(
            s, Station.__table__, {"id": "ST01", "unit": "K", "created_at": datetime.now(UTC)}, ["id"]
        )
