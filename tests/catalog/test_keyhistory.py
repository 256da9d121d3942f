"""The signing keys' history as values: who is trusted along key-change statements, forks,
hand-over bounds, and the retirement of a compromised key."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from catalog import jcs, keyhistory
from catalog.checkpoint import Anchors, Checkpoint, fingerprint, raw_public_key, sign_checkpoint_v2
from catalog.keyhistory import KeyChange

T = datetime(2026, 1, 1, tzinfo=UTC)
HEAD = "ab" * 32


def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def fp(k: Ed25519PrivateKey) -> str:
    return fingerprint(raw_public_key(k.public_key()))


def cp(k: Ed25519PrivateKey, n: int, time: datetime = T) -> Checkpoint:
    return sign_checkpoint_v2(k, n=n, seq=n, head=HEAD, time=time, prev=None)


def anchors(*trusted: Ed25519PrivateKey, material: tuple[Ed25519PrivateKey, ...] = ()) -> Anchors:
    a = Anchors({fp(k) for k in trusted})
    for k in (*trusted, *material):
        a.add_key(raw_public_key(k.public_key()))
    return a


def change(old: Ed25519PrivateKey, new: Ed25519PrivateKey, n: int = 3) -> KeyChange:
    return keyhistory.sign_change(old, new, last=cp(old, n), time=T + timedelta(hours=n))


# --- hostile cases first -----------------------------------------------------------------------


@pytest.mark.parametrize("signed_by", ["old only", "new only", "neither"])
def test_a_statement_not_signed_by_both_keys_carries_no_trust(signed_by: str) -> None:
    old, new, other = key(), key(), key()
    good = change(old, new)
    sig_old = good.old_sig if signed_by == "old only" else other.sign(good.statement)
    sig_new = good.new_sig if signed_by == "new only" else other.sign(good.statement)
    forged = keyhistory.parse_change(good.statement, sig_old, sig_new)
    for pinned in (old, new):  # from either end
        history = keyhistory.resolve(anchors(pinned, material=(old, new)), [forged])
        assert history.anchors.trusted == {fp(pinned)}
        assert len(history.problems) == 1 and "not signed by both keys" in history.problems[0][1]
        stranger = new if pinned is old else old
        verdict = history.judge(cp(stranger, 5 if pinned is old else 1))
        assert verdict is not None and "not trusted" in verdict


def test_a_second_successor_is_a_fork_and_carries_no_trust() -> None:
    """Whoever steals key A later signs A -> X: both hand-overs from A are refused."""
    a, b, thief = key(), key(), key()
    history = keyhistory.resolve(anchors(a, material=(b, thief)), [change(a, b), change(a, thief, n=4)])
    assert any("fork" in p for _, p in history.problems)
    assert history.anchors.trusted == {fp(a)}
    assert history.judge(cp(thief, 9)) is not None and history.judge(cp(b, 9)) is not None


def test_a_second_predecessor_is_a_fork() -> None:
    """Whoever steals the newest key B makes X and signs X -> B to bring X's history in."""
    a, b, thief = key(), key(), key()
    history = keyhistory.resolve(anchors(b, material=(a, thief)), [change(a, b), change(thief, b)])
    assert any("two predecessors" in p for _, p in history.problems)
    assert history.anchors.trusted == {fp(b)}


def test_a_changed_statement_is_refused() -> None:
    a, b = key(), key()
    good = change(a, b)
    edited = good.statement.replace(b'"n":3', b'"n":9')
    history = keyhistory.resolve(
        anchors(a, material=(b,)), [keyhistory.parse_change(edited, good.old_sig, good.new_sig)]
    )
    assert history.problems and fp(b) not in history.anchors.trusted
    with pytest.raises(jcs.NotCanonical):
        keyhistory.parse_change(good.statement.replace(b'"n":3,', b'"n":3, '), good.old_sig, good.new_sig)


def test_the_old_key_signs_nothing_after_its_hand_over_nor_the_new_before() -> None:
    a, b = key(), key()
    history = keyhistory.resolve(anchors(a, material=(b,)), [change(a, b, n=3)])
    assert history.judge(cp(a, 3)) is None and history.judge(cp(b, 4)) is None
    assert "handed over" in (history.judge(cp(a, 4)) or "")
    assert "took over" in (history.judge(cp(b, 3)) or "")


def test_a_retirement_by_a_key_that_is_no_successor_is_refused() -> None:
    a, b, c = key(), key(), key()
    # C is trusted (pinned) but not A's successor; A retiring B (its successor) is refused too.
    by_c = keyhistory.sign_retirement(c, key=fp(a), since=T, time=T)
    by_a = keyhistory.sign_retirement(a, key=fp(b), since=T, time=T)
    history = keyhistory.resolve(anchors(a, c, material=(b,)), [change(a, b)], [by_c, by_a])
    assert len(history.problems) == 2 and history.retired == {}


def test_a_retirement_with_a_bad_signature_is_refused() -> None:
    a, b = key(), key()
    good = keyhistory.sign_retirement(b, key=fp(a), since=T, time=T)
    forged = keyhistory.parse_retirement(good.statement, key().sign(good.statement))
    history = keyhistory.resolve(anchors(b, material=(a,)), [change(a, b)], [forged])
    assert history.problems and history.retired == {}


def test_a_retired_keys_checkpoints_need_a_time_stamp_before_the_compromise() -> None:
    a, b = key(), key()
    since = T + timedelta(hours=2)
    retirement = keyhistory.sign_retirement(b, key=fp(a), since=since, time=T + timedelta(days=1))
    history = keyhistory.resolve(anchors(b, material=(a,)), [change(a, b, n=3)], [retirement])
    assert history.problems == [] and fp(a) in history.anchors.trusted
    before, after = cp(a, 1, T), cp(a, 3, T + timedelta(hours=3))
    assert "compromised since" in (history.judge(before) or "")  # no time-stamp: not trusted
    assert history.judge(before, existed_by=T + timedelta(minutes=5)) is None  # stamped before
    assert history.judge(before, existed_by=since) is not None  # at T is not before T
    assert history.judge(after, existed_by=T + timedelta(hours=4)) is not None  # after T
    assert history.judge(cp(b, 4)) is None  # the new key is untouched


def test_the_earliest_compromise_time_counts() -> None:
    a, b = key(), key()
    late = keyhistory.sign_retirement(b, key=fp(a), since=T + timedelta(days=2), time=T + timedelta(days=3))
    early = keyhistory.sign_retirement(b, key=fp(a), since=T, time=T + timedelta(days=4))
    history = keyhistory.resolve(anchors(b, material=(a,)), [change(a, b)], [late, early])
    assert history.retired[fp(a)].since == T


# --- what holds ---------------------------------------------------------------------------------


def test_trust_flows_both_ways_along_a_history_of_three_keys() -> None:
    a, b, c = key(), key(), key()
    changes = [change(a, b, n=3), change(b, c, n=6)]
    for pinned in (a, b, c):
        history = keyhistory.resolve(anchors(pinned, material=(a, b, c)), changes)
        assert history.problems == []
        assert history.anchors.trusted == {fp(a), fp(b), fp(c)}
        assert [history.judge(cp(k, n)) for k, n in ((a, 1), (b, 5), (c, 7))] == [None, None, None]


def test_the_statement_commits_to_the_old_keys_last_checkpoint() -> None:
    a, b = key(), key()
    last = cp(a, 3)
    c = keyhistory.sign_change(a, b, last=last, time=T)
    assert (c.n, c.checkpoint) == (3, hashlib.sha256(last.signed_bytes()).hexdigest())
    history = keyhistory.resolve(anchors(a, material=(b,)), [c])
    assert history.check_committed([last]) == []
    other = cp(a, 3, T + timedelta(seconds=1))
    assert history.check_committed([other])
    with pytest.raises(Exception, match="not signed by the key being replaced"):
        keyhistory.sign_change(b, a, last=last, time=T)


def test_statement_files_read_back() -> None:
    a, b = key(), key()
    c = change(a, b)
    r = keyhistory.sign_retirement(b, key=fp(a), since=T, time=T)
    files = c.files() | r.files() | {"stray.txt": b"x"}
    changes, retirements, problems = keyhistory.read_files(files)
    assert (
        changes == [c]
        and retirements == [r]
        and problems == [("stray.txt", "not a key-change or retirement file name")]
    )
    renamed = {f"{fp(b)}-{fp(a)}.json": c.statement}
    assert keyhistory.read_files(renamed)[2][0][1].startswith("unreadable statement")
