"""Rotating and retiring the custody signing key, made durable in the catalog and in storage.

Rotation is one catalog transaction: a last checkpoint by the old key, the key-change
statement signed by both keys (``catalog.keyhistory``), a ``key_rotated`` event, the
catalog's recorded signing key switched to the new one, and a first checkpoint by the new key
covering that event. Either all of it is there or none. Storage gets the statements in
``custody/keys/changes/`` (locked like the checkpoints) with the next publication; a run
that dies before that leaves them to the next ``publish``.

Retirement of a compromised key is a statement signed by the current key (a successor of
the retired one), recorded and checkpointed the same way.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from catalog import custody, keyhistory
from catalog.actions import Action
from catalog.canonical import format_instant
from catalog.checkpoint import Anchors, fingerprint, key_id, public_key_pem, raw_from_pem, raw_public_key
from catalog.errors import InvalidInput
from catalog.keyhistory import KeyChange, Retirement
from catalog.models import CatalogKey, CheckpointRow, KeyStatement

from .context import ServiceContext
from .errors import ObjectExists
from .layout import check_key, key_history_key
from .retention import lock_until
from .store import ObjectStore

CHANGES = "custody/keys/changes/"


def _fp(key: Ed25519PrivateKey) -> str:
    return fingerprint(raw_public_key(key.public_key()))


def change_from(session: Session, old: str) -> KeyChange | None:
    """The recorded hand-over from key ``old``, if there is one."""
    changes, _, _ = keyhistory.recorded(session)
    return next((c for c in changes if c.old == old), None)


def rotate(
    ctx: ServiceContext, old_key: Ed25519PrivateKey, new_key: Ed25519PrivateKey, *, purpose: str
) -> KeyChange:
    """Hand the custody chain over from ``old_key`` to ``new_key`` (see the module). Run
    again after a crash it finds the recorded hand-over and only publishes."""
    old, new = _fp(old_key), _fp(new_key)
    if old == new:
        raise InvalidInput("the new signing key is the old one", hint="a rotation needs a newly made key")
    now = ctx.now()
    with ctx.sessions.begin() as session:
        # Appenders and other rotations wait from here: a rotation started at the same
        # moment finds this one's hand-over below rather than signing a second successor.
        custody.lock_head(session)
        done = change_from(session, old)
        if done is not None:
            if done.new != new:
                raise InvalidInput(
                    f"key {old} was handed over to {done.new} already, not to {new}",
                    hint="a key has one successor: sign with the key that succeeded it",
                )
            change = done
        else:
            last = custody.make_checkpoint(session, old_key, actor=ctx.actor, now=now)
            change = keyhistory.sign_change(old_key, new_key, last=last, time=now)
            session.add(keyhistory.to_row(change, now))
            session.flush()
            _switch(
                session,
                ctx,
                new_key,
                purpose,
                {"old": old, "new": new, "n": last.n, "statement": change.digest()},
                now,
            )
    from .checkpoints import publish

    publish(ctx.sessions, ctx.store, now=now)
    return change


def _switch(
    session: Session,
    ctx: ServiceContext,
    new_key: Ed25519PrivateKey,
    purpose: str,
    details: dict[str, object],
    now: datetime,
) -> None:
    """In the hand-over's transaction: the ``key_rotated`` event, the catalog's signing key
    switched to ``new_key``, and the new key's first checkpoint, which covers the event."""
    custody.append(
        session,
        actor=ctx.actor,
        action=Action.KEY_ROTATED,
        subject=f"key:{details['new']}",
        details=details,
        now=now,
    )
    session.execute(
        update(CatalogKey).where(CatalogKey.purpose == purpose).values(key_id=key_id(new_key.public_key()))
    )
    custody.make_checkpoint(session, new_key, actor=ctx.actor, now=now)


def replace_lost(ctx: ServiceContext, new_key: Ed25519PrivateKey, *, lost: str | None, purpose: str) -> None:
    """Start signing with ``new_key`` after the old key (fingerprint ``lost``, when known) was
    lost: no key-change statement can be made, so the new key is trusted only where it is
    pinned again. Records a ``key_rotated`` event marked ``lost`` and checkpoints it with the
    new key, in one transaction; nothing when the catalog already records ``new_key``."""
    new = _fp(new_key)
    now = ctx.now()
    with ctx.sessions.begin() as session:
        recorded = session.get(CatalogKey, purpose)
        if recorded is not None and recorded.key_id == key_id(new_key.public_key()):
            return
        _switch(session, ctx, new_key, purpose, {"old": lost, "new": new, "lost": True}, now)
    from .checkpoints import publish

    publish(ctx.sessions, ctx.store, now=now)


def retire(
    ctx: ServiceContext, current_key: Ed25519PrivateKey, retired: str, *, since: datetime
) -> Retirement:
    """Record that key ``retired`` (an earlier key of this history) is compromised since
    ``since``, signed by ``current_key``, and checkpoint it."""
    by = _fp(current_key)
    now = ctx.now()
    with ctx.sessions.begin() as session:
        changes, _, _ = keyhistory.recorded(session)
        successor = {c.old: c.new for c in changes}
        later, fp = set(), retired
        while fp in successor and successor[fp] not in later:
            fp = successor[fp]
            later.add(fp)
        if by not in later:
            raise InvalidInput(
                f"key {retired} is no earlier key of this installation's signing key {by}",
                hint="a successor signs a retirement: rotate the key first (`evidence audit rotate-key`)",
            )
        statement = keyhistory.sign_retirement(current_key, key=retired, since=since, time=now)
        if session.get(KeyStatement, statement.name) is None:
            session.add(keyhistory.to_row(statement, now))
            session.flush()
            custody.append(
                session,
                actor=ctx.actor,
                action=Action.KEY_RETIRED,
                subject=f"key:{retired}",
                details={
                    "retired": retired,
                    "by": by,
                    "compromised_since": format_instant(statement.since),
                    "statement": statement.digest(),
                },
                now=now,
            )
            custody.make_checkpoint(session, current_key, actor=ctx.actor, now=now)
    from .checkpoints import publish

    publish(ctx.sessions, ctx.store, now=now)
    return statement


def publish_statements(sessions: sessionmaker[Session], store: ObjectStore, *, now: datetime) -> list[str]:
    """Copy every statement not yet in storage (with its signers' public keys) into
    ``custody/keys/changes/``, locked; returns their names."""
    until = lock_until(now, None, now=now)
    with sessions() as session:
        rows = session.execute(select(KeyStatement).where(KeyStatement.stored.is_(False))).scalars().all()
        pending = [(row.name, keyhistory.from_row(row)) for row in rows]
        keys = {}
        for (public_key,) in session.execute(select(CheckpointRow.public_key).distinct()):
            raw = base64.b64decode(public_key or "")
            if len(raw) == 32:
                keys[fingerprint(raw)] = raw
    done = []
    for name, statement in pending:
        signers = (
            (statement.old, statement.new)
            if isinstance(statement, KeyChange)
            else (statement.key, statement.by)
        )
        for fp in signers:
            if fp in keys:
                pem = public_key_pem(keys[fp])
                _put_once(store, key_history_key(fp), pem, until)
        for file, data in statement.files().items():
            _put_once(store, check_key(CHANGES + file), data, until)
        with sessions.begin() as session:
            session.execute(update(KeyStatement).where(KeyStatement.name == name).values(stored=True))
        done.append(name)
    return done


def _put_once(store: ObjectStore, key: str, data: bytes, until: datetime) -> None:
    sha = hashlib.sha256(data).hexdigest()
    try:
        store.put(
            key,
            io.BytesIO(data),
            content_type="application/octet-stream",
            retain_until=until,
            metadata={"sha256": sha},
        )
    except ObjectExists:
        if hashlib.sha256(b"".join(store.read(key))).hexdigest() != sha:
            raise


def stored_statements(store: ObjectStore) -> keyhistory.Statements:
    """The statements in storage, and (name, problem) for what cannot be read."""
    files = {}
    for info in store.list(CHANGES):
        files[info.key.removeprefix(CHANGES)] = b"".join(store.read(info.key))
    return keyhistory.read_files(files)


def add_stored_keys(anchors: Anchors, store: ObjectStore) -> list[str]:
    """Add the public keys of ``custody/keys/`` to ``anchors`` as material (never trust);
    returns what could not be read."""
    problems = []
    for info in store.list("custody/keys/"):
        if not re.fullmatch(r"custody/keys/[0-9a-f]{64}\.pem", info.key):
            continue
        try:
            fp = anchors.add_key(raw_from_pem(b"".join(store.read(info.key))[:65536]))
        except InvalidInput as exc:
            problems.append(f"{info.key}: {exc.message}")
            continue
        if info.key != key_history_key(fp):
            problems.append(f"{info.key} holds the key with fingerprint {fp}")
    return problems
