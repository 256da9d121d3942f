"""Rebuilding a catalog from storage alone: the disaster-recovery drill.

Storage is self-describing: manifests beside originals and documents, case
events, the custody chain in segments with signed checkpoints, derivatives
named by digest, tombstones. ``rebuild`` reads them into an empty catalog and
sets every number sequence past every number ever issued (tombstones
included), so no number is reused; ``compare`` then lists what differs from
the live catalog. Custody events after the last checkpoint exist only in the
live catalog (they are copied out with the next checkpoint) and are reported
as such, not as differences.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from archive.checkpoints import EVENTS, LINKS, TOKEN, stored_checkpoints
from archive.errors import ObjectMissing
from archive.kek_rotation import restore_current
from archive.key_wraps import restore_rows
from archive.keyrotation import CHANGES, stored_statements
from archive.layout import checkpoint_folder, checkpoint_key
from archive.reading import plain_size
from archive.records import get_json
from archive.store import ObjectStore
from catalog import jcs, keyhistory, metadata_fill, schema, sequences, timestamp
from catalog.actions import Action
from catalog.canonical import canonical_bytes, parse_instant
from catalog.chain import CustodyEvent, check_chain, event_from_body
from catalog.checkpoint import Anchors, Checkpoint, raw_from_pem
from catalog.custody import checkpoint_row
from catalog.errors import InvalidInput
from catalog.models import (
    Case,
    CaseItem,
    CustodyEventRow,
    CustodyHead,
    Derivative,
    Document,
    DocumentPage,
    Hold,
    Recording,
    Tombstone,
)
from catalog.numbering import NumberingFormats, parse_number
from catalog.recordings import device_row, officer_row, station_row
from catalog.timestamp import TimeTrust


@dataclass
class RebuildReport:
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    last_checkpoint_seq: int = 0
    signers: set[str] = field(default_factory=set)
    kek_id: str | None = None  # the current key-encryption key, as storage tells it


def _when(text: str | None) -> datetime | None:
    return parse_instant(text) if text else None


def rebuild(
    store: ObjectStore,
    engine: Engine,
    *,
    formats: NumberingFormats,
    anchors: Anchors | None = None,
    time_trust: TimeTrust | None = None,
) -> RebuildReport:
    """Rebuild into ``engine``; every checkpoint must be signed by a key ``anchors`` trusts
    (a signer not trusted is a problem: a writable storage location proves nothing itself).
    ``time_trust`` (the TSA's CA) checks the checkpoints' time-stamp tokens, which decide
    whether a retired key's checkpoints made before its compromise stay trusted."""
    schema.upgrade(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as session:
        if (
            session.execute(select(func.count()).select_from(Recording)).scalar()
            or session.execute(select(func.count()).select_from(Case)).scalar()
        ):
            raise InvalidInput("the target catalog is not empty", hint="rebuild into a new, empty database")
    report = RebuildReport()
    with sessions.begin() as session:
        _custody(store, session, report, anchors if anchors is not None else Anchors(), time_trust)
        cases, links = _cases(store, session, report, formats)
        by_number = _originals(store, session, report)
        _fills(session, by_number, report)
        _documents(store, session, cases, report)
        _links(session, cases, by_number, links, report)
        _derivatives(store, session, by_number, report)
        _tombstones(store, session, report)
        restored, refused = restore_rows(store, session)  # the catalog's copies of key wraps
        report.counts["key_wraps"] = restored
        report.problems += refused
        report.kek_id = restore_current(session, datetime.now(UTC))
    _sequences(engine, sessions, formats)
    return report


def _custody(
    store: ObjectStore,
    session: Session,
    report: RebuildReport,
    anchors: Anchors,
    time_trust: TimeTrust | None,
) -> None:
    events: list[CustodyEvent] = []
    for info in store.list("custody/segments/"):  # v1 segments
        for line in b"".join(store.read(info.key)).splitlines():
            if line.strip():
                events.append(CustodyEvent.from_record(json.loads(line)))
    for info in store.list("custody/checkpoints/"):  # v2 segments, one folder per checkpoint
        if info.key.endswith("/" + EVENTS):
            folder = info.key.rsplit("/", 1)[0]
            try:
                events += _v2_segment(store, folder)
            except (ValueError, KeyError, ObjectMissing, jcs.NotCanonical) as exc:
                report.problems.append(f"{folder}: {exc}")
    events.sort(key=lambda e: e.seq)
    chain = check_chain(events)
    report.problems += [f"custody event {p.seq}: {p.detail}" for p in chain.problems]
    for e in events:
        session.add(
            CustodyEventRow(
                seq=e.seq,
                time=e.time,
                actor=e.actor,
                action=e.action,
                subject=e.subject,
                details=canonical_bytes(e.details).decode(),
                prev_hash=e.prev_hash,
                hash=e.hash,
                v=e.v,
                body=e.body.decode("utf-8") if e.body is not None else None,
                body_hash=e.body_hash,
            )
        )
    session.flush()
    head = session.get(CustodyHead, 1)
    assert head is not None, "the first schema migration creates the custody head row"
    head.seq, head.hash = chain.last_seq, chain.last_hash
    for info in store.list("custody/keys/"):
        if not re.fullmatch(r"custody/keys/[0-9a-f]{64}\.pem", info.key):
            continue  # the key-change statements in changes/, read below
        try:
            anchors.add_key(raw_from_pem(b"".join(store.read(info.key))))
        except InvalidInput as exc:
            report.problems.append(f"{info.key}: {exc.message}")
    # The keys' history: restored as it is in storage, and followed from the pinned keys.
    changes, retirements, bad = stored_statements(store)
    report.problems += [f"{CHANGES}{name}: {what}" for name, what in bad]
    restoring: list[keyhistory.KeyChange | keyhistory.Retirement] = [*changes, *retirements]
    for statement in restoring:
        restored = keyhistory.to_row(statement, statement.time)
        restored.stored = True
        session.add(restored)
    history = keyhistory.resolve(anchors, changes, retirements)
    report.problems += [f"{CHANGES}{name}: {what}" for name, what in history.problems]
    found, unreadable = stored_checkpoints(store)
    report.problems += unreadable
    report.problems += [f"{CHANGES}{name}: {what}" for name, what in history.check_committed(found)]
    for cp in sorted(found, key=lambda c: c.n):
        token, existed_by = None, None
        if cp.v == 2:  # its time-stamp token, when one was copied beside it
            try:
                token = b"".join(store.read(f"{checkpoint_folder(cp.n)}/{TOKEN}"))
            except ObjectMissing:
                pass
            # A retired key's checkpoint is trusted only with a token, checked against the
            # TSA's CA, that shows it existed before the compromise; without the CA, reported.
            stamps = timestamp.review([(cp.n, cp.signed_bytes(), cp.time, token)], time_trust)
            report.problems += [f"checkpoint {cp.n}: time-stamp token: {b['problem']}" for b in stamps.bad]
            existed_by = stamps.existed_by.get(cp.n)
        verdict = history.judge(cp, _carried(cp), existed_by)
        if verdict is not None:
            report.problems.append(f"checkpoint {cp.n}: {verdict}")
        report.signers.add(cp.fingerprint or "?")
        if not cp.public_key and cp.key in anchors.keys:  # from the key history beside it
            cp = dataclasses.replace(cp, public_key=base64.b64encode(anchors.keys[cp.key]).decode())
        row = checkpoint_row(
            cp, checkpoint_folder(cp.n) + "/checkpoint.json" if cp.v == 2 else checkpoint_key(cp.n)
        )
        if token is not None:
            row.tsa_token, row.tsa_stored = token, True
        session.add(row)
        report.last_checkpoint_seq = max(report.last_checkpoint_seq, cp.seq)
    report.counts["custody_events"] = len(events)


def _carried(cp: Checkpoint) -> bytes | None:
    try:
        return base64.b64decode(cp.public_key, validate=True) or None
    except ValueError:
        return None


def _v2_segment(store: ObjectStore, folder: str) -> list[CustodyEvent]:
    """A v2 checkpoint's events, each line read with its link (same order, same count)."""
    lines = [x for x in b"".join(store.read(f"{folder}/{EVENTS}")).split(b"\n") if x]
    links = [x for x in b"".join(store.read(f"{folder}/{LINKS}")).split(b"\n") if x]
    if len(lines) != len(links):
        raise ValueError(f"{len(lines)} events but {len(links)} links")
    found = []
    for line, link in zip(lines, links, strict=True):
        seq, prev, body_hash, digest = link.decode("ascii").split("\t")
        if body_hash == "-":
            found.append(CustodyEvent.from_record(json.loads(line)))
        else:
            event = event_from_body(line, prev, digest)
            if event.seq != int(seq):
                raise ValueError(f"event {event.seq} is on the line of link {seq}")
            found.append(event)
    return found


def _cases(store: ObjectStore, session: Session, report: RebuildReport, formats: NumberingFormats):
    cases: dict[str, Case] = {}
    links: list[tuple[str, dict[str, Any], datetime, str]] = []
    unlinked: dict[str, tuple[datetime, str, str]] = {}
    for info in store.list("cases/"):
        record = get_json(store, info.key)
        event = record["custody"]
        key, details, when = record["case_key"], event.get("details") or {}, parse_instant(event["time"])
        action = event["action"]
        if action == Action.CASE_OPENED:
            # Old events may lack the unit: read it from the key with the configured format.
            unit = details.get("unit") or (parse_number(formats.case_key, key) or {}).get("unit") or ""
            case = Case(
                case_key=key,
                number=record["number"],
                title=details.get("title"),
                case_type=details.get("type"),
                unit=unit,
                major=bool(details.get("major")),
                status="open",
                opened_on=date.fromisoformat(details["opened_on"]),
                created_at=when,
                created_by=event["actor"],
            )
            session.add(case)
            session.flush()
            cases[key] = case
        elif action == Action.CASE_CLOSED and key in cases:
            cases[key].status, cases[key].closed_on = "closed", date.fromisoformat(details["closed_on"])
        elif action == Action.LINKED:
            links.append((event["subject"], details, when, event["actor"]))
        elif action == Action.UNLINKED:
            unlinked[event["subject"]] = (when, event["actor"], details.get("reason", ""))
        elif action in (Action.HELD, Action.RELEASED) and event["subject"] == key:
            if action == Action.HELD:
                session.add(
                    Hold(subject=key, reason=details.get("reason", ""), set_at=when, set_by=event["actor"])
                )
            else:
                for hold in session.execute(
                    select(Hold).where(Hold.subject == key, Hold.released_at.is_(None))
                ).scalars():
                    hold.released_at, hold.released_by = when, event["actor"]
                    hold.release_reason = details.get("reason")
    report.counts["cases"] = len(cases)
    return cases, (links, unlinked)


def _originals(store: ObjectStore, session: Session, report: RebuildReport) -> dict[str, Recording]:
    found: dict[str, Recording] = {}
    for info in store.list("originals/"):
        if not info.key.endswith(".manifest.json"):
            continue
        m = get_json(store, info.key)
        stored = m["stored"]
        try:
            version = store.stat(stored["key"]).version
        except ObjectMissing:
            report.problems.append(f"{m['archive_no']}: manifest present, original {stored['key']} missing")
            version = None
        station_row(session, m["station"], m["unit"], parse_instant(m["ingested_at"]))
        rec = Recording(
            archive_no=m["archive_no"],
            kind=m["kind"],
            sha256=m["sha256"],
            sm3=m.get("sm3"),
            size=m["size"],
            original_name=m["original_name"],
            station_id=m["station"],
            device_id=device_row(session, m["device"]).id if m.get("device") else None,
            officer_id=officer_row(session, m["officer"]).id if m.get("officer") else None,
            start_time=_when(m.get("start_time")),
            duration_s=m.get("duration_s"),
            ingested_at=parse_instant(m["ingested_at"]),
            storage_key=stored["key"],
            storage_version=version,
            manifest_key=info.key,
            content_type=m.get("content_type"),
            status="archived",
            damaged=bool(m.get("damaged")),
            damage_reason=m.get("damage_reason"),
            important=bool(m.get("important")),
            protected=bool(m.get("protected")),
            encrypted=m.get("encryption") is not None,
            stored_sha256=stored["sha256"],
            stored_size=stored["size"],
            flags=json.dumps(m.get("flags") or {}, ensure_ascii=False),
            media_info=json.dumps(m.get("media") or {}, ensure_ascii=False),
            sources=json.dumps(m.get("sources") or {}, ensure_ascii=False),
            retain_until=_when(m.get("retain_until")),
        )
        session.add(rec)
        found[rec.archive_no] = rec
    session.flush()
    report.counts["recordings"] = len(found)
    return found


def _fills(session: Session, recordings: dict[str, Recording], report: RebuildReport) -> None:
    """Metadata filled after archiving (from a duplicate's name) lives in custody events
    only: replayed in chain order over what the manifests say."""
    count = 0
    for row in session.execute(
        select(CustodyEventRow)
        .where(CustodyEventRow.action == Action.METADATA_FILLED)
        .order_by(CustodyEventRow.seq)
    ).scalars():
        rec = recordings.get(row.subject or "")
        if rec is None:
            report.problems.append(f"custody event {row.seq}: metadata filled for an unknown {row.subject}")
            continue
        metadata_fill.apply(session, rec, json.loads(row.details))
        count += 1
    session.flush()
    report.counts["metadata_filled"] = count


def _documents(store: ObjectStore, session: Session, cases: dict[str, Case], report: RebuildReport) -> None:
    count = 0
    for info in store.list("documents/"):
        if not info.key.endswith(".manifest.json"):
            continue
        m = get_json(store, info.key)
        case = cases.get(m["case_key"])
        if case is None:
            report.problems.append(f"{m['item_no']}: its case {m['case_key']} has no events in storage")
            continue
        stored = m["stored"]
        try:
            version = store.stat(stored["key"]).version
        except ObjectMissing:
            report.problems.append(f"{m['item_no']}: document {stored['key']} missing")
            version = None
        doc = Document(
            case_id=case.id,
            doc_type=m["doc_type"],
            doc_number=m.get("doc_number"),
            doc_date=_when(m.get("doc_date")),
            officer=m.get("officer"),
            sha256=m["sha256"],
            sm3=m.get("sm3"),
            size=m["size"],
            original_name=m["original_name"],
            content_type=m.get("content_type"),
            storage_key=stored["key"],
            storage_version=version,
            manifest_key=info.key,
            protected=bool(m.get("protected")),
            encrypted=m.get("encryption") is not None,
            stored_sha256=stored["sha256"],
            stored_size=stored["size"],
            created_at=parse_instant(m["added_at"]),
            created_by=m.get("added_by") or "",
        )
        session.add(doc)
        session.flush()
        seq = int(m["item_no"].rsplit("-", 1)[-1][:-1])
        session.add(
            CaseItem(
                case_id=case.id,
                item_no=m["item_no"],
                seq=seq,
                kind="document",
                document_id=doc.id,
                linked_at=doc.created_at,
                linked_by=doc.created_by,
            )
        )
        count += 1
    report.counts["documents"] = count


def _links(
    session: Session, cases: dict[str, Case], recordings: dict[str, Recording], links, report: RebuildReport
) -> None:
    linked, unlinked = links
    count = 0
    for archive_no, details, when, actor in linked:
        case, rec = cases.get(details.get("case_key")), recordings.get(archive_no)
        if case is None or rec is None:
            report.problems.append(f"link {details.get('item_no')}: case or recording not in storage")
            continue
        item_no = details["item_no"]
        item = CaseItem(
            case_id=case.id,
            item_no=item_no,
            seq=int(item_no.rsplit("-", 1)[-1][:-1]),
            kind=rec.kind,
            recording_id=rec.id,
            linked_at=when,
            linked_by=actor,
        )
        if item_no in unlinked:
            item.unlinked_at, item.unlinked_by, item.unlink_reason = unlinked[item_no]
        session.add(item)
        count += 1
    report.counts["links"] = count


def _derivatives(
    store: ObjectStore, session: Session, recordings: dict[str, Recording], report: RebuildReport
) -> None:
    count = 0
    documents = {
        item_no: doc
        for item_no, doc in session.execute(
            select(CaseItem.item_no, Document).join(Document, Document.id == CaseItem.document_id)
        )
    }
    pages: list[tuple[Document, int, str]] = []
    for info in store.list("derivatives/"):
        _, archive_no, name = info.key.split("/", 2)
        rec = recordings.get(archive_no)
        if rec is None and archive_no in documents and name.startswith("page"):
            pages.append((documents[archive_no], int(name[4:8]), info.key))  # page0001-…
            continue
        if rec is None:
            report.problems.append(f"{info.key}: a derivative of a recording not in storage")
            continue
        meta = store.stat(info.key)
        session.add(
            Derivative(
                recording_id=rec.id,
                kind=name.split("-", 1)[0],
                status="ok",
                sha256=meta.metadata.get("sha256"),
                size=meta.size,
                storage_key=info.key,
                storage_version=meta.version,
                content_type=meta.content_type,
                encrypted=rec.encrypted,
                created_at=meta.last_modified or rec.ingested_at,
            )
        )
        count += 1
    report.counts["derivatives"] = count
    _pages(store, session, pages, report)


def _pages(
    store: ObjectStore, session: Session, pages: list[tuple[Document, int, str]], report: RebuildReport
) -> None:
    """A written record's page images (``archive.document_pages``): one row per page."""
    per_document: dict[int, int] = {}
    for doc, _number, _key in pages:
        per_document[doc.id] = per_document.get(doc.id, 0) + 1
    for doc, number, key in pages:
        meta = store.stat(key)
        session.add(
            DocumentPage(
                document_id=doc.id,
                page=number,
                pages=per_document[doc.id],
                sha256=meta.metadata.get("sha256"),
                size=plain_size(store, key, meta.version, doc.encrypted),
                storage_key=key,
                storage_version=meta.version,
                encrypted=doc.encrypted,
                created_at=meta.last_modified or doc.created_at,
            )
        )
    report.counts["document pages"] = len(pages)


def _tombstones(store: ObjectStore, session: Session, report: RebuildReport) -> None:
    count = 0
    for info in store.list("tombstones/"):
        t = get_json(store, info.key)
        session.add(
            Tombstone(
                subject=t["subject"],
                kind=t["kind"],
                numbers=json.dumps(t["numbers"]),
                sha256=t["sha256"],
                sm3=t.get("sm3"),
                size=t["size"],
                reason=t["reason"],
                due_at=_when(t.get("due_at")),
                purged_at=parse_instant(t["purged_at"]),
                custody_seq=t.get("custody_seq"),
                storage_key=info.key,
            )
        )
        count += 1
    report.counts["tombstones"] = count


def _sequences(engine: Engine, sessions: sessionmaker[Session], formats: NumberingFormats) -> None:
    """Every scope past every number ever issued, purged ones included."""
    floors: dict[str, int] = {}

    def bump(scope: str, seq: int) -> None:
        floors[scope] = max(floors.get(scope, 0), seq)

    with sessions() as session:
        numbers = [n for (n,) in session.execute(select(Recording.archive_no))]
        for (raw,) in session.execute(select(Tombstone.numbers)):
            numbers += json.loads(raw)
        item_numbers = [n for (n,) in session.execute(select(CaseItem.item_no))]
        case_keys = [k for (k,) in session.execute(select(Case.case_key))]
    for number in numbers:
        fields = parse_number(formats.archive_number, number)
        if fields:
            day = fields.get("yyyymmdd") or f"{fields['yyyy']}{fields['mm']}{fields['dd']}"
            bump(f"archive:{fields['unit']}:{day}:{fields['station']}", int(fields["seq"]))
        else:
            item_numbers.append(number)
    for number in item_numbers:
        fields = parse_number(formats.item_number, number)
        if fields:
            bump(formats.item_scope(fields["case_key"]), int(fields["seq"]))
    for key in case_keys:
        fields = parse_number(formats.case_key, key)
        if fields:
            bump(formats.case_key_scope(fields["unit"], int(fields["yyyy"])), int(fields["seq"]))
    for scope, value in floors.items():
        sequences.raise_floor(engine, scope, value)


def compare(live: Session, rebuilt: Session, *, last_checkpoint_seq: int) -> tuple[list[str], list[str]]:
    """(differences, notes) between a live catalog and one rebuilt from storage."""
    differences: list[str] = []
    notes: list[str] = []

    def rows(session: Session, query) -> dict[str, tuple]:
        return {r[0]: tuple(r[1:]) for r in session.execute(query)}

    checks = [
        (
            "recording",
            select(
                Recording.archive_no,
                Recording.sha256,
                Recording.size,
                Recording.kind,
                Recording.station_id,
                Recording.start_time,
            ).where(Recording.status != "purged"),
        ),
        ("case", select(Case.case_key, Case.number, Case.status, Case.opened_on, Case.closed_on)),
        ("item", select(CaseItem.item_no, CaseItem.kind, CaseItem.unlinked_at.is_(None))),
        ("document", select(Document.storage_key, Document.sha256, Document.size, Document.doc_type)),
        (
            "derivative",
            select(Derivative.storage_key, Derivative.sha256).where(
                Derivative.status == "ok", Derivative.storage_key.is_not(None)
            ),
        ),
        ("document page", select(DocumentPage.storage_key, DocumentPage.sha256, DocumentPage.size)),
        ("tombstone", select(Tombstone.subject, Tombstone.sha256, Tombstone.reason)),
        (
            "custody event",
            select(CustodyEventRow.seq, CustodyEventRow.hash).where(
                CustodyEventRow.seq <= last_checkpoint_seq
            ),
        ),
    ]
    for what, query in checks:
        a, b = rows(live, query), rows(rebuilt, query)
        for key in sorted(set(a) | set(b), key=str):
            if key not in b:
                differences.append(f"{what} {key}: in the live catalog, not in storage")
            elif key not in a:
                differences.append(f"{what} {key}: in storage, not in the live catalog")
            elif a[key] != b[key]:
                differences.append(f"{what} {key}: live {a[key]} != storage {b[key]}")
    after = live.execute(select(func.count()).where(CustodyEventRow.seq > last_checkpoint_seq)).scalar()
    if after:
        notes.append(
            f"{after} custody event(s) after the last checkpoint are only in the live "
            "catalog; `evidence audit checkpoint` copies them to storage"
        )
    return differences, notes
