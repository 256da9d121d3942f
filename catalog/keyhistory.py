"""The signing keys' history: key-change and retirement statements, and the trust they carry.

A key-change statement (the JCS, RFC 8785, of)::

    {"v": 1, "type": "evidence-custody-key-change", "old": "<fingerprint>",
     "new": "<fingerprint>", "n": N, "statement": "<SHA-256 of checkpoint N's statement>",
     "time": "...Z"}

says that the old key's last checkpoint is ``N`` (with that statement) and that the new key
signs from checkpoint ``N + 1`` on. It is signed by BOTH keys (two raw 64-byte Ed25519
signatures over the same bytes): the old key hands over, the new key accepts. Trust flows
from a pinned fingerprint along such statements in either direction; a key has at most one
successor and at most one predecessor, so a second statement for the same key is a fork,
which fails verification (whoever steals an old key later cannot sign another history).

A retirement statement::

    {"v": 1, "type": "evidence-custody-key-retirement", "key": "<retired fingerprint>",
     "by": "<signer's fingerprint>", "compromised_since": "...Z", "time": "...Z"}

is signed by a later key of the same history (``by``, a successor of ``key``). Checkpoints
by the retired key are then trusted only when a trusted RFC 3161 time-stamp shows they
existed before ``compromised_since``; none after it is.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import jcs, selftest
from .canonical import format_instant, parse_instant
from .checkpoint import Anchors, Checkpoint, fingerprint, raw_public_key
from .errors import InvalidInput
from .models import CheckpointRow, KeyStatement

CHANGE_TYPE = "evidence-custody-key-change"
RETIREMENT_TYPE = "evidence-custody-key-retirement"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# File names inside ``custody/keys/changes/`` (storage) and ``data/custody/keys/changes/``.
CHANGE_NAME = re.compile(r"^([0-9a-f]{64})-([0-9a-f]{64})\.(json|old\.sig|new\.sig)$")
RETIREMENT_NAME = re.compile(r"^([0-9a-f]{64})-retired-([0-9a-f]{16})\.(json|sig)$")


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise jcs.NotCanonical(f"{what} is not a time")
    try:
        when = parse_instant(value)
    except (ValueError, InvalidInput) as exc:
        raise jcs.NotCanonical(f"{what} is malformed") from exc
    if format_instant(when) != value:
        raise jcs.NotCanonical(f"{what} is not in canonical form")
    return when


def _verify(raw: bytes | None, signature: bytes, data: bytes) -> bool:
    if raw is None or len(signature) != 64:
        return False
    selftest.require(selftest.ED25519)
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class KeyChange:
    statement: bytes
    old: str
    new: str
    n: int  # the old key's last checkpoint
    checkpoint: str  # SHA-256 of that checkpoint's statement bytes
    time: datetime
    old_sig: bytes
    new_sig: bytes

    @property
    def name(self) -> str:
        return f"{self.old}-{self.new}"

    def digest(self) -> str:
        return hashlib.sha256(self.statement).hexdigest()

    def files(self) -> dict[str, bytes]:
        """File name (in ``keys/changes/``) -> bytes."""
        return {
            f"{self.name}.json": self.statement,
            f"{self.name}.old.sig": self.old_sig,
            f"{self.name}.new.sig": self.new_sig,
        }


@dataclass(frozen=True)
class Retirement:
    statement: bytes
    key: str
    by: str
    since: datetime
    time: datetime
    sig: bytes

    @property
    def name(self) -> str:
        return f"{self.key}-retired-{self.digest()[:16]}"

    def digest(self) -> str:
        return hashlib.sha256(self.statement).hexdigest()

    def files(self) -> dict[str, bytes]:
        return {f"{self.name}.json": self.statement, f"{self.name}.sig": self.sig}


def change_statement(old: str, new: str, n: int, checkpoint: str, time: datetime) -> bytes:
    return jcs.dumps(
        {
            "v": 1,
            "type": CHANGE_TYPE,
            "old": old,
            "new": new,
            "n": n,
            "statement": checkpoint,
            "time": format_instant(time),
        }
    )


def retirement_statement(key: str, by: str, since: datetime, time: datetime) -> bytes:
    return jcs.dumps(
        {
            "v": 1,
            "type": RETIREMENT_TYPE,
            "key": key,
            "by": by,
            "compromised_since": format_instant(since),
            "time": format_instant(time),
        }
    )


def sign_change(
    old_key: Ed25519PrivateKey, new_key: Ed25519PrivateKey, *, last: Checkpoint, time: datetime
) -> KeyChange:
    """The statement handing over from ``old_key`` (whose last checkpoint is ``last``) to
    ``new_key``, signed by both."""
    selftest.require(selftest.ED25519)
    old = fingerprint(raw_public_key(old_key.public_key()))
    new = fingerprint(raw_public_key(new_key.public_key()))
    if last.key != old:
        raise InvalidInput(f"checkpoint {last.n} is not signed by the key being replaced ({old})")
    statement = change_statement(old, new, last.n, last.digest(), time)
    return parse_change(statement, old_key.sign(statement), new_key.sign(statement))


def sign_retirement(by_key: Ed25519PrivateKey, *, key: str, since: datetime, time: datetime) -> Retirement:
    selftest.require(selftest.ED25519)
    by = fingerprint(raw_public_key(by_key.public_key()))
    statement = retirement_statement(key, by, since, time)
    return parse_retirement(statement, by_key.sign(statement))


def parse_change(statement: bytes, old_sig: bytes, new_sig: bytes) -> KeyChange:
    """A key-change statement read strictly (``jcs.NotCanonical`` says what is wrong)."""
    f: Any = jcs.loads_exact(statement)
    keys = {"v", "type", "old", "new", "n", "statement", "time"}
    if not isinstance(f, dict) or set(f) != keys or f["v"] != 1 or f["type"] != CHANGE_TYPE:
        raise jcs.NotCanonical("not a key-change statement")
    if not (
        all(isinstance(f[k], str) and _HEX64.match(f[k]) for k in ("old", "new", "statement"))
        and isinstance(f["n"], int)
        and not isinstance(f["n"], bool)
        and f["n"] >= 1
        and f["old"] != f["new"]
    ):
        raise jcs.NotCanonical("a key-change statement field is malformed")
    return KeyChange(
        statement, f["old"], f["new"], f["n"], f["statement"], _time(f["time"], "time"), old_sig, new_sig
    )


def parse_retirement(statement: bytes, sig: bytes) -> Retirement:
    f: Any = jcs.loads_exact(statement)
    keys = {"v", "type", "key", "by", "compromised_since", "time"}
    if not isinstance(f, dict) or set(f) != keys or f["v"] != 1 or f["type"] != RETIREMENT_TYPE:
        raise jcs.NotCanonical("not a key retirement statement")
    if not all(isinstance(f[k], str) and _HEX64.match(f[k]) for k in ("key", "by")) or f["key"] == f["by"]:
        raise jcs.NotCanonical("a key retirement statement field is malformed")
    return Retirement(
        statement,
        f["key"],
        f["by"],
        _time(f["compromised_since"], "compromised_since"),
        _time(f["time"], "time"),
        sig,
    )


@dataclass
class History:
    """What a set of statements proves, from the pinned fingerprints."""

    anchors: Anchors  # the pinned ones plus every key trust flows to
    successor: dict[str, KeyChange] = field(default_factory=dict)
    predecessor: dict[str, KeyChange] = field(default_factory=dict)
    retired: dict[str, Retirement] = field(default_factory=dict)  # the earliest time given
    problems: list[tuple[str, str]] = field(default_factory=list)  # (statement name, problem)

    def judge(
        self, cp: Checkpoint, carried: bytes | None = None, existed_by: datetime | None = None
    ) -> str | None:
        """None when ``cp`` is trusted; otherwise why not. ``existed_by`` is the latest time a
        trusted time-stamp puts the checkpoint at (None: it has no such stamp)."""
        verdict = self.anchors.judge(cp, carried)
        if verdict is not None:
            return verdict
        fp = cp.key or cp.fingerprint or ""
        handed = self.successor.get(fp)
        if handed is not None and cp.n > handed.n:
            return (
                f"signature valid, signer not trusted: fingerprint {fp} handed over to {handed.new} "
                f"after checkpoint {handed.n}"
            )
        took = self.predecessor.get(fp)
        if took is not None and cp.n <= took.n:
            return (
                f"signature valid, signer not trusted: fingerprint {fp} signs only after checkpoint "
                f"{took.n}, when it took over from {took.old}"
            )
        retired = self.retired.get(fp)
        if retired is not None and (existed_by is None or existed_by >= retired.since):
            since = format_instant(retired.since)
            return (
                f"signature valid, signer not trusted: fingerprint {fp} is compromised since {since} and "
                "no trusted time-stamp shows this checkpoint existed before then"
            )
        return None

    def check_committed(self, checkpoints: Iterable[Checkpoint]) -> list[tuple[str, str]]:
        """Each handover's committed checkpoint, where it is at hand: signed by the old key,
        with the statement hash the change names."""
        by_n = {cp.n: cp for cp in checkpoints}
        found = []
        for change in self.successor.values():
            cp = by_n.get(change.n)
            if cp is not None and (cp.key != change.old or cp.digest() != change.checkpoint):
                found.append(
                    (change.name, f"names checkpoint {change.n} with another statement than the one at hand")
                )
        return found


def resolve(
    anchors: Anchors, changes: Iterable[KeyChange], retirements: Iterable[Retirement] = ()
) -> History:
    """Follow the statements from the pinned fingerprints (``anchors.trusted``); key material
    comes from ``anchors.keys``. Forks, statements not signed by both keys, and retirements
    not signed by a later key of the same history are problems; none of them carries trust."""
    keys = anchors.keys
    history = History(Anchors(set(anchors.trusted), dict(keys)))
    valid: dict[str, KeyChange] = {}
    for change in changes:
        missing = [fp for fp in (change.old, change.new) if fp not in keys]
        if missing:
            history.problems.append((change.name, f"public key not available: fingerprint {missing[0]}"))
            continue
        old_ok = _verify(keys[change.old], change.old_sig, change.statement)
        new_ok = _verify(keys[change.new], change.new_sig, change.statement)
        if not (old_ok and new_ok):
            bad = "the old key's" if not old_ok else "the new key's"
            bad = "both keys'" if not (old_ok or new_ok) else bad
            history.problems.append(
                (change.name, f"key change not signed by both keys ({bad} signature is invalid)")
            )
            continue
        valid[change.digest()] = change
    forked: set[str] = set()
    for change in valid.values():
        for index, own, other in (
            (history.successor, change.old, "successors"),
            (history.predecessor, change.new, "predecessors"),
        ):
            seen = index.get(own)
            if seen is not None and seen.digest() != change.digest():
                forked.add(own)
                history.problems.append(
                    (change.name, f"fork: key {own} has two {other} ({seen.name} and {change.name})")
                )
            else:
                index[own] = change
    for fp in forked:  # a forked key carries no trust either way
        history.successor.pop(fp, None)
        history.predecessor.pop(fp, None)
    edges = [c for c in valid.values() if c.old not in forked and c.new not in forked]
    trusted = history.anchors.trusted
    grew = True
    while grew:
        grew = False
        for c in edges:
            if (c.old in trusted) != (c.new in trusted):
                trusted.update((c.old, c.new))
                grew = True
    history.successor = {k: v for k, v in history.successor.items() if v in edges}
    history.predecessor = {k: v for k, v in history.predecessor.items() if v in edges}
    for r in retirements:
        later = _later_keys(history.successor, r.key)
        if r.by not in later:
            history.problems.append(
                (r.name, f"retirement signed by {r.by}, which is no successor of {r.key}")
            )
        elif r.by not in trusted:
            history.problems.append((r.name, f"retirement signed by {r.by}, which is not trusted"))
        elif not _verify(keys.get(r.by), r.sig, r.statement):
            history.problems.append((r.name, f"retirement's signature invalid: fingerprint {r.by}"))
        elif r.key not in history.retired or r.since < history.retired[r.key].since:
            history.retired[r.key] = r
    return history


def _later_keys(successor: dict[str, KeyChange], fp: str) -> set[str]:
    later: set[str] = set()
    while fp in successor and successor[fp].new not in later:
        fp = successor[fp].new
        later.add(fp)
    return later


Statements = tuple[list[KeyChange], list[Retirement], list[tuple[str, str]]]
"""Key-change statements, retirement statements, and (name, problem) for what cannot be read."""


def read_files(files: dict[str, bytes]) -> Statements:
    """Statements from the files of a ``keys/changes/`` folder (name -> bytes): the changes,
    the retirements, and (name, problem) for what cannot be read."""
    changes: list[KeyChange] = []
    retirements: list[Retirement] = []
    problems: list[tuple[str, str]] = []
    for name in sorted(files):
        if not name.endswith(".json"):
            if not (CHANGE_NAME.match(name) or RETIREMENT_NAME.match(name)):
                problems.append((name, "not a key-change or retirement file name"))
            continue
        try:
            if m := CHANGE_NAME.match(name):
                stem = name[:-5]
                change = parse_change(
                    files[name], files.get(f"{stem}.old.sig", b""), files.get(f"{stem}.new.sig", b"")
                )
                if (change.old, change.new) != (m.group(1), m.group(2)):
                    raise jcs.NotCanonical("its name is not its keys' fingerprints")
                changes.append(change)
            elif m := RETIREMENT_NAME.match(name):
                retirement = parse_retirement(files[name], files.get(f"{name[:-5]}.sig", b""))
                if retirement.name != name[:-5]:
                    raise jcs.NotCanonical("its name is not its key and digest")
                retirements.append(retirement)
            else:
                problems.append((name, "not a key-change or retirement file name"))
        except jcs.NotCanonical as exc:
            problems.append((name, f"unreadable statement ({exc})"))
    return changes, retirements, problems


# --- in the catalog ----------------------------------------------------------------------------


def to_row(statement: KeyChange | Retirement, now: datetime) -> KeyStatement:
    if isinstance(statement, KeyChange):
        kind, sigs = "change", {"old": statement.old_sig, "new": statement.new_sig}
    else:
        kind, sigs = "retirement", {"by": statement.sig}
    return KeyStatement(
        name=statement.name,
        kind=kind,
        statement=statement.statement.decode("utf-8"),
        signatures=json.dumps({k: base64.b64encode(v).decode() for k, v in sigs.items()}, sort_keys=True),
        stored=False,
        created_at=now,
    )


def from_row(row: KeyStatement) -> KeyChange | Retirement:
    sigs = {k: base64.b64decode(v) for k, v in json.loads(row.signatures).items()}
    data = row.statement.encode("utf-8")
    if row.kind == "change":
        return parse_change(data, sigs.get("old", b""), sigs.get("new", b""))
    return parse_retirement(data, sigs.get("by", b""))


def recorded(session: Session) -> Statements:
    """The catalog's statements, and (name, problem) for any that cannot be read."""
    changes: list[KeyChange] = []
    retirements: list[Retirement] = []
    problems: list[tuple[str, str]] = []
    for row in session.execute(select(KeyStatement).order_by(KeyStatement.name)).scalars():
        try:
            found = from_row(row)
        except (jcs.NotCanonical, ValueError) as exc:
            problems.append((row.name, f"unreadable statement in the catalog ({exc})"))
            continue
        if isinstance(found, KeyChange):
            changes.append(found)
        else:
            retirements.append(found)
    return changes, retirements, problems


def add_keys(anchors: Anchors, session: Session) -> None:
    """Every signer's public key the catalog's checkpoints carry (material, never trust)."""
    for (public_key,) in session.execute(select(CheckpointRow.public_key).distinct()):
        try:
            raw = base64.b64decode(public_key or "", validate=True)
        except ValueError:
            continue
        if len(raw) == 32:
            anchors.add_key(raw)
