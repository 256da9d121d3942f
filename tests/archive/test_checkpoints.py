"""Checkpoints in storage (one folder each, exact bytes) and the audit comparing them with the
catalog: a checkpoint row deleted, replaced or left out is caught, on every catalog and store."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from archive.checkpoints import make_and_publish, publish, stored_checkpoints
from catalog import custody
from catalog.chain import link_hash
from catalog.checkpoint import Anchors, fingerprint, public_key_pem, raw_public_key, sign_checkpoint_v2


def events(env, n: int, subject: str = "KZCG-20201105-ST01-0001") -> None:
    with env.sessions.begin() as s:
        for i in range(n):
            custody.append(
                s, actor="station:ST01", action="viewed", subject=subject, details={"i": i, "注": "现场"}
            )


def audit(env, key) -> list[str]:
    stored, unreadable = stored_checkpoints(env.store)
    assert unreadable == []
    with env.sessions() as s:
        report = custody.verify(s, Anchors({fingerprint(key.public_key())}), stored)
    return [p["problem"] for p in report.problems]


def sql(env, statement: str, **params) -> None:
    with env.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_a_checkpoint_goes_to_storage_as_exact_files(env) -> None:
    key = Ed25519PrivateKey.generate()
    events(env, 3)
    first = make_and_publish(env.as_("cron"), key)
    events(env, 2)
    second = make_and_publish(env.as_("cron"), key)
    assert first and second and (first.n, second.n) == (1, 2)
    folder = "custody/checkpoints/00000002"
    read = lambda name: b"".join(env.store.read(f"{folder}/{name}"))  # noqa: E731
    assert read("checkpoint.json") == second.signed_bytes()
    assert read("checkpoint.sig") == second.signature_bytes() and len(read("checkpoint.sig")) == 64
    with env.sessions() as s:
        segment = list(custody.events(s, after_seq=first.seq, limit=second.seq - first.seq))
    lines = read("events.jsonl").splitlines()
    assert lines == [e.body for e in segment]  # the bodies as hashed, one a line
    links = [line.split(b"\t") for line in read("links.tsv").splitlines()]
    assert [int(x[0]) for x in links] == [e.seq for e in segment]
    assert all(
        x[2].decode() == hashlib.sha256(line).hexdigest()
        and x[3].decode() == link_hash(x[1].decode(), x[2].decode())
        for x, line in zip(links, lines, strict=True)
    )
    assert links[-1][3].decode() == second.head
    key_file = f"custody/keys/{fingerprint(key.public_key())}.pem"
    assert b"".join(env.store.read(key_file)) == public_key_pem(raw_public_key(key.public_key()))
    assert audit(env, key) == []
    assert publish(env.sessions, env.store, now=datetime.now(UTC)) == []  # nothing left to copy


def test_deleted_checkpoint_rows_are_found_in_storage(env) -> None:
    """A database administrator rewrites the tail and head, and deletes the checkpoints that
    signed the old tail: storage still holds them."""
    key = Ed25519PrivateKey.generate()
    events(env, 3)
    make_and_publish(env.as_("cron"), key)
    events(env, 3)
    make_and_publish(env.as_("cron"), key)
    sql(env, "delete from checkpoints where n >= 1")
    assert audit(env, key) == ["checkpoint_missing", "checkpoint_missing"]


def test_a_gap_and_a_disagreeing_head_are_found(env) -> None:
    key, mallory = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    for _ in range(3):
        events(env, 2)
        make_and_publish(env.as_("cron"), key)
    sql(env, "delete from checkpoints where n = 2")
    assert set(audit(env, key)) == {"checkpoint_gap", "checkpoint_chain", "checkpoint_missing"}
    # Checkpoint 3 replaced in the catalog by one the administrator signs over another head.
    with env.sessions() as s:
        cp3 = custody.checkpoints(s)[-1]
    forged = sign_checkpoint_v2(mallory, n=3, seq=cp3.seq, head="ab" * 32, time=cp3.time, prev=cp3.prev)
    sql(
        env,
        "update checkpoints set statement = :t, signature = :sig, public_key = :pk, key = :k, head = :h "
        "where n = 3",
        t=forged.signed_bytes().decode(),
        sig=forged.signature,
        pk=forged.public_key,
        k=forged.key,
        h=forged.head,
    )
    found = audit(env, key)
    assert {"checkpoint_differs", "untrusted", "checkpoint_mismatch"} <= set(found)


def test_an_idle_timer_run_signs_nothing(env) -> None:
    key = Ed25519PrivateKey.generate()
    events(env, 1)
    assert make_and_publish(env.as_("cron"), key, skip_if_idle=True) is not None
    assert make_and_publish(env.as_("cron"), key, skip_if_idle=True) is None
    events(env, 1)
    assert make_and_publish(env.as_("cron"), key, skip_if_idle=True) is not None
    with env.sessions() as s:
        assert [cp.n for cp in custody.checkpoints(s)] == [1, 2]


def test_a_run_that_died_after_writing_is_completed_by_the_next(env) -> None:
    """Storage got the files, the catalog never recorded it: the next run accepts the
    identical objects (they are locked) and records the checkpoint as published."""
    key = Ed25519PrivateKey.generate()
    events(env, 2)
    make_and_publish(env.as_("cron"), key)
    sql(env, "update checkpoints set storage_key = NULL")
    assert publish(env.sessions, env.store, now=datetime.now(UTC)) == [1]
    assert audit(env, key) == []
