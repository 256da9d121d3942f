import multiprocessing
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from catalog import custody
from catalog.chain import GENESIS_HASH
from catalog.db import make_engine, session_factory


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


def report(engine, key=None):
    with session_factory(engine)() as s:
        return custody.verify(s, key.public_key() if key else None)


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


def test_stored_details_are_exactly_what_was_hashed(engine) -> None:
    with session_factory(engine).begin() as s:
        ev = custody.append(
            s,
            actor="a",
            action="viewed",
            subject=None,
            details={"b": 1.5, "a": ("t", "u"), "c": {"开": None}},
        )
    with session_factory(engine)() as s:
        (back,) = custody.events(s)
    assert back == ev and back.details == {"a": ["t", "u"], "b": 1.5, "c": {"开": None}}


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
    cols = "time, actor, action, subject, details, prev_hash, hash"
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


def test_a_rewritten_tail_is_caught_by_the_checkpoint(engine) -> None:
    """Someone with database access rewrites events 6-10 and the head consistently."""
    from catalog.chain import seal

    key = Ed25519PrivateKey.generate()
    fill(engine, 10)
    with session_factory(engine).begin() as s:
        custody.make_checkpoint(s, key, actor="cron")
    with session_factory(engine)() as s:
        events = list(custody.events(s))
    prev = events[4].hash
    sql(engine, "delete from custody_events where seq >= 6")
    for old in events[5:]:
        forged = seal(old.seq, old.time, old.actor, old.action, old.subject, {"forged": True}, prev)
        sql(
            engine,
            "insert into custody_events (seq, time, actor, action, subject, details, "
            "prev_hash, hash) values (:seq, :time, :actor, :action, :subject, :details, "
            ":prev, :hash)",
            seq=forged.seq,
            time=old.time
            if engine.dialect.name == "postgresql"
            else old.time.strftime("%Y-%m-%d %H:%M:%S.%f"),
            actor=forged.actor,
            action=forged.action,
            subject=forged.subject,
            details='{"forged":true}',
            prev=prev,
            hash=forged.hash,
        )
        prev = forged.hash
    sql(engine, "update custody_head set seq = :s, hash = :h", s=events[-1].seq, h=prev)
    r = report(engine, key)
    assert not r.ok
    assert [p["problem"] for p in r.problems] == ["checkpoint_mismatch"]
    assert r.first_bad_event == 10  # the checkpoint signed event 10


def test_an_edited_checkpoint_fails_its_signature(engine) -> None:
    key = Ed25519PrivateKey.generate()
    fill(engine, 4)
    with session_factory(engine).begin() as s:
        custody.make_checkpoint(s, key, actor="cron")
    sql(engine, "update checkpoints set seq = 3")
    r = report(engine, key)
    assert "bad_signature" in {p["problem"] for p in r.problems}


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
