import json
import time

import pytest

from archive.errors import ObjectLocked, ObjectMissing
from archive.holds import set_hold
from archive.links import link_recordings
from archive.purge import purge_recording
from catalog import custody
from catalog.errors import Refused
from catalog.models import Recording


def test_purge_waits_for_the_storage_lock_then_leaves_a_tombstone(env) -> None:
    rec = env.recording()
    with pytest.raises(ObjectLocked):  # the store refuses on its own clock
        purge_recording(env.as_("cron"), rec.archive_no, reason="routine period over", due_at=None)
    with env.sessions() as s:
        assert s.get(Recording, rec.id).status == "archived"
    time.sleep(4)
    tomb = purge_recording(env.as_("cron"), rec.archive_no, reason="routine period over", due_at=None)
    assert tomb.subject == rec.archive_no and tomb.sha256 == rec.sha256
    with pytest.raises(ObjectMissing):
        env.store.stat(rec.storage_key, rec.storage_version)
    stored = json.loads(b"".join(env.store.read(f"tombstones/{rec.archive_no}.json")))
    assert stored["sha256"] == rec.sha256 and stored["reason"] == "routine period over"
    with env.sessions() as s:
        assert s.get(Recording, rec.id).status == "purged"
        assert [e.action for e in custody.events(s, subject=rec.archive_no)][-1] == "purged"
        assert custody.verify(s).ok
    # Purging again is a no-op that returns the same tombstone.
    assert purge_recording(env.as_("cron"), rec.archive_no, reason="x", due_at=None).id == tomb.id


def test_linked_or_held_recordings_are_never_purged(env) -> None:
    case = env.case()
    linked, held = env.recording(1), env.recording(2)
    link_recordings(env.as_("r"), case.number, [linked.archive_no])
    set_hold(env.as_("l"), held.archive_no, reason="x")
    for rec in (linked, held):
        with pytest.raises(Refused):
            purge_recording(env.as_("cron"), rec.archive_no, reason="x", due_at=None)
        assert env.store.stat(rec.storage_key, rec.storage_version).size == rec.size
