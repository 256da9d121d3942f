import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta

from catalog.chain import GENESIS_HASH, CustodyEvent, check_chain, hash_payload, seal

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def build(n: int) -> list[CustodyEvent]:
    events, prev = [], GENESIS_HASH
    for i in range(1, n + 1):
        ev = seal(i, T0 + timedelta(seconds=i), "alice", "viewed", f"A-{i}", {"i": i}, prev)
        events.append(ev)
        prev = ev.hash
    return events


def test_hash_is_sha256_of_the_documented_serialization() -> None:
    ev = seal(
        1,
        T0,
        "station:ST01",
        "ingested",
        "KZCG-20201105-ST01-0001",
        {"sha256": "ab", "note": "现场"},
        GENESIS_HASH,
    )
    text = (
        '{"action":"ingested","actor":"station:ST01","details":{"note":"现场","sha256":"ab"},'
        '"prev":"' + "0" * 64 + '","seq":1,"subject":"KZCG-20201105-ST01-0001",'
        '"time":"2026-01-01T00:00:00.000000Z","v":1}'
    )
    assert ev.hash == hashlib.sha256(text.encode()).hexdigest()


def test_intact_chain_passes() -> None:
    report = check_chain(build(20))
    assert report.ok and report.events == 20 and report.last_seq == 20
    assert report.first_bad_event is None


def test_records_round_trip_through_json_lines() -> None:
    events = build(5)
    lines = [json.dumps(e.to_record(), ensure_ascii=False) for e in events]
    back = [CustodyEvent.from_record(json.loads(line)) for line in lines]
    assert back == events and check_chain(back).ok


def test_an_edited_event_is_found() -> None:
    events = build(10)
    events[3] = dataclasses.replace(events[3], actor="mallory")
    report = check_chain(events)
    assert report.first_bad_event == 4
    assert [p.problem for p in report.problems] == ["altered"]


def test_an_edited_and_rehashed_event_breaks_the_next_link() -> None:
    events = build(10)
    forged = dataclasses.replace(events[3], details={"i": 999})
    events[3] = dataclasses.replace(forged, hash=hash_payload(forged.payload()))
    report = check_chain(events)
    assert report.first_bad_event == 5
    assert report.problems[0].problem == "broken_link"


def test_a_deleted_event_is_found() -> None:
    events = build(10)
    del events[4]
    report = check_chain(events)
    assert report.first_bad_event == 5
    assert report.problems[0].problem == "missing"


def test_several_deleted_events_are_named_as_a_range() -> None:
    events = build(10)
    del events[2:5]
    report = check_chain(events)
    assert report.problems[0].detail == "events 3 to 5 are missing"


def test_reordered_events_are_found() -> None:
    events = build(10)
    events[2], events[6] = events[6], events[2]
    report = check_chain(events)
    assert report.first_bad_event == 3
    assert {"missing", "out_of_order"} <= {p.problem for p in report.problems}


def test_swapped_contents_keeping_sequence_numbers_are_found() -> None:
    events = build(10)
    a, b = events[2], events[6]
    events[2] = dataclasses.replace(b, seq=3)
    events[6] = dataclasses.replace(a, seq=7)
    report = check_chain(events)
    assert report.first_bad_event == 3


def test_a_segment_checks_on_its_own_from_its_predecessor() -> None:
    events = build(10)
    segment = events[5:]
    assert check_chain(segment, start_seq=6, start_prev=events[4].hash).ok
    assert not check_chain(segment).ok  # not from the start of the chain


def test_later_independent_problems_are_reported_too() -> None:
    events = build(10)
    events[1] = dataclasses.replace(events[1], actor="x")
    events[8] = dataclasses.replace(events[8], action="y")
    assert [p.seq for p in check_chain(events).problems] == [2, 9]
