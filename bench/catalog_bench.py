"""Catalog benchmarks: custody-chain appends and verification, number allocation.

Each figure is compared with a baseline measured in the same run on the same
database, so the ratio holds on a noisy shared machine better than the
absolute time does:

- append: one custody event per transaction (head-row lock, hash, insert,
  head update) against one plain INSERT of the same row per transaction;
- verify: walking and re-hashing the chain against merely reading its rows;
- allocate: drawing a number (own committed transaction) against an empty
  committed transaction.

    python -m bench.catalog_bench [--repeats 5] [--events 300] [--chain 20000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from catalog import custody, schema, sequences
from catalog.canonical import canonical_bytes
from catalog.chain import seal_v2
from catalog.checkpoint import Anchors
from catalog.db import make_engine, session_factory
from catalog.models import CustodyEventRow

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DETAILS = {"sha256": "ab" * 32, "size": 46_000_000, "station": "ST01", "note": "现场检查"}


def median_time(fn: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_backend(url: str, repeats: int, n_events: int, n_chain: int) -> list[tuple[str, float, float]]:
    engine = make_engine(url)
    schema.upgrade(engine)
    sessions = session_factory(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "create table bench_plain (seq integer primary key, time varchar(40), "
                "actor varchar(200), action varchar(64), subject varchar(1024), "
                "details text, prev_hash varchar(64), hash varchar(64))"
            )
        )
    counter = iter(range(1, 10**9))

    def plain_inserts() -> None:
        for _ in range(n_events):
            with engine.begin() as conn:
                conn.execute(
                    text("insert into bench_plain values (:s, 't', 'a', 'viewed', 'X', :d, :h, :h)"),
                    {"s": next(counter), "d": str(DETAILS), "h": "0" * 64},
                )

    def chain_appends() -> None:
        for _ in range(n_events):
            with sessions.begin() as s:
                custody.append(s, actor="bench", action="viewed", subject="X", details=DETAILS)

    def empty_transactions() -> None:
        for _ in range(n_events):
            with engine.begin() as conn:
                conn.execute(text("select 1"))

    def allocations() -> None:
        for _ in range(n_events):
            sequences.allocate(engine, "bench")

    rows = [
        (
            "append one event per transaction",
            median_time(chain_appends, repeats),
            median_time(plain_inserts, repeats),
        ),
        ("allocate one number", median_time(allocations, repeats), median_time(empty_transactions, repeats)),
    ]

    # A long chain for the verification walk, written in one transaction.
    with sessions.begin() as s:
        seq, prev = custody.head(s)
        now = datetime.now(UTC)
        batch = []
        for i in range(n_chain):
            ev = seal_v2(seq + i + 1, now, "bench", "viewed", f"chain-{i}", DETAILS, prev, None)
            prev = ev.hash
            batch.append(
                dict(
                    seq=ev.seq,
                    time=ev.time,
                    actor=ev.actor,
                    action=ev.action,
                    subject=ev.subject,
                    details=canonical_bytes(ev.details).decode(),
                    prev_hash=ev.prev_hash,
                    hash=ev.hash,
                    v=2,
                    body=ev.body.decode() if ev.body else None,
                    body_hash=ev.body_hash,
                )
            )
        s.execute(CustodyEventRow.__table__.insert(), batch)
        s.execute(text("update custody_head set seq = :s, hash = :h"), {"s": seq + n_chain, "h": prev})

    def read_rows() -> None:
        with sessions() as s:
            for _ in s.execute(
                text("select * from custody_events order by seq").execution_options(yield_per=1000)
            ):
                pass

    def verify_chain() -> None:
        with sessions() as s:
            assert custody.verify(s, Anchors()).ok  # no checkpoint: nothing to trust

    rows.append(
        (
            f"verify chain (~{n_chain} events)",
            median_time(verify_chain, repeats),
            median_time(read_rows, repeats),
        )
    )
    engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--chain", type=int, default=20000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    backends: list[tuple[str, str, Callable[[], None]]] = []
    tmp = tempfile.TemporaryDirectory()
    backends.append(
        ("SQLite (WAL, synchronous=FULL)", f"sqlite:///{Path(tmp.name) / 'b.sqlite3'}", lambda: None)
    )
    if not args.no_postgres:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"evidence_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

        backends.append(
            ("PostgreSQL 15 (local)", make_url(PG_ADMIN).set(database=name).render_as_string(False), drop)
        )

    print(f"median of {args.repeats} runs; {args.events} operations per run\n")
    print("| backend | operation | per op (ms) | baseline per op (ms) | ratio |")
    print("|---|---|---|---|---|")
    for label, url, cleanup in backends:
        try:
            for op, t, base in bench_backend(url, args.repeats, args.events, args.chain):
                per = args.chain if op.startswith("verify") else args.events
                print(
                    f"| {label} | {op} | {t / per * 1000:.3f} | {base / per * 1000:.3f} | {t / base:.2f}× |"
                )
        finally:
            cleanup()
    tmp.cleanup()


if __name__ == "__main__":
    main()
