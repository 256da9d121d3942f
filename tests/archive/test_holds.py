import pytest

from archive.errors import ObjectLocked
from archive.holds import release_hold, set_hold
from archive.links import link_recordings
from catalog.errors import InvalidInput, NotFound


def test_hold_on_a_case_holds_every_item_until_every_hold_is_released(env) -> None:
    case = env.case()
    rec = env.recording()
    ((_, item_no),) = link_recordings(env.as_("r"), case.number, [rec.archive_no])
    assert set_hold(env.as_("legal"), case.number, reason="诉讼保全") == case.case_key
    assert env.store.stat(rec.storage_key, rec.storage_version).legal_hold
    set_hold(env.as_("legal"), item_no, reason="单独保全")
    release_hold(env.as_("legal"), case.case_key, reason="判决生效")
    # Still held by the item's own hold.
    assert env.store.stat(rec.storage_key, rec.storage_version).legal_hold
    release_hold(env.as_("legal"), item_no, reason="解除")
    assert not env.store.stat(rec.storage_key, rec.storage_version).legal_hold


def test_a_held_recording_cannot_be_deleted_from_storage(env) -> None:
    rec = env.recording()
    set_hold(env.as_("legal"), rec.archive_no, reason="投诉核查")
    with pytest.raises(ObjectLocked):
        env.store.delete(rec.storage_key, rec.storage_version)


def test_holds_need_a_reason_and_a_known_subject(env) -> None:
    rec = env.recording()
    with pytest.raises(InvalidInput):
        set_hold(env.as_("l"), rec.archive_no, reason=" ")
    with pytest.raises(NotFound):
        set_hold(env.as_("l"), "NOPE", reason="x")
    with pytest.raises(NotFound, match="not on hold"):
        release_hold(env.as_("l"), rec.archive_no, reason="x")
