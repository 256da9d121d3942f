"""Rotating the signing key on every catalog and store (local and RGW): the hand-over is in the
catalog and in locked storage, the audit follows it from either key, and a fork planted in
storage (a stolen old key signing another successor) fails the audit."""

from __future__ import annotations

import io

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archive import keyrotation
from archive.checkpoints import make_and_publish, publish, stored_checkpoints
from archive.policy import ArchivePolicy
from catalog import custody, keyhistory
from catalog.checkpoint import Anchors, fingerprint, public_key_pem, raw_public_key
from tests.archive.test_checkpoints import events
from tests.conftest import ZONE


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """Each store with one catalog backend (PostgreSQL once, below): the rotation is one
    ordinary transaction, and the stores are what differ here."""
    return sqlite_url


def fp(key: Ed25519PrivateKey) -> str:
    return fingerprint(raw_public_key(key.public_key()))


def audit(env, *pinned: Ed25519PrivateKey) -> list[dict]:
    stored, unreadable = stored_checkpoints(env.store)
    assert unreadable == []
    statements = keyrotation.stored_statements(env.store)
    anchors = Anchors({fp(k) for k in pinned})
    assert keyrotation.add_stored_keys(anchors, env.store) == []
    with env.sessions() as s:
        report = custody.verify(s, anchors, stored, statements=statements)
    return report.problems


def rotated(env) -> tuple[Ed25519PrivateKey, Ed25519PrivateKey]:
    a, b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    events(env, 3)
    make_and_publish(env.as_("cron"), a)
    events(env, 2)
    keyrotation.rotate(env.as_("custodian"), a, b, purpose="custody-signing")
    events(env, 2)
    make_and_publish(env.as_("cron"), b)
    return a, b


def test_a_fork_planted_in_storage_fails_the_audit(env) -> None:
    a, b = rotated(env)
    thief = Ed25519PrivateKey.generate()
    with env.sessions() as s:
        a_last = custody.checkpoints(s)[1]
    # Whoever stole A signs A -> X over A's last checkpoint; X's key goes into the history too.
    fork = keyhistory.sign_change(a, thief, last=a_last, time=a_last.time)
    for name, data in fork.files().items():
        env.store.put(f"custody/keys/changes/{name}", io.BytesIO(data))
    env.store.put(
        f"custody/keys/{fp(thief)}.pem", io.BytesIO(public_key_pem(raw_public_key(thief.public_key())))
    )
    for pinned in (a, b):
        problems = audit(env, pinned)
        assert [p["problem"] for p in problems if p["problem"] == "key_history"] == ["key_history"], problems
        assert "fork" in problems[-1]["detail"] or any("fork" in p["detail"] for p in problems)


def test_the_hand_over_is_checkpointed_stored_and_audited_from_either_key(env) -> None:
    a, b = rotated(env)
    with env.sessions() as s:
        cps = custody.checkpoints(s)
        changes, retirements, problems = keyhistory.recorded(s)
    assert [cp.key for cp in cps] == [fp(a), fp(a), fp(b), fp(b)]
    (change,) = changes
    assert (change.old, change.new, change.n, change.checkpoint) == (fp(a), fp(b), 2, cps[1].digest())
    assert (retirements, problems) == ([], [])
    assert keyrotation.stored_statements(env.store) == ([change], [], [])
    for k in (a, b):
        assert b"".join(env.store.read(f"custody/keys/{fp(k)}.pem")) == public_key_pem(
            raw_public_key(k.public_key())
        )
    assert audit(env, a) == [] and audit(env, b) == []
    # Nothing else trusted: both keys' checkpoints are refused.
    assert {p["problem"] for p in audit(env, Ed25519PrivateKey.generate())} == {"untrusted"}
    # Run again after a crash: the same hand-over, nothing new.
    assert keyrotation.rotate(env.as_("custodian"), a, b, purpose="custody-signing") == change
    assert publish(env.sessions, env.store, now=env.now()) == []


def test_a_retired_key_without_time_stamps_is_not_trusted(env) -> None:
    a, b = rotated(env)
    with pytest.raises(Exception, match="no earlier key"):
        keyrotation.retire(env.as_("custodian"), a, fp(b), since=env.now())
    keyrotation.retire(env.as_("custodian"), b, fp(a), since=env.now())
    problems = audit(env, b)
    assert [(p["problem"], p["checkpoint"]) for p in problems] == [("untrusted", 1), ("untrusted", 2)]
    assert all("compromised since" in p["detail"] for p in problems)


def test_a_rebuild_restores_the_key_history(env, tmp_path) -> None:
    from catalog.db import make_engine, session_factory
    from tests.conftest import FORMATS
    from verify.rebuild import rebuild

    a, b = rotated(env)
    target = make_engine(f"sqlite:///{tmp_path / 'rebuilt.sqlite3'}")
    try:
        # Only the newest key pinned: the rebuild follows the statement back to the oldest.
        report = rebuild(env.store, target, formats=FORMATS, anchors=Anchors({fp(b)}))
        assert report.problems == [] and report.signers == {fp(a), fp(b)}
        with env.sessions() as live, session_factory(target)() as rebuilt:
            assert keyhistory.recorded(rebuilt) == keyhistory.recorded(live)
            assert custody.verify(rebuilt, Anchors({fp(a)})).ok
        untrusted = rebuild(
            env.store, make_engine(f"sqlite:///{tmp_path / 'other.sqlite3'}"), formats=FORMATS
        )
        assert len(untrusted.problems) == 4 and all("not trusted" in p for p in untrusted.problems)
    finally:
        target.dispose()


@pytest.fixture(scope="module")
def tsa(tmp_path_factory):
    from tests.servers.tsa import TSA

    server = TSA(tmp_path_factory.mktemp("tsa") / "ours")
    yield server
    server.stop()


def test_a_retired_keys_checkpoints_stamped_before_the_compromise_stay_trusted(env, tsa, tmp_path) -> None:
    from datetime import UTC, datetime, timedelta

    from archive.checkpoints import stamp, stamped
    from archive.timestamping import TimestampAuthority
    from catalog import timestamp
    from catalog.db import make_engine
    from tests.conftest import FORMATS
    from verify.rebuild import rebuild

    a, b = rotated(env)
    stamp(env.as_("cron"), TimestampAuthority(tsa.url))
    trust = timestamp.TimeTrust(timestamp.load_roots(tsa.ca_file.read_bytes(), "ca"))

    def audit_in_time() -> list[tuple[str, int]]:
        stored, _ = stored_checkpoints(env.store)
        anchors = Anchors({fp(b)})
        keyrotation.add_stored_keys(anchors, env.store)
        with env.sessions() as s:
            times = timestamp.review(stamped(s), trust)
            assert times.bad == []
            report = custody.verify(
                s,
                anchors,
                stored,
                statements=keyrotation.stored_statements(env.store),
                existed_by=times.existed_by,
            )
        return [(p["problem"], p["checkpoint"]) for p in report.problems]

    def rebuilt_problems(name: str, with_ca: bool) -> list[str]:
        target = make_engine(f"sqlite:///{tmp_path / name}.sqlite3")
        try:
            report = rebuild(
                env.store,
                target,
                formats=FORMATS,
                anchors=Anchors({fp(b)}),
                time_trust=trust if with_ca else None,
            )
        finally:
            target.dispose()
        return [p.split(":")[0] for p in report.problems]

    # Compromised after the stamps (with their one second of accuracy): still trusted.
    later = datetime.now(UTC) + timedelta(seconds=2)
    keyrotation.retire(env.as_("custodian"), b, fp(a), since=later)
    assert audit_in_time() == []
    # A catalog rebuilt from storage alone checks the same tokens, given the TSA's CA; without
    # it, nothing shows the old key's checkpoints existed before the compromise.
    assert rebuilt_problems("with-ca", True) == []
    assert rebuilt_problems("without-ca", False) == ["checkpoint 1", "checkpoint 2"]
    # Compromised before them: neither of the old key's checkpoints is trusted any more.
    keyrotation.retire(env.as_("custodian"), b, fp(a), since=later - timedelta(hours=1))
    assert audit_in_time() == [("untrusted", 1), ("untrusted", 2)]
    assert rebuilt_problems("compromised-earlier", True) == ["checkpoint 1", "checkpoint 2"]


@pytest.fixture
def pg_env(pg_url, local_store, tmp_path):
    """The local store with a PostgreSQL catalog, whose row locks are what differ here."""
    from catalog import schema
    from catalog.db import make_engine, session_factory
    from tests.conftest import Env

    engine = make_engine(pg_url)
    schema.upgrade(engine)
    try:
        yield Env(
            engine,
            session_factory(engine),
            local_store,
            tmp_path,
            ArchivePolicy(zone=ZONE, routine=(0, "days")),
        )
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_hand_over_on_postgresql(pg_env) -> None:
    a, b = rotated(pg_env)
    assert audit(pg_env, a) == [] and audit(pg_env, b) == []
    with pg_env.sessions() as s:
        assert [c.name for c in keyhistory.recorded(s)[0]] == [f"{fp(a)}-{fp(b)}"]


@pytest.mark.postgres
@pytest.mark.parametrize("same_new_key", [True, False], ids=["same-new-key", "two-new-keys"])
def test_two_rotations_at_once_make_one_hand_over(pg_env, same_new_key) -> None:
    """Two `rotate-key` runs at the same moment (one machine's kept new key, or two machines'
    own): one hand-over is made; the other run finds it, and either finishes on it or is
    refused with the successor named, never a database error."""
    import threading

    from catalog.errors import InvalidInput

    env = pg_env
    a = Ed25519PrivateKey.generate()
    events(env, 2)
    make_and_publish(env.as_("cron"), a)
    b = Ed25519PrivateKey.generate()
    new_keys = [b, b if same_new_key else Ed25519PrivateKey.generate()]
    results: list[object] = [None, None]

    def run(i: int) -> None:
        try:
            results[i] = keyrotation.rotate(
                env.as_(f"custodian{i}"), a, new_keys[i], purpose="custody-signing"
            )
        except Exception as exc:  # noqa: BLE001 - what the second run meets is the point
            results[i] = exc

    # Both runs start while the chain's head is held, so both are under way before either
    # can write: the moment two unsynchronized runs would both find no hand-over yet.
    with env.sessions.begin() as held:
        custody.lock_head(held)
        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        threads[0].join(0.5)
    for thread in threads:
        thread.join(30)
    changes = [r for r in results if isinstance(r, keyhistory.KeyChange)]
    refused = [r for r in results if not isinstance(r, keyhistory.KeyChange)]
    if same_new_key:
        assert len(changes) == 2 and changes[0].name == changes[1].name, results
    else:
        assert len(changes) == 1 and len(refused) == 1, results
        assert isinstance(refused[0], InvalidInput), refused
        assert "handed over" in str(refused[0]) and changes[0].new in str(refused[0])
    with env.sessions() as s:
        assert len(keyhistory.recorded(s)[0]) == 1
    assert audit(env, a) == []
