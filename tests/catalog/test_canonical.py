from datetime import datetime, timedelta, timezone

import pytest

from catalog.canonical import canonical_bytes, format_instant, parse_instant
from catalog.errors import InvalidInput


def test_keys_sorted_no_whitespace_utf8_verbatim() -> None:
    value = {"b": 1, "a": [True, None, "开城管罚立〔2020〕42号"], "c": {"z": 0, "y": -1.5}}
    assert (
        canonical_bytes(value)
        == '{"a":[true,null,"开城管罚立〔2020〕42号"],"b":1,"c":{"y":-1.5,"z":0}}'.encode()
    )


def test_same_value_same_bytes_whatever_the_insertion_order() -> None:
    assert canonical_bytes({"x": 1, "y": 2}) == canonical_bytes({"y": 2, "x": 1})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {"k": object()}, {1, 2}])
def test_values_without_a_canonical_form_are_refused(bad: object) -> None:
    with pytest.raises(InvalidInput):
        canonical_bytes(bad)


def test_instants_are_utc_with_microseconds() -> None:
    moment = datetime(2020, 11, 5, 8, 50, 56, 7, tzinfo=timezone(timedelta(hours=8)))
    assert format_instant(moment) == "2020-11-05T00:50:56.000007Z"
    assert parse_instant(format_instant(moment)) == moment
    with pytest.raises(InvalidInput):
        format_instant(datetime(2020, 1, 1))
    with pytest.raises(InvalidInput):
        parse_instant("2020-01-01T00:00:00")
