"""The custody proof of a package (format 2), checked from its files alone.

Inputs are the files of ``data/custody/`` (docs/CUSTODY-FORMAT.md), the digests computed over
the package's other payload files, and the trust anchors. Every check reports a problem
``{"path", "problem"}`` and goes on; the order is:

1. checkpoints: each statement read strictly, consecutive ``n``, each ``prev`` the SHA-256 of
   the statement before, each signature valid by a key whose fingerprint is pinned;
2. events: every line of ``events.jsonl`` exactly canonical (a v2 body, or a v1 record), in
   increasing ``seq``;
3. links, streamed line by line: each v2 link's hash recomputed from ``prev`` and
   ``body_hash``, each run unbroken and ending at a checkpoint's ``seq`` with its ``head``,
   each disclosed event's bytes giving its link's ``body_hash`` (v2) or hash (v1);
4. the package's own ``exported`` event (the last line): the disclosed events are exactly
   those it commits to, every payload file outside ``data/custody/`` has the committed SHA-256
   and every committed file is there, and each subject's events walk back through
   ``subject_prev`` from the committed head to the first one with no step missing;
5. each item's file digest bound by a v2 ``ingested``, ``document_added`` or ``attested`` event.

Memory: the disclosed events (one case's history) and one link per disclosed or withheld
event are kept; the links between them stream past.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

from catalog import jcs, keyhistory, timestamp
from catalog.canonical import canonical_bytes
from catalog.chain import GENESIS_HASH, hash_payload, link_hash, parse_body
from catalog.checkpoint import Anchors, Checkpoint, from_statement, raw_from_pem
from catalog.errors import InvalidInput
from catalog.timestamp import TimeTrust

FOLDER = "data/custody/"
EVENTS = "data/custody/events.jsonl"
LINKS = "data/custody/links.tsv"
STATEMENT = "data/custody/checkpoint.json"
SIGNATURE = "data/custody/checkpoint.sig"
MAX_LINE = 1 << 20  # an event body or a link line longer than this is refused, not read
BINDING = {"ingested", "document_added", "attested"}
_LINK = re.compile(rb"^(0|[1-9][0-9]{0,17})\t([0-9a-f]{64})\t([0-9a-f]{64}|-)\t([0-9a-f]{64})\n$")
_EARLIER = re.compile(r"^data/custody/checkpoints/([0-9]{8})\.json$")
_KEY = re.compile(r"^data/custody/keys/([0-9a-f]{64})\.pem$")
# The signing keys' history: key-change and retirement statements (catalog.keyhistory).
CHANGES = "data/custody/keys/changes/"
_CHANGES = re.compile(r"^data/custody/keys/changes/[^/]+$")
_TOKEN = re.compile(r"^data/custody/(checkpoint|checkpoints/[0-9]{8})\.tsr$")


class Source:
    """What the check needs of a package: its files' sizes and a way to open one."""

    files: Callable[[], dict[str, int]]
    open: Callable[[str], BinaryIO]


@dataclass
class Outcome:
    signers: list[str] = field(default_factory=list)
    trusted: list[str] = field(default_factory=list)  # pinned, or reached along the key history
    checkpoint: int | None = None
    exported: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class _Event:
    seq: int
    v: int
    digest: str  # v2: body_hash; v1: hash
    prev: str | None  # v1 only: the record's own prev
    fields: dict[str, Any]


def check(
    source: Any,
    computed: dict[str, dict[str, str]],
    add: Callable[[str, str], None],
    anchors: Anchors,
    case_key: str | None,
    items: list[dict[str, Any]],
    time_trust: TimeTrust | None = None,
) -> Outcome:
    files: dict[str, int] = source.files()
    outcome = Outcome()
    heads = _checkpoints(source, files, add, anchors, outcome, time_trust)
    events = _events(source, files, add)
    exported = _exported(events, add, case_key)
    points: dict[int, tuple[str, str]] = {}  # seq -> (prev, hash) of each disclosed or withheld event
    wanted = set(events) | (set(_withheld(exported)) if exported else set())
    _links(source, files, add, heads, events, wanted, points)
    if exported is None:
        return outcome
    outcome.exported = exported.seq
    _commitment(exported, files, computed, add)
    _disclosed(exported, events, add)
    _walks(exported, events, points, add, case_key, outcome)
    _bindings(events, items, add)
    return outcome


# --- 1. checkpoints ------------------------------------------------------------------------


def _read(source: Any, rel: str, limit: int = MAX_LINE) -> bytes:
    with source.open(rel) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return bytes(data)


def _checkpoints(
    source: Any,
    files: dict[str, int],
    add: Callable[[str, str], None],
    anchors: Anchors,
    outcome: Outcome,
    time_trust: TimeTrust | None = None,
) -> dict[int, str]:
    """{seq: head} of every checkpoint that reads, is chained and is trusted."""
    keys = Anchors(set(anchors.trusted), dict(anchors.keys))
    statements: dict[str, bytes] = {}
    for rel in sorted(files):
        if _CHANGES.match(rel):
            try:
                statements[rel.removeprefix(CHANGES)] = _read(source, rel, 65536)
            except ValueError as exc:
                add(rel, f"unreadable ({exc})")
            continue
        match = _KEY.match(rel)
        if rel.startswith(FOLDER + "keys/") and not match:
            add(rel, "not a key file name (keys/{fingerprint}.pem)")
            continue
        if match:
            try:
                fp = keys.add_key(raw_from_pem(_read(source, rel, 65536)))
            except (InvalidInput, ValueError) as exc:
                add(rel, f"unreadable key ({exc})")
                continue
            if fp != match.group(1):
                add(rel, f"holds the key with fingerprint {fp}, not the one its name says")
    named = [(STATEMENT, SIGNATURE)] + [
        (rel, rel[:-5] + ".sig") for rel in sorted(files) if _EARLIER.match(rel)
    ]
    stray = {
        rel
        for rel in files
        if rel.startswith(FOLDER + "checkpoints/")
        and not _EARLIER.match(rel)
        and not rel.endswith(".sig")
        and not _TOKEN.match(rel)
        and not _CHANGES.match(rel)
    }
    for rel in sorted(stray):
        add(rel, "not a checkpoint file name")
    found: list[tuple[str, Checkpoint]] = []
    for statement_rel, sig_rel in named:
        if statement_rel not in files:
            add(statement_rel, "missing")
            continue
        try:
            statement = _read(source, statement_rel, 65536)
            sig = _read(source, sig_rel, 64) if sig_rel in files else b""
            cp = from_statement(statement, sig)
        except (ValueError, jcs.NotCanonical) as exc:
            add(statement_rel, f"not a v2 checkpoint statement ({exc})")
            continue
        if len(sig) != 64:
            add(sig_rel, "missing" if sig_rel not in files else "not a 64-byte Ed25519 signature")
        found.append((statement_rel, cp))
    found.sort(key=lambda pair: pair[1].n)
    changes, retirements, unreadable = keyhistory.read_files(statements)
    history = keyhistory.resolve(keys, changes, retirements)
    outcome.trusted = sorted(history.anchors.trusted)
    for name, what in unreadable + history.problems + history.check_committed(cp for _, cp in found):
        add(CHANGES + name + ("" if "." in name else ".json"), what)
    existed_by = _tokens(source, files, add, found, time_trust, outcome)
    heads: dict[int, str] = {}
    previous: Checkpoint | None = None
    for rel, cp in found:
        outcome.signers.append(cp.key or "?")
        verdict = history.judge(cp, None, existed_by.get(cp.n))
        if verdict is not None:
            add(rel, f"checkpoint {cp.n}: {verdict}")
        if previous is not None:
            if cp.n != previous.n + 1:
                add(rel, f"checkpoint {cp.n} follows checkpoint {previous.n}: the ones between are missing")
            elif cp.prev != previous.digest():
                add(rel, f"checkpoint {cp.n} does not chain to checkpoint {previous.n} (prev differs)")
        if verdict is None or "not trusted" in verdict:  # an untrusted signer is reported once, above
            heads[cp.seq] = cp.head
        previous = cp
    if found:
        own = next((cp for rel, cp in found if rel == STATEMENT), None)
        if own is not None and own.n != found[-1][1].n:
            add(STATEMENT, f"checkpoint {own.n} is not the newest of the package ({found[-1][1].n})")
        outcome.checkpoint = own.n if own else None
    outcome.signers = sorted(set(outcome.signers))
    return heads


def _tokens(
    source: Any,
    files: dict[str, int],
    add: Callable[[str, str], None],
    found: list[tuple[str, Checkpoint]],
    trust: TimeTrust | None,
    outcome: Outcome,
) -> dict[int, datetime]:
    """RFC 3161 tokens beside checkpoint statements (``….tsr``): each over its statement's
    exact bytes; signature and time against ``trust`` when given (the TSA's CA). Returns,
    for each checkpoint a trusted token stamps, the time it shows the checkpoint existed by."""
    by_stem = {rel[:-5]: cp for rel, cp in found}
    stamped: list[tuple[int, bytes, datetime, bytes | None]] = []
    for rel in sorted(r for r in files if _TOKEN.match(r)):
        cp = by_stem.get(rel[:-4])
        if cp is None:
            add(rel, "a time-stamp token beside no checkpoint statement")
            continue
        try:
            token = _read(source, rel, 1 << 20)
        except ValueError as exc:
            add(rel, f"unreadable ({exc})")
            continue
        stamped.append((cp.n, cp.signed_bytes(), cp.time, token))
    review = timestamp.review(stamped, trust)
    where = {cp.n: rel[:-5] + ".tsr" for rel, cp in found}
    for bad in review.bad:
        add(where[int(str(bad["n"]))], f"time-stamp token: {bad['problem']}")
    if review.unchecked:
        outcome.notes.append(
            f"time-stamp tokens of checkpoint(s) {review.unchecked} are over their statements; their "
            "signatures were not checked (give the TSA's CA certificate: --tsa-ca FILE)"
        )
    if review.stamped:
        outcome.notes.append(f"checkpoint(s) {review.stamped} time-stamped by a TSA the checker trusts")
    if review.late:
        outcome.notes.append(f"time-stamps of checkpoint(s) {review.late} were issued late")
    return review.existed_by


# --- 2. events -------------------------------------------------------------------------------


def _events(source: Any, files: dict[str, int], add: Callable[[str, str], None]) -> dict[int, _Event]:
    found: dict[int, _Event] = {}
    if EVENTS not in files:
        add(EVENTS, "missing")
        return found
    last = 0
    with source.open(EVENTS) as f:
        lineno = 0
        while line := f.readline(MAX_LINE + 1):
            lineno += 1
            if len(line) > MAX_LINE or not line.endswith(b"\n"):
                add(EVENTS, f"line {lineno} is too long or not terminated")
                return found
            event = _event(line[:-1], lineno, add)
            if event is None:
                continue
            if event.seq <= last:
                add(EVENTS, f"event {event.seq} out of order (after event {last})")
                continue
            last = event.seq
            found[event.seq] = event
    return found


def _event(data: bytes, lineno: int, add: Callable[[str, str], None]) -> _Event | None:
    try:
        fields = parse_body(data)
        return _Event(fields["seq"], 2, hashlib.sha256(data).hexdigest(), None, fields)
    except jcs.NotCanonical as v2_error:
        try:
            record = _v1_record(data)
        except ValueError:
            add(EVENTS, f"line {lineno}: not an exact v2 event body ({v2_error})")
            return None
    prev, digest = record["prev"], record.pop("hash")
    if hash_payload(record) != digest:
        add(EVENTS, f"event {record['seq']} (v1) altered: its record does not give its hash")
    return _Event(record["seq"], 1, digest, prev, record)


def _v1_record(data: bytes) -> dict[str, Any]:
    """A v1 record, exactly as v1 wrote it (canonical, its keys and nothing else)."""
    record = json.loads(data, object_pairs_hook=_pairs)
    keys = {"v", "seq", "time", "actor", "action", "subject", "details", "prev", "hash"}
    if not isinstance(record, dict) or set(record) != keys or record["v"] != 1:
        raise ValueError("not a v1 record")
    if canonical_bytes(record) != data or not isinstance(record["seq"], int):
        raise ValueError("not canonical")
    return record


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise ValueError("duplicate key")
    return found


def _exported(
    events: dict[int, _Event], add: Callable[[str, str], None], case_key: str | None
) -> _Event | None:
    if not events:
        add(EVENTS, "no events")
        return None
    last = events[max(events)]
    f = last.fields
    if last.v != 2 or f["action"] != "exported" or (case_key is not None and f["subject"] != case_key):
        add(EVENTS, "the last event is not this package's own exported event")
        return None
    d = f["details"]
    if not (
        isinstance(d.get("files"), dict)
        and isinstance(d.get("events"), list)
        and isinstance(d.get("withheld_events"), dict)
        and isinstance(d.get("heads"), dict)
    ):
        add(EVENTS, f"exported event {last.seq} commits to no files, events and heads (an older export?)")
        return None
    return last


def _withheld(exported: _Event) -> dict[int, str | None]:
    found: dict[int, str | None] = {}
    for key, value in exported.fields["details"]["withheld_events"].items():
        if str(key).isdigit():
            found[int(key)] = value
    return found


# --- 3. links ---------------------------------------------------------------------------------


def _links(
    source: Any,
    files: dict[str, int],
    add: Callable[[str, str], None],
    heads: dict[int, str],
    events: dict[int, _Event],
    wanted: set[int],
    points: dict[int, tuple[str, str]],
) -> None:
    if LINKS not in files:
        add(LINKS, "missing")
        return
    previous: tuple[int, str] | None = None  # (seq, hash) of the line before
    ended = True  # the run before reached a checkpoint

    def close(seq: int, digest: str) -> bool:
        if seq in heads:
            if heads[seq] != digest:
                add(LINKS, f"link {seq} is not the head that checkpoint signs")
            return True
        return False

    with source.open(LINKS) as f:
        lineno = 0
        while line := f.readline(300):
            lineno += 1
            match = _LINK.match(line)
            if not match:
                add(LINKS, f"line {lineno} malformed")
                return
            seq = int(match.group(1))
            prev, body_hash, digest = (match.group(i).decode() for i in (2, 3, 4))
            if body_hash != "-" and link_hash(prev, body_hash) != digest:
                add(LINKS, f"link {seq}: hash is not SHA-256(prev ‖ body_hash)")
            if previous is not None and seq == previous[0] + 1:
                if prev != previous[1]:
                    add(LINKS, f"chain broken at {seq}")
            else:
                if previous is not None and seq <= previous[0]:
                    add(LINKS, f"link {seq} out of order")
                    return
                if not ended:
                    add(LINKS, f"links from {previous[0] if previous else '?'} stop before a checkpoint")
                if seq not in wanted:
                    add(LINKS, f"links start at {seq}, which is no disclosed or withheld event")
            ended = close(seq, digest)
            if seq in wanted:
                points[seq] = (prev, digest)
                event = events.get(seq)
                if event is not None:
                    _match_event(event, prev, body_hash, digest, add)
            previous = (seq, digest)
    if previous is not None and not ended:
        add(LINKS, f"links end at {previous[0]}, which no checkpoint of the package signs")
    for seq in sorted(wanted - set(points)):
        add(EVENTS if seq in events else LINKS, f"event {seq} has no link")


def _match_event(
    event: _Event, prev: str, body_hash: str, digest: str, add: Callable[[str, str], None]
) -> None:
    if event.v == 2:
        if body_hash != event.digest:
            add(EVENTS, f"event {event.seq} altered: its bytes do not give its link's body_hash")
    elif body_hash != "-" or digest != event.digest or prev != event.prev:
        add(EVENTS, f"event {event.seq} (v1) differs from its link")


# --- 4. the exported event ---------------------------------------------------------------------


def _commitment(
    exported: _Event,
    files: dict[str, int],
    computed: dict[str, dict[str, str]],
    add: Callable[[str, str], None],
) -> None:
    committed: dict[str, Any] = exported.fields["details"]["files"]
    for rel in sorted(files):
        if not rel.startswith("data/") or rel.startswith(FOLDER):
            continue
        if rel not in committed:
            add(rel, f"not in the files exported event {exported.seq} commits to")
        elif rel in computed and computed[rel]["sha256"] != committed[rel]:
            add(rel, f"sha256 differs from the one exported event {exported.seq} commits to")
    for rel in sorted(committed):
        if rel not in files:
            add(rel, f"committed by exported event {exported.seq}, missing from the package")


def _disclosed(exported: _Event, events: dict[int, _Event], add: Callable[[str, str], None]) -> None:
    committed = {s for s in exported.fields["details"]["events"] if isinstance(s, int)} | {exported.seq}
    for seq in sorted(committed - set(events)):
        add(EVENTS, f"event {seq} is committed by the exported event but missing (left out)")
    for seq in sorted(set(events) - committed):
        add(EVENTS, f"event {seq} is not among the events the exported event commits to")


def _walks(
    exported: _Event,
    events: dict[int, _Event],
    points: dict[int, tuple[str, str]],
    add: Callable[[str, str], None],
    case_key: str | None,
    outcome: Outcome,
) -> None:
    """Walk each subject's events back through ``subject_prev``; every v2 event disclosed must
    be on its subject's walk, and every step must be in the package."""
    by_hash = {digest: seq for seq, (_prev, digest) in points.items()}
    withheld = _withheld(exported)
    starts: list[tuple[str, str | None]] = [
        (str(subject), head) for subject, head in exported.fields["details"]["heads"].items()
    ]
    starts.append((exported.fields["subject"], points.get(exported.seq, ("", None))[1]))
    visited: set[int] = set()
    for subject, head in starts:
        current = head if isinstance(head, str) else None
        steps = 0
        while current is not None and current != GENESIS_HASH:
            seq = by_hash.get(current)
            steps += 1
            if seq is None or steps > len(points) + 1:
                add(EVENTS, f"an event of {subject!r} ({current[:16]}…) is not in the package: left out")
                break
            visited.add(seq)
            if seq in events:
                event = events[seq]
                if event.fields["subject"] != subject:
                    add(
                        EVENTS,
                        f"event {seq} is about {event.fields['subject']!r}, on the walk of {subject!r}",
                    )
                    break
                if event.v == 1:
                    outcome.notes.append(
                        f"{subject}: events before {seq} are v1; their completeness is not proven"
                    )
                    break
                current = event.fields["subject_prev"]
            elif seq in withheld:
                current = withheld[seq]
            else:
                break
    for seq, event in sorted(events.items()):
        if event.v == 2 and seq not in visited:
            add(EVENTS, f"event {seq} is on no committed subject's walk")


# --- 5. item bindings --------------------------------------------------------------------------


def _bindings(
    events: dict[int, _Event], items: list[dict[str, Any]], add: Callable[[str, str], None]
) -> None:
    bound: dict[str, set[str]] = {}
    for event in events.values():
        f = event.fields
        if event.v == 2 and f["action"] in BINDING and isinstance(f["details"].get("sha256"), str):
            bound.setdefault(str(f["subject"]), set()).add(f["details"]["sha256"])
    for item in items:
        if not isinstance(item, dict) or (item.get("withheld") and not item.get("file")):
            continue
        subject = item.get("archive_no") or item.get("item_no")
        if item.get("sha256") not in bound.get(str(subject), set()):
            add(
                "data/case.json",
                f"item {item.get('item_no')}: its digest is not the one a v2 ingested, "
                f"document_added or attested event of {subject} records",
            )
