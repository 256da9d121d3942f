"""Hash-chained custody events: sealing and checking, as plain values.

Version 2 (every event appended since the upgrade; docs/CUSTODY-FORMAT.md byte by byte)::

    body      = JCS (RFC 8785, ``catalog.jcs``) bytes of
                {"v": 2, "seq": N, "time": "YYYY-MM-DDTHH:MM:SS.ffffffZ", "actor": "...",
                 "action": "...", "subject": "..." or null, "details": {...},
                 "salt": 32 hex digits (128 random bits),
                 "subject_prev": hash of the previous event with the same subject, or null}
    body_hash = SHA-256(body)
    hash      = SHA-256(prev ‖ body_hash), prev and body_hash as 32 raw bytes each

so every link ``seq prev body_hash hash`` can be checked without the body, the salt keeps a
withheld body from being guessed, and ``subject_prev`` shows whether an event of a disclosed
subject was left out. The first v2 event's ``prev`` is the last v1 event's hash. The body is
stored and shipped as its exact bytes and checked as such: a verifier never re-serializes it.

Version 1 (events from before the upgrade, unchanged and still verifiable): the hash is
SHA-256 over the canonical serialization (``catalog.canonical``) of::

    {"v": 1, "seq": N, "time": "...Z", "actor": "...", "action": "...",
     "subject": "..." or null, "details": {...}, "prev": "<hex of event N-1>"}

The first event's ``prev`` is 64 zeros. A v1 record (in old storage segments, and in packages
for v1 events) is that object plus ``"hash"``.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from . import jcs
from .canonical import canonical_bytes, format_instant, parse_instant
from .errors import InvalidInput

CHAIN_VERSION = 1
GENESIS_HASH = "0" * 64
BODY_KEYS = frozenset({"v", "seq", "time", "actor", "action", "subject", "details", "salt", "subject_prev"})
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class CustodyEvent:
    seq: int
    time: datetime
    actor: str
    action: str
    subject: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str
    v: int = 1
    body: bytes | None = None  # v2: the exact JCS bytes that were hashed
    body_hash: str | None = None

    @property
    def subject_prev(self) -> str | None:
        return parse_body(self.body)["subject_prev"] if self.body is not None else None

    def line(self) -> bytes:
        """The event as one line of ``events.jsonl``: the v2 body as it is, or the v1 record."""
        return (self.body if self.body is not None else canonical_bytes(self.to_record())) + b"\n"

    def payload(self) -> dict[str, Any]:
        return event_payload(
            self.seq, self.time, self.actor, self.action, self.subject, self.details, self.prev_hash
        )

    def to_record(self) -> dict[str, Any]:
        """A readable copy of the event (case-event files in storage; v1 storage segments and
        the v1 events in packages). For v2 it is the body's fields with ``prev``,
        ``body_hash`` and ``hash``: a convenience, the proof being the body's own bytes."""
        if self.body is not None:
            return {
                **parse_body(self.body),
                "prev": self.prev_hash,
                "body_hash": self.body_hash,
                "hash": self.hash,
            }
        return {**self.payload(), "hash": self.hash}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CustodyEvent:
        return cls(
            seq=int(record["seq"]),
            time=parse_instant(record["time"]),
            actor=record["actor"],
            action=record["action"],
            subject=record.get("subject"),
            details=record.get("details") or {},
            prev_hash=record["prev"],
            hash=record["hash"],
        )


def event_payload(
    seq: int,
    time: datetime,
    actor: str,
    action: str,
    subject: str | None,
    details: dict[str, Any],
    prev_hash: str,
) -> dict[str, Any]:
    return {
        "v": CHAIN_VERSION,
        "seq": seq,
        "time": format_instant(time),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
        "prev": prev_hash,
    }


def hash_payload(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(payload)).hexdigest()


def link_hash(prev_hash: str, body_hash: str) -> str:
    """A v2 event's hash: SHA-256 over the 32 raw bytes of ``prev`` then of ``body_hash``."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + bytes.fromhex(body_hash)).hexdigest()


def make_body(
    seq: int,
    time: datetime,
    actor: str,
    action: str,
    subject: str | None,
    details: dict[str, Any],
    subject_prev: str | None,
    salt: str | None = None,
) -> bytes:
    """The v2 body bytes; ``InvalidInput`` for details custody refuses (``catalog.jcs``)."""
    if not isinstance(details, dict):
        raise InvalidInput("custody details must be an object")
    jcs.check_value(details, "details")
    return jcs.dumps(
        {
            "v": 2,
            "seq": seq,
            "time": format_instant(time),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
            "salt": salt or secrets.token_hex(16),
            "subject_prev": subject_prev,
        }
    )


def parse_body(body: bytes) -> dict[str, Any]:
    """The fields of a v2 body, read strictly; ``jcs.NotCanonical`` says what is wrong."""
    value = jcs.loads_exact(body)
    if not isinstance(value, dict) or set(value) != BODY_KEYS:
        keys = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise jcs.NotCanonical(f"not a v2 event body (keys {keys})")
    wrong = [
        name
        for name, ok in (
            ("v", value["v"] == 2),
            (
                "seq",
                isinstance(value["seq"], int) and not isinstance(value["seq"], bool) and value["seq"] > 0,
            ),
            ("time", isinstance(value["time"], str) and _canonical_time(value["time"])),
            ("actor", isinstance(value["actor"], str)),
            ("action", isinstance(value["action"], str)),
            ("subject", value["subject"] is None or isinstance(value["subject"], str)),
            ("details", isinstance(value["details"], dict)),
            ("salt", isinstance(value["salt"], str) and bool(_HEX32.match(value["salt"]))),
            (
                "subject_prev",
                value["subject_prev"] is None
                or (isinstance(value["subject_prev"], str) and bool(_HEX64.match(value["subject_prev"]))),
            ),
        )
        if not ok
    ]
    if wrong:
        raise jcs.NotCanonical(f"malformed field(s) {', '.join(wrong)}")
    return cast(dict[str, Any], value)


def _canonical_time(text: str) -> bool:
    try:
        return format_instant(parse_instant(text)) == text
    except (ValueError, InvalidInput):
        return False


def seal_v2(
    seq: int,
    time: datetime,
    actor: str,
    action: str,
    subject: str | None,
    details: dict[str, Any],
    prev_hash: str,
    subject_prev: str | None,
    salt: str | None = None,
) -> CustodyEvent:
    """Make the v2 event that follows an event whose hash is ``prev_hash``."""
    body = make_body(seq, time, actor, action, subject, details, subject_prev, salt)
    body_hash = hashlib.sha256(body).hexdigest()
    fields = parse_body(body)
    return CustodyEvent(
        seq,
        parse_instant(fields["time"]),
        actor,
        action,
        subject,
        fields["details"],
        prev_hash,
        link_hash(prev_hash, body_hash),
        v=2,
        body=body,
        body_hash=body_hash,
    )


def event_from_body(body: bytes, prev_hash: str, digest: str) -> CustodyEvent:
    """A v2 event read from its body bytes (``jcs.NotCanonical`` when they are not one)."""
    f = parse_body(body)
    return CustodyEvent(
        f["seq"],
        parse_instant(f["time"]),
        f["actor"],
        f["action"],
        f["subject"],
        f["details"],
        prev_hash,
        digest,
        v=2,
        body=body,
        body_hash=hashlib.sha256(body).hexdigest(),
    )


def seal(
    seq: int,
    time: datetime,
    actor: str,
    action: str,
    subject: str | None,
    details: dict[str, Any],
    prev_hash: str,
) -> CustodyEvent:
    """Make the event that follows an event whose hash is ``prev_hash``."""
    # Round-trip details through the canonical form so the stored value is
    # exactly what was hashed (tuples become lists, keys become strings...).
    payload = event_payload(seq, time, actor, action, subject, details, prev_hash)
    digest = hash_payload(payload)
    return CustodyEvent(
        seq, parse_instant(payload["time"]), actor, action, subject, _normalized(details), prev_hash, digest
    )


def _normalized(details: dict[str, Any]) -> dict[str, Any]:
    # The canonical form of a dict reads back as a dict.
    return cast(dict[str, Any], json.loads(canonical_bytes(details)))


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    problem: str  # "altered", "missing", "broken_link", "out_of_order", "truncated"
    detail: str


@dataclass
class ChainReport:
    events: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_event(self) -> int | None:
        return min((p.seq for p in self.problems), default=None)


def check_chain(
    events: Iterable[CustodyEvent],
    *,
    start_seq: int = 1,
    start_prev: str = GENESIS_HASH,
    subject_heads: dict[str, str] | None = None,
) -> ChainReport:
    """Walk events in storage order and report every break.

    An edited event fails its own hash; a deleted one leaves a gap in the
    sequence; a reordered or replaced one breaks the link to its neighbour.
    A v2 event is checked from its body bytes as stored, which must also agree with the
    event's other fields (the catalog's columns) and name the right ``subject_prev``
    (``subject_heads``: the last hash of each subject before ``start_seq``; pass it when
    the walk does not start at the first event).
    After a problem the walk re-synchronizes on the stored hash so that
    later, independent problems are reported too.
    """
    report = ChainReport(last_seq=start_seq - 1, last_hash=start_prev)
    expected_seq, expected_prev = start_seq, start_prev
    heads: dict[str, str] | None = (
        subject_heads if subject_heads is not None else ({} if start_seq == 1 else None)
    )
    for event in events:
        report.events += 1
        if event.seq < expected_seq:
            report.problems.append(
                ChainProblem(
                    event.seq, "out_of_order", f"event {event.seq} appears after event {expected_seq - 1}"
                )
            )
            continue
        if event.seq > expected_seq:
            missing = (
                f"event {expected_seq} is missing"
                if event.seq == expected_seq + 1
                else f"events {expected_seq} to {event.seq - 1} are missing"
            )
            report.problems.append(ChainProblem(expected_seq, "missing", missing))
        elif event.prev_hash != expected_prev:
            report.problems.append(
                ChainProblem(
                    event.seq,
                    "broken_link",
                    f"event {event.seq} names {event.prev_hash[:16]}… as its predecessor, "
                    f"but event {event.seq - 1} hashes to {expected_prev[:16]}…",
                )
            )
        if event.v == 2:
            problem = _check_v2(event, heads)
            if problem is not None:
                report.problems.append(ChainProblem(event.seq, *problem))
        else:
            recomputed = hash_payload(event.payload())
            if recomputed != event.hash:
                report.problems.append(
                    ChainProblem(
                        event.seq,
                        "altered",
                        f"event {event.seq} hashes to {recomputed[:16]}… but records {event.hash[:16]}…",
                    )
                )
        if heads is not None and event.subject is not None:
            heads[event.subject] = event.hash
        expected_seq, expected_prev = event.seq + 1, event.hash
        report.last_seq, report.last_hash = event.seq, event.hash
    return report


def _check_v2(event: CustodyEvent, heads: dict[str, str] | None) -> tuple[str, str] | None:
    """(problem, detail) for a v2 event whose stored bytes or fields do not hold."""
    seq = event.seq
    if event.body is None:
        return "altered", f"event {seq} is version 2 but has no body"
    body_hash = hashlib.sha256(event.body).hexdigest()
    if event.body_hash is not None and event.body_hash != body_hash:
        return (
            "altered",
            f"event {seq}'s body hashes to {body_hash[:16]}…, it records {event.body_hash[:16]}…",
        )
    try:
        fields = parse_body(event.body)
    except jcs.NotCanonical as exc:
        return "altered", f"event {seq}'s stored body is not a canonical v2 body: {exc}"
    recomputed = link_hash(event.prev_hash, body_hash) if _HEX64.match(event.prev_hash) else None
    if recomputed != event.hash:
        return "altered", f"event {seq} hashes to {(recomputed or '?')[:16]}… but records {event.hash[:16]}…"
    differs = [
        name
        for name, value in (
            ("seq", event.seq),
            ("time", format_instant(event.time)),
            ("actor", event.actor),
            ("action", event.action),
            ("subject", event.subject),
            ("details", event.details),
        )
        if fields[name] != value
    ]
    if differs:
        return "altered", f"event {seq}'s {', '.join(differs)} differ from its signed body"
    if heads is not None:
        expected = heads.get(event.subject) if event.subject is not None else None
        if fields["subject_prev"] != expected:
            return (
                "subject_link",
                f"event {seq} names {str(fields['subject_prev'])[:16]}… as the previous event of "
                f"{event.subject!r}, the chain has {str(expected)[:16]}…",
            )
    return None
