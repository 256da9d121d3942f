"""Signed statements of the custody chain's head (Ed25519), as plain values.

A checkpoint says "event SEQ of this chain hashes to HEAD". Version 2 (every checkpoint
since the upgrade) signs the exact bytes of the statement, the JCS (RFC 8785) of::

    {"v": 2, "type": "evidence-custody-checkpoint", "n": N, "seq": SEQ, "head": "<hex>",
     "time": "...Z", "key": "<SHA-256 of the raw 32-byte public key, 64 hex>",
     "prev": "<SHA-256 of the previous checkpoint's statement bytes>" or null (the first)}

so checkpoints chain (a deleted one is a gap) and name their signer in full. The signature
is the raw 64-byte Ed25519 signature over those bytes (``openssl pkeyutl -verify -rawin``).

Version 1 (checkpoints from before the upgrade) signed the canonical serialization of
``{"v": 1, "type", "n", "seq", "head", "time", "key_id"}``, ``key_id`` being the first 16 hex
digits of the fingerprint; the statement bytes a v2 ``prev`` hashes are those.

Trust never comes from a key a checkpoint, a package, the catalog or storage carries: a
signer is trusted when its full fingerprint is pinned (``Anchors``). Key material may come
from anywhere, since the fingerprint is a hash of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from . import jcs
from .canonical import canonical_bytes, format_instant, parse_instant
from .errors import InvalidInput

STATEMENT_TYPE = "evidence-custody-checkpoint"
STATEMENT_KEYS = frozenset({"v", "type", "n", "seq", "head", "time", "key", "prev"})
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    return fingerprint(public_key)[:16]


def fingerprint(public_key: Ed25519PublicKey | bytes) -> str:
    """The key's full fingerprint: SHA-256 of the raw 32-byte public key, in hex."""
    raw = public_key if isinstance(public_key, bytes) else raw_public_key(public_key)
    return hashlib.sha256(raw).hexdigest()


def public_key_pem(raw: bytes) -> bytes:
    key = Ed25519PublicKey.from_public_bytes(raw)
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def raw_from_pem(data: bytes) -> bytes:
    """The raw key of an Ed25519 public key in PEM; ``InvalidInput`` otherwise."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"not a PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("not an Ed25519 public key")
    return raw_public_key(key)


@dataclass(frozen=True)
class Checkpoint:
    n: int
    seq: int
    head: str
    time: datetime
    key_id: str
    public_key: str  # base64 of the raw 32-byte Ed25519 public key ("" when not carried)
    signature: str  # base64 of the 64-byte signature
    v: int = 1
    statement_bytes: bytes | None = None  # v2: exactly what was signed
    key: str | None = None  # v2: the signer's full fingerprint
    prev: str | None = None  # v2: SHA-256 of the previous statement's bytes

    def statement(self) -> dict[str, Any]:
        return checkpoint_statement(self.n, self.seq, self.head, self.time, self.key_id)

    def signed_bytes(self) -> bytes:
        """The bytes the signature is over (and a later ``prev`` hashes)."""
        if self.statement_bytes is not None:
            return self.statement_bytes
        return canonical_bytes(self.statement())

    def digest(self) -> str:
        return hashlib.sha256(self.signed_bytes()).hexdigest()

    def signature_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.signature, validate=True)
        except (binascii.Error, ValueError):
            return b""

    @property
    def fingerprint(self) -> str | None:
        """The signer's full fingerprint: named in a v2 statement, computed from the carried
        key for v1 (None when that key is not a key)."""
        if self.v == 2:
            return self.key
        try:
            raw = base64.b64decode(self.public_key, validate=True)
        except (binascii.Error, ValueError):
            return None
        return fingerprint(raw) if len(raw) == 32 else None

    def signed_by(self, raw: bytes) -> bool:
        """True when ``raw`` (a public key) is the named signer and the signature holds."""
        fp = self.fingerprint
        if fp is None or fingerprint(raw) != fp or (self.v == 1 and fp[:16] != self.key_id):
            return False
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(self.signature_bytes(), self.signed_bytes())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_record(self) -> dict[str, Any]:
        return {**self.statement(), "public_key": self.public_key, "signature": self.signature}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Checkpoint:
        return cls(
            int(record["n"]),
            int(record["seq"]),
            record["head"],
            parse_instant(record["time"]),
            record["key_id"],
            record["public_key"],
            record["signature"],
        )

    def signature_valid(self, trusted: Ed25519PublicKey | None = None) -> bool:
        """True when the signature holds under ``trusted`` if given, else under the carried
        key (which proves nothing about who signed: see ``Anchors`` for trust)."""
        if trusted is not None:
            return self.signed_by(raw_public_key(trusted))
        try:
            raw = base64.b64decode(self.public_key, validate=True)
        except (binascii.Error, ValueError):
            return False
        return self.signed_by(raw)


def checkpoint_statement(n: int, seq: int, head: str, time: datetime, kid: str) -> dict[str, Any]:
    return {
        "v": 1,
        "type": STATEMENT_TYPE,
        "n": n,
        "seq": seq,
        "head": head,
        "time": format_instant(time),
        "key_id": kid,
    }


def sign_checkpoint(
    private_key: Ed25519PrivateKey, *, n: int, seq: int, head: str, time: datetime
) -> Checkpoint:
    public = private_key.public_key()
    kid = key_id(public)
    statement = checkpoint_statement(n, seq, head, time, kid)
    signature = private_key.sign(canonical_bytes(statement))
    return Checkpoint(
        n,
        seq,
        head,
        parse_instant(statement["time"]),
        kid,
        base64.b64encode(raw_public_key(public)).decode(),
        base64.b64encode(signature).decode(),
    )


# --- version 2 -------------------------------------------------------------------------------


def statement_v2(n: int, seq: int, head: str, time: datetime, key: str, prev: str | None) -> bytes:
    return jcs.dumps(
        {
            "v": 2,
            "type": STATEMENT_TYPE,
            "n": n,
            "seq": seq,
            "head": head,
            "time": format_instant(time),
            "key": key,
            "prev": prev,
        }
    )


def sign_checkpoint_v2(
    private_key: Ed25519PrivateKey, *, n: int, seq: int, head: str, time: datetime, prev: str | None
) -> Checkpoint:
    raw = raw_public_key(private_key.public_key())
    fp = fingerprint(raw)
    statement = statement_v2(n, seq, head, time, fp, prev)
    return from_statement(statement, private_key.sign(statement), public_key=base64.b64encode(raw).decode())


def parse_statement(data: bytes) -> dict[str, Any]:
    """A v2 statement's fields, read strictly (``jcs.NotCanonical`` says what is wrong)."""
    value = jcs.loads_exact(data)
    if not isinstance(value, dict) or set(value) != STATEMENT_KEYS:
        raise jcs.NotCanonical("not a v2 checkpoint statement")
    ints = all(isinstance(value[k], int) and not isinstance(value[k], bool) for k in ("n", "seq"))
    if not (
        value["v"] == 2
        and value["type"] == STATEMENT_TYPE
        and ints
        and value["n"] >= 1
        and value["seq"] >= 0
        and isinstance(value["head"], str)
        and _HEX64.match(value["head"])
        and isinstance(value["key"], str)
        and _HEX64.match(value["key"])
        and (value["prev"] is None or (isinstance(value["prev"], str) and _HEX64.match(value["prev"])))
        and isinstance(value["time"], str)
    ):
        raise jcs.NotCanonical("a checkpoint statement field is malformed")
    try:
        if format_instant(parse_instant(value["time"])) != value["time"]:
            raise jcs.NotCanonical("the checkpoint time is not in canonical form")
    except (ValueError, InvalidInput) as exc:
        raise jcs.NotCanonical("the checkpoint time is malformed") from exc
    return value


def from_statement(statement: bytes, signature: bytes, *, public_key: str = "") -> Checkpoint:
    """A v2 checkpoint from its statement bytes and raw signature (``jcs.NotCanonical``)."""
    f = parse_statement(statement)
    return Checkpoint(
        f["n"],
        f["seq"],
        f["head"],
        parse_instant(f["time"]),
        f["key"][:16],
        public_key,
        base64.b64encode(signature).decode(),
        v=2,
        statement_bytes=statement,
        key=f["key"],
        prev=f["prev"],
    )


# --- trust -----------------------------------------------------------------------------------


@dataclass
class Anchors:
    """Pinned fingerprints (trust) and public keys known by fingerprint (material only)."""

    trusted: set[str] = field(default_factory=set)
    keys: dict[str, bytes] = field(default_factory=dict)

    def add_key(self, raw: bytes) -> str:
        fp = fingerprint(raw)
        self.keys[fp] = raw
        return fp

    @classmethod
    def parse(cls, values: Iterable[str]) -> Anchors:
        """``--trusted-key`` values and pinned settings: a 64-hex fingerprint or a PEM file."""
        anchors = cls()
        for value in values:
            text = value.strip().lower().replace(":", "")
            if _HEX64.match(text):
                anchors.trusted.add(text)
                continue
            path = Path(value)
            if not path.is_file():
                raise InvalidInput(
                    f"trusted key {value!r} is neither a 64-hex-digit fingerprint nor a key file",
                    hint="give the full SHA-256 fingerprint, or the file `evidence audit key --export` wrote",
                )
            raw = raw_from_pem(path.read_bytes()[:65536])
            anchors.trusted.add(anchors.add_key(raw))
        return anchors

    def judge(self, cp: Checkpoint, carried: bytes | None = None) -> str | None:
        """None when ``cp`` is signed by a trusted key; otherwise what is wrong, naming the
        signer's full fingerprint. ``carried`` is key material found beside the checkpoint."""
        fp = cp.fingerprint
        if fp is None:
            return "no signer named (malformed key)"
        raw = self.keys.get(fp)
        if raw is None and carried is not None and fingerprint(carried) == fp:
            raw = carried
        if raw is None:
            return f"signer's public key not available: fingerprint {fp}"
        if not cp.signed_by(raw):
            return f"signature invalid: fingerprint {fp}"
        if fp not in self.trusted:
            return f"signature valid, signer not trusted: fingerprint {fp}"
        return None
