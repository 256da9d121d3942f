"""Number allocation: each number is committed the moment it is handed out.

A number is drawn in a short transaction of its own and committed at once,
so a later failure of the work that uses it leaves a gap, never a reuse. The
row update takes a row lock on PostgreSQL (and the database write lock on
SQLite), which serializes concurrent allocators in the same scope.
"""

from __future__ import annotations

from sqlalchemy import Engine, Insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .models import NumberSequence


def _insert_if_absent(dialect: str, scope: str) -> Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(NumberSequence)
        .values(scope=scope, last_value=0)
        .on_conflict_do_nothing(index_elements=["scope"])
    )


def allocate(engine: Engine, scope: str) -> int:
    """Hand out the next number of ``scope`` (1, 2, …); committed before returning."""
    with engine.begin() as conn:
        conn.execute(_insert_if_absent(engine.dialect.name, scope))
        return conn.execute(
            update(NumberSequence)
            .where(NumberSequence.scope == scope)
            .values(last_value=NumberSequence.last_value + 1)
            .returning(NumberSequence.last_value)
        ).scalar_one()


def raise_floor(engine: Engine, scope: str, at_least: int) -> int:
    """Make sure the next number of ``scope`` is above ``at_least`` (used by rebuilds)."""
    with engine.begin() as conn:
        conn.execute(_insert_if_absent(engine.dialect.name, scope))
        conn.execute(
            update(NumberSequence)
            .where(NumberSequence.scope == scope, NumberSequence.last_value < at_least)
            .values(last_value=at_least)
        )
        return conn.execute(
            select(NumberSequence.last_value).where(NumberSequence.scope == scope)
        ).scalar_one()


def current(engine: Engine, scope: str) -> int:
    """The last number issued in ``scope`` (0 when none)."""
    with engine.connect() as conn:
        value = conn.execute(select(NumberSequence.last_value).where(NumberSequence.scope == scope)).scalar()
    return int(value or 0)
