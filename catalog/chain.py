"""Hash-chained custody events: sealing and checking, as plain values.

Each event's hash is SHA-256 over the canonical serialization
(``catalog.canonical``) of::

    {"v": 1, "seq": N, "time": "...Z", "actor": "...", "action": "...",
     "subject": "..." or null, "details": {...}, "prev": "<hex of event N-1>"}

The first event's ``prev`` is 64 zeros. A record as written to storage
segments (one JSON object per line) is that object plus ``"hash"``, so a
segment can be checked on its own with any JSON library and SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from .canonical import canonical_bytes, format_instant, parse_instant

CHAIN_VERSION = 1
GENESIS_HASH = "0" * 64


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

    def payload(self) -> dict[str, Any]:
        return event_payload(
            self.seq, self.time, self.actor, self.action, self.subject, self.details, self.prev_hash
        )

    def to_record(self) -> dict[str, Any]:
        """The object written to storage segments and export packages."""
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
    events: Iterable[CustodyEvent], *, start_seq: int = 1, start_prev: str = GENESIS_HASH
) -> ChainReport:
    """Walk events in storage order and report every break.

    An edited event fails its own hash; a deleted one leaves a gap in the
    sequence; a reordered or replaced one breaks the link to its neighbour.
    After a problem the walk re-synchronizes on the stored hash so that
    later, independent problems are reported too.
    """
    report = ChainReport(last_seq=start_seq - 1, last_hash=start_prev)
    expected_seq, expected_prev = start_seq, start_prev
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
        recomputed = hash_payload(event.payload())
        if recomputed != event.hash:
            report.problems.append(
                ChainProblem(
                    event.seq,
                    "altered",
                    f"event {event.seq} hashes to {recomputed[:16]}… but records {event.hash[:16]}…",
                )
            )
        expected_seq, expected_prev = event.seq + 1, event.hash
        report.last_seq, report.last_hash = event.seq, event.hash
    return report
