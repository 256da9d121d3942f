from datetime import UTC, date, datetime

import pytest

from catalog import cases, custody
from catalog.db import session_factory
from catalog.errors import CatalogConflict, InvalidInput, NotFound
from catalog.numbering import NumberingFormats

NOW = datetime(2020, 11, 5, 1, tzinfo=UTC)
F = NumberingFormats()


def open_(engine, number: str, *, unit: str = "KZCG", year: int = 2020):
    return cases.open_case(
        engine,
        session_factory(engine),
        F,
        cases.NewCase(number=number, unit=unit, opened_on=date(year, 3, 1), title="占道经营"),
        actor="clerk",
        now=NOW,
    )


def test_cases_get_keys_in_order_per_unit_and_year(engine) -> None:
    keys = [
        open_(engine, n).case_key
        for n in ["开城管罚立〔2020〕42号", "案〔2020〕1234号", "玉抚管罚决字〔2020〕4006号"]
    ]
    assert keys == ["KZCG-2020-0001", "KZCG-2020-0002", "KZCG-2020-0003"]
    assert open_(engine, "X 2021 1", year=2021).case_key == "KZCG-2021-0001"
    assert open_(engine, "Y 1", unit="LHCG").case_key == "LHCG-2020-0001"


def test_number_kept_verbatim_and_either_name_finds_the_case(engine) -> None:
    number = "开城管罚立〔2020〕42号 （补）"
    key = open_(engine, number).case_key
    with session_factory(engine)() as s:
        assert cases.get_case(s, number).case_key == key
        assert cases.get_case(s, key).number == number
        with pytest.raises(NotFound, match="case list"):
            cases.get_case(s, "开城管罚立〔2020〕43号")


def test_opening_is_a_custody_event(engine) -> None:
    key = open_(engine, "开城管罚立〔2020〕42号").case_key
    with session_factory(engine)() as s:
        (event,) = custody.events(s, subject=key)
    assert event.action == "case_opened" and event.actor == "clerk"
    assert event.details["number"] == "开城管罚立〔2020〕42号"


def test_a_number_cannot_be_opened_twice(engine) -> None:
    open_(engine, "开城管罚立〔2020〕42号")
    with pytest.raises(CatalogConflict):
        open_(engine, "开城管罚立〔2020〕42号")


def test_names_are_unique_across_both_columns(engine) -> None:
    open_(engine, "first")  # gets KZCG-2020-0001
    with pytest.raises(CatalogConflict):
        open_(engine, "KZCG-2020-0001")  # a bureau number equal to an existing key


def test_a_key_equal_to_an_existing_bureau_number_is_skipped_not_shared(engine) -> None:
    assert open_(engine, "KZCG-2020-0002").case_key == "KZCG-2020-0001"
    # The next draw, 0002, is some case's bureau number: it is skipped as a gap.
    assert open_(engine, "another").case_key == "KZCG-2020-0003"
    with session_factory(engine)() as s:
        assert cases.get_case(s, "KZCG-2020-0002").number == "KZCG-2020-0002"


def test_a_refused_duplicate_leaves_a_gap_never_a_reuse(engine) -> None:
    open_(engine, "a")
    with pytest.raises(CatalogConflict):
        cases.open_case(
            engine,
            session_factory(engine),
            F,
            cases.NewCase(number="KZCG-2020-0001", unit="KZCG", opened_on=date(2020, 3, 1)),
            actor="c",
            now=NOW,
        )
    assert open_(engine, "b").case_key == "KZCG-2020-0002"


@pytest.mark.parametrize("bad", ["", "   ", "a\nb", "x" * 201, "zero\u200bwidth"])
def test_unusable_numbers_are_refused(engine, bad: str) -> None:
    with pytest.raises(InvalidInput):
        open_(engine, bad)


def test_list_open_only(engine) -> None:
    open_(engine, "a")
    open_(engine, "b")
    with session_factory(engine).begin() as s:
        cases.get_case(s, "b").status = "closed"
    with session_factory(engine)() as s:
        assert [c.number for c in cases.list_cases(s)] == ["a", "b"]
        assert [c.number for c in cases.list_cases(s, open_only=True)] == ["a"]
