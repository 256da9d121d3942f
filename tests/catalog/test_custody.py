import hashlib
import json
import multiprocessing
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from catalog import custody
from catalog.chain import GENESIS_HASH, seal, seal_v2
from catalog.checkpoint import Anchors, fingerprint, sign_checkpoint, sign_checkpoint_v2
from catalog.db import make_engine, session_factory
from catalog.errors import InvalidInput
from catalog.jcs import MAX_SAFE_INTEGER


def fill(engine, n: int) -> None:
    with session_factory(engine).begin() as s:
        for i in range(1, n + 1):
            custody.append(
                s,
                actor="alice",
                action="viewed",
                subject=f"KZCG-20201105-ST01-{i:04d}",
                details={"i": i, "note": "现场"},
            )


def trust(key) -> Anchors:
    return Anchors({fingerprint(key.public_key())} if key else set())


def report(engine, key=None):
    with session_factory(engine)() as s:
        return custody.verify(s, trust(key))


def test_append_links_events_and_moves_the_head(engine) -> None:
    fill(engine, 5)
    with session_factory(engine)() as s:
        events = list(custody.events(s))
        assert [e.seq for e in events] == [1, 2, 3, 4, 5]
        assert events[0].prev_hash == GENESIS_HASH
        assert all(b.prev_hash == a.hash for a, b in pairwise(events))
        assert custody.head(s) == (5, events[-1].hash)
        assert [e.seq for e in custody.events(s, subject="KZCG-20201105-ST01-0003")] == [3]
        assert [e.seq for e in custody.events(s, after_seq=3)] == [4, 5]
    r = report(engine)
    assert r.ok and r.events == 5 and r.first_bad_event is None


def test_an_event_rolls_back_with_its_transaction(engine) -> None:
    fill(engine, 2)
    with pytest.raises(RuntimeError), session_factory(engine).begin() as s:
        custody.append(s, actor="bob", action="linked", subject="X")
        raise RuntimeError("the change it records failed")
    fill(engine, 1)
    r = report(engine)
    assert r.ok and r.events == 3


def test_stored_bodies_are_exactly_what_was_hashed(engine) -> None:
    details = {
        "b": 15,
        "a": ("t", "u"),
        "c": {"开": None},
        "empty": {},
        "big": str(2**64),
        "edge": -MAX_SAFE_INTEGER,
    }
    with session_factory(engine).begin() as s:
        ev = custody.append(s, actor="a", action="viewed", subject=None, details=details)
    with session_factory(engine)() as s:
        (back,) = custody.events(s)
    assert back == ev and back.v == 2 and back.body == ev.body
    assert back.details == details | {"a": ["t", "u"]}
    assert hashlib.sha256(prev_bytes(back) + hashlib.sha256(back.body).digest()).hexdigest() == back.hash


def prev_bytes(event) -> bytes:
    return bytes.fromhex(event.prev_hash)


@pytest.mark.parametrize(
    "details",
    [
        {"start_s": 0.0},
        {"nested": [{"watched": 1.5}]},
        {"too_big": MAX_SAFE_INTEGER + 1},
        {"too_small": -MAX_SAFE_INTEGER - 1},
        {"not_json": {1, 2}},
        {"key": {3: "int key"}},
    ],
)
def test_a_writer_breaking_the_number_rule_is_refused_and_nothing_is_written(engine, details) -> None:
    fill(engine, 1)
    with pytest.raises(InvalidInput), session_factory(engine).begin() as s:
        custody.append(s, actor="a", action="played", subject="X", details=details)
    r = report(engine)
    assert r.ok and r.events == 1


def test_subject_prev_names_the_previous_event_of_the_same_subject(engine) -> None:
    with session_factory(engine).begin() as s:
        a1 = custody.append(s, actor="a", action="viewed", subject="A")
        custody.append(s, actor="a", action="viewed", subject="B")
        a2 = custody.append(s, actor="a", action="viewed", subject="A")
        none = custody.append(s, actor="a", action="fixity_run", subject=None)
    assert (a1.subject_prev, a2.subject_prev, none.subject_prev) == (None, a1.hash, None)
    assert len(json.loads(a1.body)["salt"]) == 32 and a1.body != a2.body


def test_events_about_many_subjects_respects_the_bounds(engine) -> None:
    fill(engine, 650)  # subjects 0001-0650, one event each (seq = i)
    wanted = {f"KZCG-20201105-ST01-{i:04d}" for i in range(1, 601)} | {"never-seen"}  # two batches
    with session_factory(engine)() as s:
        every = list(custody.events_about(s, sorted(wanted) * 2))  # repeats are read once
        assert sorted(e.seq for e in every) == list(range(1, 601))
        middle = list(custody.events_about(s, wanted, after_seq=100, upto_seq=200))
        assert sorted(e.seq for e in middle) == list(range(101, 201))


def test_checkpoints_sign_the_head_and_are_checked(engine) -> None:
    key = Ed25519PrivateKey.generate()
    fill(engine, 3)
    with session_factory(engine).begin() as s:
        cp = custody.make_checkpoint(s, key, actor="cron")
    assert (cp.n, cp.seq) == (1, 3)
    fill(engine, 2)
    with session_factory(engine).begin() as s:
        cp2 = custody.make_checkpoint(s, key, actor="cron")
    assert (cp2.n, cp2.seq) == (2, 6)  # event 4 records checkpoint 1
    r = report(engine, key)
    assert r.ok and r.checkpoints == 2 and r.events == 7
    assert not report(engine, Ed25519PrivateKey.generate()).ok  # another key is not trusted


# --- tampering with raw SQL -------------------------------------------------


def sql(engine, statement: str, **params) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def test_edited_actor_is_found(engine) -> None:
    fill(engine, 10)
    sql(engine, "update custody_events set actor = 'mallory' where seq = 4")
    r = report(engine)
    assert not r.ok and r.first_bad_event == 4
    assert r.problems[0]["problem"] == "altered"


def test_edited_details_are_found(engine) -> None:
    fill(engine, 10)
    sql(engine, "update custody_events set details = :d where seq = 7", d='{"i":7,"note":"改"}')
    assert report(engine).first_bad_event == 7


def test_edited_time_is_found(engine) -> None:
    fill(engine, 10)
    sql(
        engine,
        "update custody_events set time = :t where seq = 2",
        t=datetime(2020, 1, 1, tzinfo=UTC)
        if engine.dialect.name == "postgresql"
        else "2020-01-01 00:00:00.000000",
    )
    assert report(engine).first_bad_event == 2


def test_deleted_event_is_found(engine) -> None:
    fill(engine, 10)
    sql(engine, "delete from custody_events where seq = 5")
    r = report(engine)
    assert r.first_bad_event == 5 and r.problems[0]["problem"] == "missing"


def test_deleted_last_events_are_found_through_the_head(engine) -> None:
    fill(engine, 10)
    sql(engine, "delete from custody_events where seq >= 9")
    r = report(engine)
    assert r.first_bad_event == 9 and r.problems[0]["problem"] == "truncated"


def test_reordered_events_are_found(engine) -> None:
    fill(engine, 10)
    # Swap the contents of events 3 and 6, keeping their sequence numbers.
    cols = "time, actor, action, subject, details, prev_hash, hash, v, body, body_hash"
    sql(engine, f"create table tmp_swap as select seq, {cols} from custody_events where seq in (3, 6)")
    sql(engine, "update custody_events set hash = 'x3' where seq = 3")
    sql(engine, "update custody_events set hash = 'x6' where seq = 6")
    for target, source in [(3, 6), (6, 3)]:
        for col in cols.split(", "):
            sql(
                engine,
                f"update custody_events set {col} = (select {col} from tmp_swap "
                f"where seq = {source}) where seq = {target}",
            )
    r = report(engine)
    assert not r.ok and r.first_bad_event == 3


def test_renumbered_events_are_found(engine) -> None:
    fill(engine, 10)
    sql(engine, "update custody_events set seq = 100 where seq = 8")
    sql(engine, "update custody_events set seq = 8 where seq = 9")
    sql(engine, "update custody_events set seq = 9 where seq = 100")
    assert report(engine).first_bad_event == 8


def insert_event(engine, event) -> None:
    sql(
        engine,
        "insert into custody_events (seq, time, actor, action, subject, details, prev_hash, hash, v, "
        "body, body_hash) values (:seq, :time, :actor, :action, :subject, :details, :prev, :hash, :v, "
        ":body, :body_hash)",
        seq=event.seq,
        time=event.time
        if engine.dialect.name == "postgresql"
        else event.time.strftime("%Y-%m-%d %H:%M:%S.%f"),
        actor=event.actor,
        action=event.action,
        subject=event.subject,
        details=json.dumps(event.details, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
        prev=event.prev_hash,
        hash=event.hash,
        v=event.v,
        body=event.body.decode() if event.body is not None else None,
        body_hash=event.body_hash,
    )


def test_a_rewritten_tail_is_caught_by_the_checkpoint(engine) -> None:
    """Someone with database access rewrites events 6-10 and the head consistently."""
    key = Ed25519PrivateKey.generate()
    fill(engine, 10)
    with session_factory(engine).begin() as s:
        custody.make_checkpoint(s, key, actor="cron")
    with session_factory(engine)() as s:
        events = list(custody.events(s))
    prev = events[4].hash
    sql(engine, "delete from custody_events where seq >= 6")
    for old in events[5:]:
        forged = seal_v2(old.seq, old.time, old.actor, old.action, old.subject, {"forged": True}, prev, None)
        insert_event(engine, forged)
        prev = forged.hash
    sql(engine, "update custody_head set seq = :s, hash = :h", s=events[-1].seq, h=prev)
    r = report(engine, key)
    assert not r.ok
    assert [p["problem"] for p in r.problems] == ["checkpoint_mismatch"]
    assert r.first_bad_event == 10  # the checkpoint signed event 10


def test_an_edited_checkpoint_row_disagrees_with_its_statement(engine) -> None:
    key = Ed25519PrivateKey.generate()
    fill(engine, 4)
    with session_factory(engine).begin() as s:
        custody.make_checkpoint(s, key, actor="cron")
    sql(engine, "update checkpoints set seq = 3")
    r = report(engine, key)
    assert "bad_signature" in {p["problem"] for p in r.problems}


def test_an_edited_statement_fails_its_signature(engine) -> None:
    key = Ed25519PrivateKey.generate()
    fill(engine, 4)
    with session_factory(engine).begin() as s:
        cp = custody.make_checkpoint(s, key, actor="cron")
    edited = cp.signed_bytes().replace(b'"seq":4', b'"seq":3')
    sql(engine, "update checkpoints set statement = :t, seq = 3", t=edited.decode())
    r = report(engine, key)
    assert any(
        p["problem"] == "bad_signature" and f"signature invalid: fingerprint {cp.key}" in p["detail"]
        for p in r.problems
    ), r.problems


def test_a_checkpoint_replaced_by_a_database_administrator_is_not_trusted(engine) -> None:
    """He rewrites the tail and head, then replaces checkpoint 1 with one his own key signs."""
    ours, mallory = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    fill(engine, 5)
    with session_factory(engine).begin() as s:
        custody.make_checkpoint(s, ours, actor="cron")
        seq, head = custody.head(s)
    forged = sign_checkpoint_v2(mallory, n=1, seq=seq, head=head, time=datetime.now(UTC), prev=None)
    sql(
        engine,
        "update checkpoints set statement = :t, signature = :sig, public_key = :pk, key = :k, seq = :s, "
        "head = :h where n = 1",
        t=forged.signed_bytes().decode(),
        sig=forged.signature,
        pk=forged.public_key,
        k=forged.key,
        s=seq,
        h=head,
    )
    r = report(engine, ours)
    assert [p["detail"] for p in r.problems] == [
        f"checkpoint 1: signature valid, signer not trusted: fingerprint {forged.key}"
    ]
    assert r.signers == [forged.key]
    assert report(engine, mallory).ok  # trusting his key is the only way it passes


def test_a_deleted_checkpoint_row_is_a_gap_in_the_chain_of_statements(engine) -> None:
    key = Ed25519PrivateKey.generate()
    for _ in range(3):
        fill(engine, 2)
        with session_factory(engine).begin() as s:
            custody.make_checkpoint(s, key, actor="cron")
    sql(engine, "delete from checkpoints where n = 2")
    r = report(engine, key)
    assert [p["problem"] for p in r.problems] == ["checkpoint_gap", "checkpoint_chain"]


def test_a_stored_body_with_an_extra_key_is_a_mismatch(engine) -> None:
    fill(engine, 3)
    with session_factory(engine)() as s:
        body = custody.events_at(s, [2]).__next__().body
    extra = body.replace(b'"v":2}', b'"v":2,"x":1}')
    # The body hash column follows: only the bytes themselves give the forgery away.
    sql(
        engine,
        "update custody_events set body = :b, body_hash = :h where seq = 2",
        b=extra.decode(),
        h=hashlib.sha256(extra).hexdigest(),
    )
    r = report(engine)
    assert r.first_bad_event == 2 and r.problems[0]["problem"] == "altered"
    assert "not a canonical v2 body" in r.problems[0]["detail"]


def test_an_edited_column_disagrees_with_the_signed_body(engine) -> None:
    fill(engine, 3)
    sql(engine, "update custody_events set details = :d where seq = 2", d='{"i":99,"note":"现场"}')
    r = report(engine)
    assert r.first_bad_event == 2 and "details differ from its signed body" in r.problems[0]["detail"]


def test_a_skipped_event_of_a_subject_breaks_subject_prev(engine) -> None:
    """A forger inserts a v2 event whose subject_prev skips the subject's last event."""
    with session_factory(engine).begin() as s:
        custody.append(s, actor="a", action="viewed", subject="A")
        seq, head = custody.head(s)
    forged = seal_v2(seq + 1, datetime.now(UTC), "a", "viewed", "A", {}, head, None)  # should name event 1
    insert_event(engine, forged)
    sql(engine, "update custody_head set seq = :s, hash = :h", s=forged.seq, h=forged.hash)
    r = report(engine)
    assert [p["problem"] for p in r.problems] == ["subject_link"]


# --- v1 events and checkpoints from before the upgrade ---------------------------------------


def v1_history(engine, key) -> None:
    """Events and a checkpoint as the chain wrote them before version 2."""
    prev, when = GENESIS_HASH, datetime(2024, 3, 1, tzinfo=UTC)
    for seq, subject in enumerate(["A", "B", "A"], 1):
        event = seal(
            seq, when, "station:ST01", "ingested", subject, {"sha256": "ab" * 32, "note": "现场"}, prev
        )
        insert_event(engine, event)
        prev = event.hash
    sql(engine, "update custody_head set seq = 3, hash = :h", h=prev)
    cp = sign_checkpoint(key, n=1, seq=3, head=prev, time=when)
    sql(
        engine,
        "insert into checkpoints (n, seq, head, time, key_id, public_key, signature, v) "
        "values (1, 3, :h, :t, :k, :p, :s, 1)",
        h=prev,
        t=when if engine.dialect.name == "postgresql" else when.strftime("%Y-%m-%d %H:%M:%S.%f"),
        k=cp.key_id,
        p=cp.public_key,
        s=cp.signature,
    )


def test_a_v1_chain_from_before_the_upgrade_still_verifies(engine) -> None:
    key = Ed25519PrivateKey.generate()
    v1_history(engine, key)
    r = report(engine, key)
    assert r.ok and r.events == 3 and r.checkpoints == 1
    sql(engine, "update custody_events set actor = 'mallory' where seq = 2")
    assert report(engine, key).first_bad_event == 2


def test_a_chain_crossing_from_v1_to_v2_verifies(engine) -> None:
    key = Ed25519PrivateKey.generate()
    v1_history(engine, key)
    with session_factory(engine).begin() as s:
        a = custody.append(s, actor="a", action="viewed", subject="A")
        cp = custody.make_checkpoint(s, key, actor="cron")
        v1 = custody.checkpoints(s)[0]
        (third,) = custody.events_at(s, [3])
    assert a.v == 2 and a.prev_hash == third.hash and a.subject_prev == third.hash  # the v1 event of A
    assert cp.v == 2 and cp.prev == v1.digest()  # chained to the v1 statement's bytes
    r = report(engine, key)
    assert r.ok and r.events == 5 and r.checkpoints == 2, r.problems
    sql(
        engine,
        "update custody_events set details = :d where seq = 1",
        d='{"note":"改","sha256":"' + "ab" * 32 + '"}',
    )
    assert report(engine, key).first_bad_event == 1


def test_an_idle_chain_is_not_signed_again(engine) -> None:
    key = Ed25519PrivateKey.generate()
    fill(engine, 2)
    with session_factory(engine).begin() as s:
        assert not custody.nothing_new(s)
        custody.make_checkpoint(s, key, actor="cron")
        assert custody.nothing_new(s)  # only the checkpoint's own event since
    fill(engine, 1)
    with session_factory(engine).begin() as s:
        assert not custody.nothing_new(s)


# --- concurrent appenders -------------------------------------------------


def _append_many(url: str, worker: int, count: int) -> None:
    engine = make_engine(url)
    sessions = session_factory(engine)
    try:
        for i in range(count):
            with sessions.begin() as s:
                custody.append(s, actor=f"worker{worker}", action="viewed", subject=f"W{worker}-{i}")
    finally:
        engine.dispose()


def test_concurrent_appenders_never_fork_the_chain(engine, db_url: str) -> None:
    workers, each = 6, 20
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(db_url, w, each)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
        assert p.exitcode == 0
    r = report(engine)
    assert r.ok, r.problems
    assert r.events == workers * each
    with session_factory(engine)() as s:
        assert custody.head(s)[0] == workers * each
        actors = {e.actor for e in custody.events(s)}
    assert actors == {f"worker{w}" for w in range(workers)}


def test_an_action_without_a_name_is_refused(engine) -> None:
    with pytest.raises(ValueError, match="not a valid Action"), session_factory(engine).begin() as s:
        custody.append(s, actor="a", action="made_up", subject=None)
    assert report(engine).events == 0
