"""Catalog at scale: the read paths of `case show`, `replay` and `recordings list` on a
catalog of a million recordings.

A fresh catalog (``catalog.schema.upgrade`` on a new SQLite file and/or a new PostgreSQL
database) is filled with bulk inserts (SQLAlchemy Core, batches of 10,000 rows; SQLite in one
transaction):

- 5 stations, 2,000 officers and 2,000 devices;
- 1,000,000 recordings started over two years (2024-11-27 to 2026-11-27), each by one of the
  officers (its own device), numbered per station and day as ``archive_number`` does, and a
  proxy (``derivatives``) for nine in ten of them;
- 100,000 cases, most with 0 to 5 items (written records and recordings), and one target case
  with exactly 50 items (20 documents, 30 recordings);
- about 1,000,000 custody events about those subjects (case opened, document added,
  recording ingested and linked, item viewed). Their hashes are fake (unique, chained by
  ``prev_hash`` but not computed by ``catalog.chain.seal``): these reads never verify the
  chain, and sealing a million events would dominate the set-up time.

PostgreSQL gets ``VACUUM ANALYZE`` after the load (what autovacuum does soon after a bulk
load); SQLite gets nothing (the application never runs ``ANALYZE``).

Then each read path is run as the command runs it, warm (3 runs discarded), and timed over
20 runs; the median and the slowest are reported:

- case show: ``cases.get_case`` + ``catalog.views.case_items`` + ``config.commands.base.case_json`` /
  ``item_json`` for the 50-item case, in a read-only session;
- replay: ``verify.replay.replay(..., verify=False)`` + ``item_json`` (it appends one
  ``replayed`` custody event per run);
- recordings list: ``find_recordings(officer=..., since=..., until=..., limit=1000)`` (the
  ``recordings_query`` executed) + ``recording_rows`` + the command's time formatting, for one
  officer and one month.

Every statement a path runs is captured once and explained (SQLite ``EXPLAIN QUERY PLAN``,
PostgreSQL ``EXPLAIN (ANALYZE, BUFFERS)``), so the report says which index each query uses.
``--try-index SQL`` (repeatable) creates an index in the bench database afterwards and
measures again. Before each measurement the run waits (up to 10 minutes) for the 1-minute load
average to fall below 2.0 and prints the load it ran under.

    python -m bench.catalog_scale [--recordings 1000000] [--cases 100000] [--events 1000000]
                                  [--backend sqlite|postgres|both] [--runs 20]
                                  [--try-index "CREATE INDEX ..."] [--dir /var/tmp] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url

from archive.context import ServiceContext
from archive.local_store import LocalStore
from archive.policy import ArchivePolicy
from bench.common import log, wait_for_quiet
from catalog import cases, schema
from catalog.db import make_engine, session_factory
from catalog.models import (
    Case,
    CaseItem,
    CustodyEventRow,
    Derivative,
    Device,
    Document,
    Officer,
    Recording,
    Station,
)
from catalog.numbering import NumberingFormats
from catalog.times import local_iso, parse_user_time

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ZONE = ZoneInfo("Asia/Shanghai")
UNIT = "KZCG"
START = datetime(2024, 11, 27, tzinfo=UTC)
SPAN = timedelta(days=730)
BATCH = 10_000
STATIONS = [f"ST{i:02d}" for i in range(1, 6)]
N_OFFICERS = 2_000
TARGET_DOCS, TARGET_RECS = 20, 30
LIST_OFFICER = "JX0742"
LIST_SINCE, LIST_UNTIL = "2026-03-01", "2026-03-31"
LIST_LIMIT = 1000  # the command's default --limit
TARGETS_MS = {"case show": 100.0, "replay": 100.0, "recordings list": 200.0}
DOC_TYPES = ["现场检查笔录", "询问笔录", "行政处罚决定书", "责令改正通知书", "送达回证"]


# --- generation --------------------------------------------------------------------------


def fake_hex(rng: random.Random) -> str:
    return rng.getrandbits(256).to_bytes(32, "big").hex()


def rec_sha(i: int) -> str:
    """A recording's (fake) SHA-256, the same wherever it is needed."""
    return hashlib.sha256(b"bench-recording-%d" % i).hexdigest()


@dataclass
class Facts:
    """What generation leaves for the measurements."""

    target_case: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _batches(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def generate(engine: Engine, n_recordings: int, n_cases: int, n_events: int, seed: int) -> Facts:
    rng = random.Random(seed)
    facts = Facts()
    sqlite = engine.dialect.name == "sqlite"
    now = START + SPAN

    def insert(conn, table, rows: Iterator[dict[str, Any]], name: str) -> None:
        started, n = time.perf_counter(), 0
        for batch in _batches(rows):
            conn.execute(table.insert(), batch)
            n += len(batch)
        took = time.perf_counter() - started
        facts.counts[name], facts.seconds[name] = n, took
        log(f"    {name:<15} {n:>9,} rows  {took:6.1f} s  ({n / max(took, 1e-9):,.0f} rows/s)")

    # Recordings: time order (as ingest writes them), numbered per station and local day.
    # The facts the cases and events need are drawn first; the rows are built while inserting.
    step = SPAN / n_recordings
    rec_archive: list[str] = []
    rec_kind: list[str] = []
    rec_time: list[datetime] = []
    rec_officer: list[int] = []
    day_seq: dict[tuple[str, str], int] = {}
    for i in range(n_recordings):
        officer = rng.randrange(1, N_OFFICERS + 1)
        station = STATIONS[officer % len(STATIONS)]
        start = START + step * i + timedelta(seconds=rng.randrange(0, 60))
        day = start.astimezone(ZONE).strftime("%Y%m%d")
        seq = day_seq[(day, station)] = day_seq.get((day, station), 0) + 1
        r = rng.random()
        rec_archive.append(f"{UNIT}-{day}-{station}-{seq:04d}")
        rec_kind.append("video" if r < 0.85 else "audio" if r < 0.95 else "photo")
        rec_time.append(start)
        rec_officer.append(officer)

    def recordings() -> Iterator[dict[str, Any]]:
        for i in range(n_recordings):
            officer, kind, start, archive_no = rec_officer[i], rec_kind[i], rec_time[i], rec_archive[i]
            device = officer if rng.random() < 0.95 else rng.randrange(1, N_OFFICERS + 1)
            ext = {"video": "mp4", "audio": "wav", "photo": "jpg"}[kind]
            size = (
                rng.randrange(20_000_000, 500_000_000)
                if kind == "video"
                else rng.randrange(1_000_000, 50_000_000)
                if kind == "audio"
                else rng.randrange(500_000, 8_000_000)
            )
            duration = None if kind == "photo" else float(rng.randrange(10, 1800))
            sha = rec_sha(i)
            local = start.astimezone(ZONE)
            key_base = f"originals/{local:%Y/%m/%d}/{archive_no}"
            yield {
                "id": i + 1,
                "archive_no": archive_no,
                "kind": kind,
                "sha256": sha,
                "sm3": None,
                "size": size,
                "original_name": f"A{device:06d}@{local:%Y%m%d%H%M%S}{archive_no[-4:]}.{ext}",
                "station_id": archive_no.split("-")[2],
                "device_id": device,
                "officer_id": officer,
                "start_time": start,
                "duration_s": duration,
                "ingested_at": start + timedelta(hours=rng.randrange(1, 48)),
                "storage_key": f"{key_base}.{ext}",
                "storage_version": None,
                "manifest_key": f"{key_base}.manifest.json",
                "content_type": {"mp4": "video/mp4", "wav": "audio/wav", "jpg": "image/jpeg"}[ext],
                "status": "archived",
                "damaged": False,
                "damage_reason": None,
                "important": rng.random() < 0.02,
                "protected": False,
                "encrypted": False,
                "stored_sha256": sha,
                "stored_size": size,
                "flags": "{}",
                "media_info": "{}",
                "sources": "{}",
                "retain_until": start + timedelta(days=183),
                "pending_since": None,
                "due_at": None,
                "last_verified_at": None,
            }

    def derivatives() -> Iterator[dict[str, Any]]:
        """A proxy for nine recordings in ten (made, or still pending, or failed)."""
        n = 0
        for i in range(n_recordings):
            if rng.random() >= 0.9:
                continue
            n += 1
            r = rng.random()
            status = "ok" if r < 0.97 else "pending" if r < 0.99 else "failed"
            sha = hashlib.sha256(b"bench-proxy-%d" % i).hexdigest() if status == "ok" else None
            ext = "jpg" if rec_kind[i] == "photo" else "m4a" if rec_kind[i] == "audio" else "mp4"
            yield {
                "id": n,
                "recording_id": i + 1,
                "kind": "proxy",
                "status": status,
                "sha256": sha,
                "size": rng.randrange(1_000_000, 60_000_000) if sha else None,
                "storage_key": f"derivatives/{rec_archive[i]}/proxy-{sha[:12]}.{ext}" if sha else None,
                "storage_version": None,
                "content_type": None,
                "encrypted": False,
                "created_at": rec_time[i] + timedelta(hours=3),
                "error": "ffmpeg failed" if status == "failed" else None,
                "last_verified_at": None,
            }

    # Cases in opening order; one in the middle is the target with 50 items.
    target_index = n_cases // 2
    case_rows: list[dict[str, Any]] = []
    doc_rows: list[dict[str, Any]] = []
    item_rows: list[dict[str, Any]] = []
    events: list[tuple[datetime, str, str, str, str]] = []  # time, actor, action, subject, details
    year_seq: dict[int, int] = {}
    case_step = SPAN / n_cases
    for c in range(n_cases):
        opened = START + case_step * c + timedelta(minutes=rng.randrange(0, 600))
        year = opened.astimezone(ZONE).year
        seq = year_seq[year] = year_seq.get(year, 0) + 1
        case_key = f"{UNIT}-{year}-{seq:04d}"
        case_id = c + 1
        closed = rng.random() < 0.7 and opened + timedelta(days=60) < now
        case_rows.append(
            {
                "id": case_id,
                "case_key": case_key,
                "number": f"开城管罚立〔{year}〕{seq}号",
                "title": rng.choice(["占道经营", "违法建设", "乱堆乱放", "无证经营", "噪声扰民"]),
                "case_type": rng.choice(["simple", "general"]),
                "unit": UNIT,
                "major": False,
                "status": "closed" if closed else "open",
                "opened_on": opened.astimezone(ZONE).date(),
                "closed_on": (opened + timedelta(days=60)).astimezone(ZONE).date() if closed else None,
                "created_at": opened,
                "created_by": f"clerk{rng.randrange(1, 40)}",
            }
        )
        events.append(
            (
                opened,
                "clerk",
                "case_opened",
                case_key,
                json.dumps({"number": case_rows[-1]["number"], "unit": UNIT}, ensure_ascii=False),
            )
        )
        if c == target_index:
            facts.target_case = case_key
            n_docs, n_recs = TARGET_DOCS, TARGET_RECS
        else:
            n_items = rng.choice([0, 1, 1, 2, 2, 3, 3, 3, 4, 5])
            n_docs = min(n_items, rng.choice([0, 1, 1, 2]))
            n_recs = n_items - n_docs
        # Recordings made around the opening (the case's own on-site recordings).
        around = max(0, min(n_recordings - 1, int((opened - START) / step)))
        chosen: set[int] = set()
        while len(chosen) < n_recs:
            chosen.add(max(0, min(n_recordings - 1, around - rng.randrange(0, 400))))
        kinds = ["document"] * n_docs + ["rec"] * n_recs
        rng.shuffle(kinds)
        rec_list = sorted(chosen)
        item_seq = 0
        for kind in kinds:
            item_seq += 1
            linked = opened + timedelta(hours=rng.randrange(1, 24 * 20))
            item_id = len(item_rows) + 1
            if kind == "document":
                doc_id = len(doc_rows) + 1
                item_no = f"{case_key}-{item_seq:03d}D"
                sha = fake_hex(rng)
                size = rng.randrange(50_000, 3_000_000)
                doc_rows.append(
                    {
                        "id": doc_id,
                        "case_id": case_id,
                        "doc_type": rng.choice(DOC_TYPES),
                        "doc_number": f"开城管字〔{year}〕{rng.randrange(1, 9999)}号",
                        "doc_date": linked - timedelta(hours=1),
                        "officer": f"JX{rng.randrange(1, N_OFFICERS + 1):04d}",
                        "sha256": sha,
                        "sm3": None,
                        "size": size,
                        "original_name": f"{item_no}.pdf",
                        "content_type": "application/pdf",
                        "storage_key": f"documents/{case_key}/{item_no}.pdf",
                        "storage_version": None,
                        "manifest_key": f"documents/{case_key}/{item_no}.manifest.json",
                        "protected": False,
                        "encrypted": False,
                        "stored_sha256": sha,
                        "stored_size": size,
                        "created_at": linked,
                        "created_by": "clerk",
                        "last_verified_at": None,
                    }
                )
                item_rows.append(
                    {
                        "id": item_id,
                        "case_id": case_id,
                        "item_no": item_no,
                        "seq": item_seq,
                        "kind": "document",
                        "recording_id": None,
                        "document_id": doc_id,
                        "linked_at": linked,
                        "linked_by": "clerk",
                        "unlinked_at": None,
                        "unlinked_by": None,
                        "unlink_reason": None,
                    }
                )
                events.append(
                    (
                        linked,
                        "clerk",
                        "document_added",
                        item_no,
                        json.dumps({"case_key": case_key, "sha256": sha, "size": size}),
                    )
                )
            else:
                r = rec_list.pop()
                letter = {"video": "V", "audio": "A", "photo": "P"}[rec_kind[r]]
                item_rows.append(
                    {
                        "id": item_id,
                        "case_id": case_id,
                        "item_no": f"{case_key}-{item_seq:03d}{letter}",
                        "seq": item_seq,
                        "kind": rec_kind[r],
                        "recording_id": r + 1,
                        "document_id": None,
                        "linked_at": linked,
                        "linked_by": "clerk",
                        "unlinked_at": None,
                        "unlinked_by": None,
                        "unlink_reason": None,
                    }
                )
                events.append(
                    (
                        linked,
                        "clerk",
                        "linked",
                        rec_archive[r],
                        json.dumps({"case_key": case_key, "item_no": item_rows[-1]["item_no"]}),
                    )
                )
            if c == target_index:  # a busy case: looked at and exported a few times
                subject = item_rows[-1]["item_no"]
                for _ in range(rng.randrange(2, 6)):
                    events.append(
                        (
                            linked + timedelta(days=rng.randrange(1, 30)),
                            "auditor",
                            rng.choice(["viewed", "exported", "verified"]),
                            subject,
                            "{}",
                        )
                    )
    # Recording events: ingested (and stored) for as many recordings as the budget allows,
    # always for the recordings linked to a case.
    linked_recs = {row["recording_id"] - 1 for row in item_rows if row["recording_id"]}
    budget = max(0, n_events - len(events) - len(linked_recs) * 2)
    every = max(1, n_recordings // max(1, budget)) if budget else 0

    with engine.begin() as conn:
        if sqlite:
            conn.exec_driver_sql("PRAGMA cache_size=-1000000")  # 1 GB for the load only
        log("  generating and inserting")
        conn.execute(
            Station.__table__.insert(),
            [{"id": s, "unit": UNIT, "name": f"采集站 {s}", "created_at": START} for s in STATIONS],
        )
        conn.execute(
            Officer.__table__.insert(),
            [{"id": i, "number": f"JX{i:04d}", "name": None, "unit": UNIT} for i in range(1, N_OFFICERS + 1)],
        )
        conn.execute(
            Device.__table__.insert(),
            [
                {"id": i, "serial": f"A{i:06d}", "model": "DSJ-V9", "unit": UNIT}
                for i in range(1, N_OFFICERS + 1)
            ],
        )
        insert(conn, Recording.__table__, recordings(), "recordings")
        insert(conn, Derivative.__table__, derivatives(), "derivatives")
        insert(conn, Case.__table__, iter(case_rows), "cases")
        insert(conn, Document.__table__, iter(doc_rows), "documents")
        insert(conn, CaseItem.__table__, iter(item_rows), "case_items")

        def recording_events() -> Iterator[tuple[datetime, str, str, str, str]]:
            for r in range(n_recordings):
                if r in linked_recs or (every and r % every == 0):
                    t = rec_time[r] + timedelta(hours=1)
                    yield (
                        t,
                        "station:" + rec_archive[r].split("-")[2],
                        "ingested",
                        rec_archive[r],
                        json.dumps({"sha256": rec_sha(r), "kind": rec_kind[r]}),
                    )
                    if r in linked_recs:
                        yield (
                            t,
                            "station:" + rec_archive[r].split("-")[2],
                            "stored",
                            rec_archive[r],
                            json.dumps({"sha256": rec_sha(r)}),
                        )

        fixed = events + list(recording_events())
        fixed.sort(key=lambda e: e[0])
        prev = "0" * 64

        def event_rows() -> Iterator[dict[str, Any]]:
            nonlocal prev
            for seq, (t, actor, action, subject, details) in enumerate(fixed, start=1):
                digest = hashlib.sha256(b"bench-event-%d" % seq).hexdigest()  # fake, unique
                yield {
                    "seq": seq,
                    "time": t,
                    "actor": actor,
                    "action": action,
                    "subject": subject,
                    "details": details,
                    "prev_hash": prev,
                    "hash": digest,
                }
                prev = digest

        insert(conn, CustodyEventRow.__table__, event_rows(), "custody_events")
        conn.execute(
            text("UPDATE custody_head SET seq = :s, hash = :h WHERE id = 1"), {"s": len(fixed), "h": prev}
        )
        if not sqlite:
            for table in (
                "recordings",
                "derivatives",
                "cases",
                "documents",
                "case_items",
                "officers",
                "devices",
            ):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
        log("    committing")
    return facts


# --- the read paths, as the commands run them -------------------------------------------------


class Paths:
    def __init__(self, url: str, target_case: str) -> None:
        from config.commands.base import case_json, item_json

        self.case_json, self.item_json = case_json, item_json
        self.engine = make_engine(url)
        self.reader = make_engine(url, readonly=True)
        self.sessions = session_factory(self.engine)
        self.reader_sessions = session_factory(self.reader)
        self.target_case = target_case
        # Replay without --verify never reads storage; an empty local store stands in.
        self.services = ServiceContext(
            self.engine,
            self.sessions,
            LocalStore(Path(tempfile.mkdtemp()), lock_mode="COMPLIANCE"),
            NumberingFormats(),
            ArchivePolicy(zone=ZONE),
            actor="bench",
        )
        self.captured: list[tuple[Engine, str, Any]] | None = None
        for engine in (self.engine, self.reader):
            event.listen(engine, "before_cursor_execute", self._capture(engine))

    def _capture(self, engine: Engine):
        def capture(conn, cursor, statement, parameters, context, executemany) -> None:
            if self.captured is not None:
                self.captured.append((engine, statement, parameters))

        return capture

    def case_show(self) -> int:
        from catalog.views import case_items

        with self.reader_sessions() as session:
            found = cases.get_case(session, self.target_case)
            data = {
                "case": self.case_json(found),
                "items": [self.item_json(i, ZONE) for i in case_items(session, found)],
            }
        json.dumps(data, ensure_ascii=False)
        return len(data["items"])

    def replay(self) -> int:
        from verify.replay import replay

        header, items = replay(self.services, self.target_case, verify=False)
        data = {"case": header, "items": [self.item_json(i, ZONE) for i in items]}
        return len(data["items"])

    def recordings_list(self) -> int:
        from catalog.views import find_recordings, recording_rows

        since = parse_user_time(LIST_SINCE, ZONE)
        until = parse_user_time(LIST_UNTIL, ZONE, end_of_day=True)
        with self.reader_sessions() as session:
            rows = recording_rows(
                session,
                find_recordings(session, officer=LIST_OFFICER, since=since, until=until, limit=LIST_LIMIT),
            )
            for row in rows:
                for key in ("start_time", "ingested_at", "retain_until"):
                    row[key] = local_iso(row.get(key), ZONE)
        return len(rows)

    def all(self) -> dict[str, Callable[[], int]]:
        return {"case show": self.case_show, "replay": self.replay, "recordings list": self.recordings_list}

    def dispose(self) -> None:
        self.engine.dispose()
        self.reader.dispose()


def measure(fn: Callable[[], int], runs: int, warmup: int = 3) -> tuple[list[float], int]:
    for _ in range(warmup):
        fn()
    times, n = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - start)
    return times, n


# --- plans ------------------------------------------------------------------------------------

_FROM = re.compile(r"\bFROM\s+(\w+)", re.I)


def label(statement: str) -> str:
    s = " ".join(statement.split())
    head = s.split()[0].upper()
    table = _FROM.search(s)
    if head == "SELECT":
        what = table.group(1) if table else "?"
        if "GROUP BY" in s.upper():
            what += " (grouped)"
        if "FOR UPDATE" in s.upper():
            what += " (for update)"
        if " JOIN " in s.upper():
            what += " + " + ", ".join(re.findall(r"JOIN\s+(\w+)", s, re.I))
        return f"SELECT {what}"
    words = s.split()
    return " ".join(words[:3] if head in ("INSERT", "DELETE") else words[:2])


def explain(engine: Engine, statement: str, parameters: Any) -> tuple[str, list[str]]:
    """(one-line summary of the access paths, full plan lines) of one captured statement."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            lines = [row[3] for row in cur.fetchall()]
            summary = "; ".join(lines)
        else:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            lines = [row[0] for row in cur.fetchall()]
            nodes = []
            for line in lines:
                if "(cost=" not in line:
                    continue  # details (keys, conditions, buffers), not plan nodes
                node = line.strip().removeprefix("->").strip().split("  (cost=")[0]
                nodes.append(node)
            total = next((line for line in lines if line.startswith("Execution Time")), "")
            summary = "; ".join(nodes) + (f" [{total.split(': ')[1]}]" if total else "")
        raw.rollback()
        return summary, lines
    finally:
        raw.close()


def plans(paths: Paths, name: str, fn: Callable[[], int]) -> list[tuple[str, str, list[str]]]:
    paths.captured = []
    try:
        fn()
    finally:
        captured, paths.captured = paths.captured, None
    out = []
    for engine, statement, parameters in captured:
        s = statement.lstrip().upper()
        if s.startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SAVEPOINT", "RELEASE")):
            continue
        if not s.startswith("SELECT"):
            out.append((label(statement), "(write, not explained)", []))
            continue
        summary, lines = explain(engine, statement, parameters)
        out.append((label(statement), summary, lines))
    return out


# --- backends ---------------------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    url: str
    cleanup: Callable[[], None]


def sqlite_backend(base: Path, keep: bool) -> Backend:
    path = base / f"catalog-scale-{os.getpid()}.sqlite3"

    def cleanup() -> None:
        if keep:
            log(f"  kept {path}")
            return
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    return Backend("SQLite", f"sqlite:///{path}", cleanup)


def postgres_backend(keep: bool) -> Backend:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"evidence_bench_scale_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def cleanup() -> None:
        if keep:
            log(f"  kept database {name}")
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return Backend("PostgreSQL 15", make_url(PG_ADMIN).set(database=name).render_as_string(False), cleanup)


def find_target(url: str) -> str:
    engine = make_engine(url, readonly=True)
    try:
        with engine.connect() as conn:
            case_id = conn.execute(
                select(CaseItem.case_id).group_by(CaseItem.case_id).having(text("count(*) = 50"))
            ).scalar_one()
            return conn.execute(select(Case.case_key).where(Case.id == case_id)).scalar_one()
    finally:
        engine.dispose()


def run_backend(backend: Backend, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"backend": backend.name, "rows": [], "plans": {}, "tried": []}
    log(f"== {backend.name}")
    if args.reuse:
        target = find_target(backend.url)
    else:
        engine = make_engine(backend.url)
        schema.upgrade(engine)
        started = time.perf_counter()
        facts = generate(engine, args.recordings, args.cases, args.events, args.seed)
        engine.dispose()
        result["load_seconds"] = time.perf_counter() - started
        result["counts"] = facts.counts
        target = facts.target_case
        if backend.url.startswith("postgresql"):
            started = time.perf_counter()
            plain = create_engine(backend.url, isolation_level="AUTOCOMMIT")
            with plain.connect() as conn:
                conn.execute(text("VACUUM ANALYZE"))
            plain.dispose()
            log(f"    VACUUM ANALYZE  {time.perf_counter() - started:6.1f} s")
        log(f"  loaded in {result['load_seconds']:.0f} s; target case {target}")
    result["target_case"] = target

    def one_round(tag: str) -> list[dict[str, Any]]:
        rows = []
        paths = Paths(backend.url, target)
        try:
            for name, fn in paths.all().items():
                load = wait_for_quiet(f"{name} ({backend.name}{tag})", not args.no_wait)
                times, n = measure(fn, args.runs)
                med, worst = statistics.median(times) * 1000, max(times) * 1000
                rows.append(
                    {
                        "backend": backend.name + tag,
                        "operation": name,
                        "median_ms": med,
                        "max_ms": worst,
                        "rows": n,
                        "target_ms": TARGETS_MS[name],
                        "load": load,
                    }
                )
                log(f"    {name:<16} median {med:7.2f} ms  max {worst:7.2f} ms  ({n} rows)")
                result["plans"][name + tag] = plans(paths, name, fn)
        finally:
            paths.dispose()
        return rows

    result["rows"] += one_round("")
    for sql in args.try_index:
        log(f"  trying: {sql}")
        plain = (
            create_engine(backend.url, isolation_level="AUTOCOMMIT")
            if backend.url.startswith("postgresql")
            else make_engine(backend.url)
        )
        with plain.begin() if not backend.url.startswith("postgresql") else plain.connect() as conn:
            conn.execute(text(sql))
            if backend.url.startswith("postgresql"):
                conn.execute(text("ANALYZE"))
        plain.dispose()
        result["tried"].append(sql)
        result["rows"] += one_round(" + index")
    return result


def print_report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\n{args.recordings:,} recordings, {args.cases:,} cases, ~{args.events:,} custody "
        f"events; median and slowest of {args.runs} warm runs\n"
    )
    print("| backend | operation | rows | median (ms) | slowest (ms) | target (ms) | met | load |")
    print("|---|---|---|---|---|---|---|---|")
    for result in results:
        for r in result["rows"]:
            met = "yes" if r["median_ms"] < r["target_ms"] else "NO"
            print(
                f"| {r['backend']} | {r['operation']} | {r['rows']} | {r['median_ms']:.1f} | "
                f"{r['max_ms']:.1f} | < {r['target_ms']:.0f} | {met} | {r['load']:.2f} |"
            )
    for result in results:
        if "counts" in result:
            counts = ", ".join(f"{k} {v:,}" for k, v in result["counts"].items())
            print(
                f"\n{result['backend']}: loaded in {result['load_seconds']:.0f} s ({counts}); "
                f"target case {result['target_case']}"
            )
        for sql in result["tried"]:
            print(f"{result['backend']}: tried `{sql}`")
    for result in results:
        for name, entries in result["plans"].items():
            print(f"\n### {result['backend']}: {name}\n")
            print("| statement | access path |")
            print("|---|---|")
            for what, summary, _ in entries:
                print(f"| {what} | {summary.replace('|', '/')} |")
    if args.full_plans:
        for result in results:
            for name, entries in result["plans"].items():
                for what, _, lines in entries:
                    if lines:
                        print(f"\n-- {result['backend']}: {name}: {what}")
                        print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.catalog_scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--recordings", type=int, default=1_000_000)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="custody events, about (default 1,000,000)"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument(
        "--try-index",
        action="append",
        default=[],
        metavar="SQL",
        help="create this index in the bench database, then measure again",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("/var/tmp"),
        help="where the SQLite catalog goes (the real disk, not tmpfs)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases (prints where)")
    parser.add_argument(
        "--reuse",
        metavar="URL",
        default=None,
        help="measure an already generated catalog (a URL) instead of making one",
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="measure at once whatever the load (for trying the script out)"
    )
    parser.add_argument("--full-plans", action="store_true", help="print every plan in full")
    args = parser.parse_args(argv)
    if args.cases < 2 or args.recordings < 1000:
        parser.error("give at least 1,000 recordings and 2 cases")

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # so that the databases are dropped on the way out

    signal.signal(signal.SIGTERM, on_term)
    # Each database is made when its turn comes, so a failure never leaves one behind.
    makers: list[Callable[[], Backend]] = []
    if args.reuse:
        kind = "SQLite" if args.reuse.startswith("sqlite") else "PostgreSQL 15"
        makers.append(lambda: Backend(kind, args.reuse, lambda: None))
    else:
        if args.backend in ("sqlite", "both"):
            args.dir.mkdir(parents=True, exist_ok=True)
            makers.append(lambda: sqlite_backend(args.dir, args.keep))
        if args.backend in ("postgres", "both"):
            makers.append(lambda: postgres_backend(args.keep))
    results = []
    began = time.monotonic()
    try:
        for make in makers:
            backend = make()
            try:
                results.append(run_backend(backend, args))
            finally:
                backend.cleanup()
    finally:
        log(f"total {time.monotonic() - began:.0f} s")
    print_report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
