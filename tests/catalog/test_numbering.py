from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from catalog.errors import InvalidInput
from catalog.numbering import NumberingFormats, check_code, local_day

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_default_formats_match_the_design() -> None:
    f = NumberingFormats()
    assert f.format_archive_number("KZCG", date(2020, 11, 5), "ST01", 7) == "KZCG-20201105-ST01-0007"
    assert f.format_case_key("KZCG", 2020, 42) == "KZCG-2020-0042"
    assert [
        f.format_item_number("KZCG-2020-0042", i, k)
        for i, k in [(1, "document"), (2, "video"), (3, "document"), (4, "audio"), (5, "photo")]
    ] == [
        "KZCG-2020-0042-001D",
        "KZCG-2020-0042-002V",
        "KZCG-2020-0042-003D",
        "KZCG-2020-0042-004A",
        "KZCG-2020-0042-005P",
    ]


def test_sequence_wider_than_padding_still_formats() -> None:
    assert NumberingFormats().format_archive_number("U", date(2020, 1, 2), "S", 12345) == "U-20200102-S-12345"


def test_scopes_separate_units_stations_days_and_cases() -> None:
    f = NumberingFormats()
    scopes = {
        f.archive_scope("A", date(2020, 1, 1), "S1"),
        f.archive_scope("A", date(2020, 1, 2), "S1"),
        f.archive_scope("A", date(2020, 1, 1), "S2"),
        f.archive_scope("B", date(2020, 1, 1), "S1"),
        f.case_key_scope("A", 2020),
        f.case_key_scope("A", 2021),
        f.item_scope("A-2020-0001"),
    }
    assert len(scopes) == 7


def test_custom_formats() -> None:
    f = NumberingFormats(
        archive_number="{station}.{yyyy}{mm}{dd}.{unit}.{seq:06d}",
        item_number="{case_key}/{kind}{seq:04d}".replace("/", "_"),
        case_key="{yyyy}-{unit}-{seq}",
    )
    assert f.format_archive_number("U", date(2021, 3, 4), "S9", 5) == "S9.20210304.U.000005"
    assert f.format_item_number("K", 3, "photo") == "K_P0003"
    assert f.format_case_key("U", 2021, 9) == "2021-U-9"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"archive_number": "{unit}-{seq}"}, "lacks station, yyyymmdd"),
        ({"archive_number": "{unit}-{yyyy}{mm}-{station}-{seq}"}, "yyyymmdd (or yyyy, mm and dd)"),
        ({"case_key": "{unit}-{seq}"}, "lacks yyyy"),
        ({"item_number": "{case_key}{kind}"}, "lacks seq"),
        ({"item_number": "{case_key}-{seq}-{officer}"}, "unknown field(s) officer"),
        ({"case_key": "{unit}-{yyyy}-{seq"}, "malformed"),
    ],
)
def test_bad_formats_are_refused_with_the_reason(kwargs: dict, words: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        NumberingFormats(**kwargs)
    assert words in str(exc.value)


def test_formats_must_yield_ascii_numbers() -> None:
    f = NumberingFormats(case_key="{unit}案{yyyy}-{seq}")
    with pytest.raises(InvalidInput, match="not plain ASCII"):
        f.format_case_key("U", 2020, 1)


def test_unknown_item_kind() -> None:
    with pytest.raises(InvalidInput, match="unknown item kind"):
        NumberingFormats().format_item_number("K", 1, "letter")


def test_register_day_is_counted_in_the_zone() -> None:
    # 2020-11-04 17:30 UTC is already 2020-11-05 in Shanghai.
    moment = datetime(2020, 11, 4, 17, 30, tzinfo=UTC)
    assert local_day(moment, SHANGHAI) == date(2020, 11, 5)
    assert local_day(moment, ZoneInfo("UTC")) == date(2020, 11, 4)
    with pytest.raises(InvalidInput):
        local_day(datetime(2020, 11, 4), SHANGHAI)


@pytest.mark.parametrize("code", ["KZCG", "ST01", "a_b-c", "X" * 32])
def test_codes_accepted(code: str) -> None:
    assert check_code(code, "unit") == code


@pytest.mark.parametrize("code", ["", "-X", "开封", "A B", "A/B", "X" * 33])
def test_codes_refused(code: str) -> None:
    with pytest.raises(InvalidInput):
        check_code(code, "unit")


def test_numbers_read_back_into_their_fields() -> None:
    from catalog.numbering import parse_number

    f = NumberingFormats()
    assert parse_number(f.archive_number, "KZCG-20201105-ST01-0007") == {
        "unit": "KZCG",
        "yyyymmdd": "20201105",
        "station": "ST01",
        "seq": "0007",
    }
    assert parse_number(f.item_number, "KZCG-2020-0042-012V") == {
        "case_key": "KZCG-2020-0042",
        "seq": "012",
        "kind": "V",
    }
    assert parse_number(f.case_key, "KZCG-2020-0042") == {"unit": "KZCG", "yyyy": "2020", "seq": "0042"}
    assert parse_number(f.case_key, "开城管罚立〔2020〕42号") is None
    parsed = parse_number("{station}.{yyyy}{mm}{dd}.{unit}.{seq:06d}", "S9.20210304.U.000005")
    assert parsed is not None and parsed["seq"] == "000005"
