import pytest

from archive.links import link_recordings
from catalog import custody
from catalog.errors import InvalidInput, NotFound


def test_linking_numbers_items_extends_locks_and_is_idempotent(env) -> None:
    case = env.case()
    a, b = env.recording(1), env.recording(2, kind="audio", original_name="TA00716_JX0227_20201105093621.WAV")
    before = env.store.stat(a.storage_key, a.storage_version).retention.until
    pairs = link_recordings(env.as_("reviewer"), case.number, [a.archive_no, b.archive_no])
    assert pairs == [(a.archive_no, f"{case.case_key}-001V"), (b.archive_no, f"{case.case_key}-002A")]
    after = env.store.stat(a.storage_key, a.storage_version).retention.until
    assert after > before and after.year >= env.now().year + 9
    assert env.store.stat(a.manifest_key).retention.until == after
    again = link_recordings(env.as_("reviewer"), case.case_key, [a.archive_no])
    assert again == [(a.archive_no, f"{case.case_key}-001V")]
    with env.sessions() as s:
        assert [e.action for e in custody.events(s, subject=a.archive_no)] == ["ingested", "stored", "linked"]


def test_a_recording_may_belong_to_several_cases(env) -> None:
    one, two = env.case("案〔2020〕1号"), env.case("案〔2020〕2号")
    rec = env.recording()
    first = link_recordings(env.as_("r"), one.number, [rec.archive_no])
    second = link_recordings(env.as_("r"), two.number, [rec.archive_no])
    assert first[0][1].startswith(one.case_key) and second[0][1].startswith(two.case_key)


def test_unknown_recordings_and_empty_requests_are_refused(env) -> None:
    case = env.case()
    with pytest.raises(NotFound):
        link_recordings(env.as_("r"), case.number, ["KZCG-X"])
    with pytest.raises(InvalidInput):
        link_recordings(env.as_("r"), case.number, [])
