"""Signed statements of the custody chain's head (Ed25519), as plain values.

A checkpoint says "event SEQ of this chain hashes to HEAD" and is signed over
the canonical serialization of::

    {"v": 1, "type": "evidence-custody-checkpoint", "n": N, "seq": SEQ,
     "head": "<hex>", "time": "...Z", "key_id": "<hex>"}

``key_id`` is the first 16 hex digits of SHA-256 over the raw 32-byte public
key. Anyone holding the public key can check a checkpoint offline.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .canonical import canonical_bytes, format_instant, parse_instant

STATEMENT_TYPE = "evidence-custody-checkpoint"


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public_key(public_key)).hexdigest()[:16]


@dataclass(frozen=True)
class Checkpoint:
    n: int
    seq: int
    head: str
    time: datetime
    key_id: str
    public_key: str  # base64 of the raw 32-byte Ed25519 public key
    signature: str  # base64 of the 64-byte signature

    def statement(self) -> dict[str, Any]:
        return checkpoint_statement(self.n, self.seq, self.head, self.time, self.key_id)

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
        """True when the signature holds, under ``trusted`` if given, else the embedded key."""
        try:
            embedded = Ed25519PublicKey.from_public_bytes(base64.b64decode(self.public_key))
        except ValueError:
            return False
        key = trusted or embedded
        if raw_public_key(key) != raw_public_key(embedded) or key_id(key) != self.key_id:
            return False
        try:
            key.verify(base64.b64decode(self.signature), canonical_bytes(self.statement()))
        except (InvalidSignature, ValueError):
            return False
        return True


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
