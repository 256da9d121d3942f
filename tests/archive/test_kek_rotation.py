"""KEK rotation on both stores (local, Ceph RGW): every protected object (originals of both
formats, a derivative, a written record and its page images) wrapped again under a new
KEK and readable with the old KEK destroyed; wraps tampered with or taken from another
object refused; superseded wraps deletable once their lock ends and not before."""

import io
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from archive import encryption, kek_rotation
from archive.derivatives import store_derivative
from archive.document_pages import document_pages
from archive.documents import NewDocument, store_document
from archive.errors import ObjectLocked
from archive.key_wraps import check_all, read_object_header, restore_rows, wrap_key
from archive.policy import ArchivePolicy
from archive.reading import hash_stored, read_plain
from catalog import keys, schema
from catalog.actions import Action
from catalog.db import make_engine, session_factory
from catalog.models import CustodyEventRow, KeyWrap, Recording
from tests import synthetic
from tests.conftest import ZONE, Env

LOCK = timedelta(seconds=3)  # wrap locks short enough to see one end on the server's clock


@pytest.fixture
def world(sqlite_url, store, tmp_path, monkeypatch):
    """A catalog and store holding one of each protected object, under KEK 1: a recording
    stored in format v1 (as before v2 existed), one in v2 with a derivative, and a protected
    written record with its page images."""
    engine = make_engine(sqlite_url)
    schema.upgrade(engine)
    policy = ArchivePolicy(zone=ZONE, routine=(0, "days"), min_lock=timedelta(seconds=3))
    env = Env(engine, session_factory(engine), store, tmp_path, policy)
    k1 = encryption.generate_kek()
    keks = {encryption.kek_id(k1): k1}

    def current() -> str:
        with env.sessions() as session:
            return keys.recorded_key_id(session, kek_rotation.KEK_PURPOSE) or encryption.kek_id(k1)

    def ctx(actor: str = "curator"):
        return replace(env.as_(actor, kek=k1), load_keks=lambda: (dict(keks), current()), wrap_lock=LOCK)

    monkeypatch.setattr(encryption, "FORMAT_VERSION", 1)
    old = env.recording(1, kek=k1, protected=True)
    monkeypatch.setattr(encryption, "FORMAT_VERSION", 2)
    new = env.recording(2, kek=k1, protected=True)
    thumb = tmp_path / "poster.jpg"
    thumb.write_bytes(b"\xff\xd8\xff\xe0" + b"poster" * 1000)
    deriv = store_derivative(
        ctx("worker"), new, kind="poster", path=thumb, ext="jpg", content_type="image/jpeg", method="test"
    )
    case = env.case()
    pdf = tmp_path / "record.pdf"
    synthetic.make_pdf(pdf, "询问笔录", ["案号：开城管罚立〔2020〕42号"], pages=2)
    _, doc = store_document(
        ctx("clerk"),
        NewDocument(
            case=case.number,
            path=pdf,
            doc_type="询问笔录",
            doc_date=datetime(2020, 11, 5, 1, 30, tzinfo=UTC),
            protected=True,
        ),
        doc_types=["询问笔录"],
    )
    pages = document_pages(ctx("web:aud"), doc.id)
    objects = {
        old.storage_key: (old.storage_version, old.sha256),
        new.storage_key: (new.storage_version, new.sha256),
        deriv.storage_key: (deriv.storage_version, deriv.sha256),
        doc.storage_key: (doc.storage_version, doc.sha256),
        **{p.storage_key: (p.storage_version, p.sha256) for p in pages},
    }
    assert len(objects) == 4 + len(pages) and len(pages) == 2
    yield env, ctx, keks, k1, objects
    engine.dispose()


def _rotate(ctx, keks, batch=2):
    def make() -> bytes:
        k = encryption.generate_kek()
        keks[encryption.kek_id(k)] = k
        return k

    kid, resumed = kek_rotation.start(ctx(), make, ctx().now())
    return kid, resumed, kek_rotation.rewrap_all(ctx(), kid, batch=batch)


def _never() -> bytes:
    raise AssertionError("no new KEK may be made when one is given")


def _all_read(ctx, objects) -> None:
    for key, (version, sha256) in objects.items():
        got = hash_stored(ctx().store, key, version, encrypted=True, kek=ctx().kek())
        assert (got.problem, got.sha256) == (None, sha256), key


# --- hostile first -------------------------------------------------------------------------


def test_a_tampered_or_foreign_wrap_is_refused_clearly(world) -> None:
    env, ctx, keks, k1, objects = world
    kid, _, result = _rotate(ctx, keks)
    assert not result.failed
    assert check_all(env.sessions, env.store)[1] == []
    del keks[encryption.kek_id(k1)]  # the old KEK destroyed: only the new wraps open anything
    doc_key = next(k for k in objects if k.startswith("documents/"))
    page_key = next(k for k in objects if "page" in k)
    with env.sessions.begin() as session:
        mine = session.execute(
            select(KeyWrap).where(KeyWrap.object_key == doc_key, KeyWrap.kek_id == kid)
        ).scalar_one()
        theirs = session.execute(
            select(KeyWrap).where(KeyWrap.object_key == page_key, KeyWrap.kek_id == kid)
        ).scalar_one()
        good, foreign = bytes(mine.wrap), bytes(theirs.wrap)
        flipped = bytearray(good)
        flipped[-3] ^= 1
        session.execute(update(KeyWrap).where(KeyWrap.id == mine.id).values(wrap=bytes(flipped)))
    checked, problems = check_all(env.sessions, env.store)
    assert checked >= len(objects) and problems == [
        f"{mine.storage_key}: the stored wrap differs from the catalog's copy"
    ]
    with pytest.raises(encryption.WrapRefused, match="does not verify"):
        b"".join(read_plain(env.store, doc_key, objects[doc_key][0], encrypted=True, kek=ctx().kek()))
    with env.sessions.begin() as session:
        session.execute(update(KeyWrap).where(KeyWrap.id == mine.id).values(wrap=foreign))
    # The old KEK's wrap is still there: the error names that key and the foreign wrap ...
    with pytest.raises(encryption.EncryptionKeyError, match="belong to another object"):
        b"".join(read_plain(env.store, doc_key, objects[doc_key][0], encrypted=True, kek=ctx().kek()))
    with env.sessions.begin() as session:  # ... and once it is deleted, only the foreign wrap
        session.execute(delete(KeyWrap).where(KeyWrap.object_key == doc_key, KeyWrap.kek_id != kid))
    with pytest.raises(encryption.WrapRefused, match="belongs to another object"):
        b"".join(read_plain(env.store, doc_key, objects[doc_key][0], encrypted=True, kek=ctx().kek()))
    # A catalog rebuilt from storage refuses a wrap object that is another object's, by name.
    env.store.put(wrap_key(doc_key, "0" * 16), io.BytesIO(foreign), retain_until=env.now() + LOCK)
    rebuilt = make_engine(f"sqlite:///{env.tmp / 'rebuilt.sqlite3'}")
    schema.upgrade(rebuilt)
    with session_factory(rebuilt).begin() as session:
        restored, problems = restore_rows(env.store, session)
    assert any(wrap_key(doc_key, "0" * 16) in p and "another object" in p for p in problems), problems
    with session_factory(rebuilt)() as session:
        copies = {(r.object_key, r.kek_id): bytes(r.wrap) for r in session.execute(select(KeyWrap)).scalars()}
    assert copies[(doc_key, kid)] == good  # the stored wrap, not the catalog's forged copy
    assert (doc_key, "0" * 16) not in copies
    rebuilt.dispose()


def test_a_superseded_wrap_is_deleted_once_its_lock_ends_and_not_before(world) -> None:
    env, ctx, keks, k1, objects = world
    old_id = encryption.kek_id(k1)
    kid, _, _ = _rotate(ctx, keks)
    with env.sessions() as session:
        superseded = session.execute(select(KeyWrap).where(KeyWrap.kek_id == old_id)).scalars().all()
    assert superseded and all(w.superseded_at is not None for w in superseded)
    # The v2 recording's first wrap was stored with the default lock (a year): not before.
    year = [w for w in superseded if w.retain_until > ctx().now() + timedelta(days=300)]
    short = sorted(w.storage_key for w in superseded if w not in year)
    assert len(year) == 1 and len(short) >= 3
    with pytest.raises(ObjectLocked):
        env.store.delete(year[0].storage_key, year[0].storage_version)
    early = kek_rotation.delete_superseded(ctx(), confirm=True)
    assert year[0].storage_key in [k for k, _ in early.waiting] and year[0].storage_key not in early.deleted
    assert set(early.deleted) <= set(short)  # (on a slow server some short locks end already)
    time.sleep(LOCK.total_seconds() + 1)
    # The current wraps' locks have ended too: renewing them (nightly) locks them again,
    # and leaves the superseded ones to expire.
    with env.sessions() as session:
        current = session.execute(select(KeyWrap).where(KeyWrap.kek_id == kid)).scalars().all()
    nightly = replace(ctx(), wrap_lock=timedelta(minutes=10))  # long enough to outlast the test
    assert sorted(kek_rotation.renew_locks(nightly)) == sorted(w.storage_key for w in current)
    assert kek_rotation.renew_locks(nightly) == []  # renewed: not due again for five minutes
    with pytest.raises(ObjectLocked):
        env.store.delete(current[0].storage_key, current[0].storage_version)
    done = kek_rotation.delete_superseded(ctx(), confirm=True)
    assert sorted(early.deleted + done.deleted) == short
    assert [k for k, _ in done.waiting] == [year[0].storage_key]
    with env.sessions() as session:
        left = session.execute(select(KeyWrap.storage_key).where(KeyWrap.kek_id == old_id)).scalars().all()
    assert left == [year[0].storage_key]
    for key in short:
        assert not [i for i in env.store.list(key) if i.key == key]
    expired = short
    gone = {w.object_key for w in superseded if w.storage_key in expired}
    _all_read(ctx, objects)  # the new wraps stayed
    # What rotation does not cure: the old KEK alone still opens the v1 object (its first
    # wrap is inside it), and now nothing else.
    only_old = encryption.Keyring.of(k1, wraps=ctx().wraps().lookup)
    for key, (version, sha256) in objects.items():
        header = read_object_header(env.store, key, version)
        if header.version == 1:
            assert hash_stored(env.store, key, version, encrypted=True, kek=only_old).sha256 == sha256
        elif key in gone:
            with pytest.raises(encryption.EncryptionKeyError, match=kid):
                hash_stored(env.store, key, version, encrypted=True, kek=only_old)


# --- rotation ------------------------------------------------------------------------------


def test_after_rotation_every_protected_object_reads_without_the_old_kek(world) -> None:
    env, ctx, keks, k1, objects = world
    versions = {k: read_object_header(env.store, k, v).version for k, (v, _) in objects.items()}
    assert sorted(set(versions.values())) == [1, 2]
    kid, resumed, result = _rotate(ctx, keks, batch=2)
    assert not resumed and not result.failed and result.rewrapped == len(objects)
    assert result.batches == -(-len(objects) // 2)
    del keks[encryption.kek_id(k1)]  # the old KEK file destroyed
    assert list(ctx().kek().keks) == [kid]
    _all_read(ctx, objects)
    with env.sessions() as session:
        events = (
            session.execute(
                select(CustodyEventRow.action).where(
                    CustodyEventRow.action.in_([Action.KEK_ROTATED, Action.KEYS_REWRAPPED])
                )
            )
            .scalars()
            .all()
        )
        assert events.count(Action.KEK_ROTATED) == 1
        assert events.count(Action.KEYS_REWRAPPED) == result.batches
        assert keys.recorded_key_id(session, kek_rotation.ROTATION_PURPOSE) is None  # finished
    # New objects are wrapped under the new KEK from the start.
    later = env.recording(9, kek=keks[kid], protected=True)
    with env.sessions() as session:
        assert session.execute(
            select(KeyWrap.kek_id).where(KeyWrap.object_key == later.storage_key)
        ).scalars().all() == [kid]
    assert (
        hash_stored(
            env.store, later.storage_key, later.storage_version, encrypted=True, kek=ctx().kek()
        ).sha256
        == later.sha256
    )
    # A second rotation, to a KEK made beforehand (and copied to the stations first).
    made = encryption.generate_kek()
    with pytest.raises(encryption.EncryptionKeyError, match="not loaded"):
        kek_rotation.start(ctx(), encryption.generate_kek, ctx().now(), use=encryption.kek_id(made))
    with pytest.raises(encryption.EncryptionKeyError, match="current one already"):
        kek_rotation.start(ctx(), encryption.generate_kek, ctx().now(), use=kid)
    keks[encryption.kek_id(made)] = made
    again, resumed = kek_rotation.start(ctx(), _never, ctx().now(), use=encryption.kek_id(made))
    assert (again, resumed) == (encryption.kek_id(made), False)
    second = kek_rotation.rewrap_all(ctx(), again)
    assert second.rewrapped == len(objects) + 1 and not second.failed
    del keks[kid]
    _all_read(ctx, objects)


def test_a_rotation_stopped_part_way_resumes_the_same_kek(world) -> None:
    env, ctx, keks, k1, objects = world
    calls = {"n": 0}

    def make() -> bytes:
        k = encryption.generate_kek()
        keks[encryption.kek_id(k)] = k
        calls["n"] += 1
        return k

    kid, resumed = kek_rotation.start(ctx(), make, ctx().now())
    first = sorted(objects)[0]  # as if killed after the first object was wrapped again
    header = read_object_header(env.store, first, objects[first][0])
    data_key = encryption.object_data_key(header, ctx().kek(), first)
    ctx().wraps().save(first, kid, encryption.make_wrap(keks[kid], data_key, header, first))
    again, resumed = kek_rotation.start(ctx(), make, ctx().now())
    assert (again, resumed, calls["n"]) == (kid, True, 1)
    result = kek_rotation.rewrap_all(ctx(), kid)
    assert result.total == len(objects) - 1 and not result.failed
    with env.sessions() as session:  # the first object's old wrap too, though its batch died
        old_wraps = session.execute(select(KeyWrap).where(KeyWrap.kek_id != kid)).scalars().all()
    assert old_wraps and all(w.superseded_at is not None for w in old_wraps)
    del keks[encryption.kek_id(k1)]
    _all_read(ctx, objects)
    with env.sessions() as session:
        assert session.execute(select(Recording.id)).scalars().all()
