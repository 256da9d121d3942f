"""Custody events as people read them: every action named, fields labelled, no JSON."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from catalog.actions import Action
from catalog.chain import GENESIS_HASH, seal
from verify import custody_text as ct

ZONE = ZoneInfo("Asia/Shanghai")
AT = datetime(2020, 11, 5, 0, 50, 56, 123456, tzinfo=UTC)


def _event(action: Action, details: dict, subject: str | None = "KZCG-2020-0042-002V"):
    return seal(7, AT, "web:张三", action.value, subject, details, GENESIS_HASH)


def _readable(text: str) -> None:
    for bad in ("{", "}", "[", "]", '"', "\\u"):
        assert bad not in text, f"{bad!r} in {text!r}"


@pytest.mark.parametrize("action", list(Action))
def test_every_action_has_a_chinese_and_an_english_name(action: Action) -> None:
    zh, en = ct.action_name(action, "zh"), ct.action_name(action, "en")
    assert re.search(r"[\u4e00-\u9fff]", zh), f"{action} has no Chinese name"
    assert en and not re.search(r"[\u4e00-\u9fff]", en)
    assert zh != action.value


def test_a_named_action_never_shows_its_code_and_an_unknown_one_shows_itself() -> None:
    assert ct.action_name("ingested") == "采集入库"
    assert ct.action_name("ingested", "en") == "ingested"
    assert ct.action_name("a_future_action") == "a_future_action"


def test_details_are_labelled_fields_with_cjk_as_text_and_times_local() -> None:
    text = ct.describe(
        _event(
            Action.INGESTED,
            {
                "original_name": "现场视频 A123456.MP4",
                "start_time": "2020-11-05T00:50:56Z",
                "size": 42870,
                "protected": False,
                "sources": {"device": "filename", "start_time": "container"},
                "officer": None,
            },
        ),
        "zh",
        ZONE,
    )
    fields = {f.label: f.text for f in text.fields}
    assert fields["原始文件名"] == "现场视频 A123456.MP4"
    assert fields["开始时间"] == "2020-11-05 08:50:56 +08:00"
    assert fields["大小"] == "41.9 KB（42,870 B）"
    assert fields["受保护"] == "否"
    assert fields["执法人员"] == "—"
    assert fields["信息来源"] == "执法记录仪: 文件名；开始时间: 媒体文件内时间"
    assert text.time == "2020-11-05 08:50:56"  # local, to the second
    assert text.actor == "网页账号 张三" and text.action == "采集入库"
    _readable(text.details_text())


@pytest.mark.parametrize(
    ("details", "shown"),
    [
        ({"start_s": 12.5, "watched_s": 75.0}, {"开始位置": "12.5秒", "观看时长": "1分15秒"}),
        ({"start_ms": 12500, "watched_ms": 3_725_000}, {"开始位置": "12.5秒", "观看时长": "1小时2分5秒"}),
    ],
)
def test_plays_read_the_same_in_seconds_and_in_milliseconds(details: dict, shown: dict) -> None:
    fields = {f.label: f.text for f in ct.describe(_event(Action.PLAYED, details), "zh", ZONE).fields}
    assert fields == shown


def test_english_by_the_language_setting() -> None:
    text = ct.describe(_event(Action.VERIFIED, {"result": "mismatch"}), "en", ZONE)
    assert text.action == "verified" and text.actor == "web account 张三"
    assert [(f.label, f.text) for f in text.fields] == [("result", "mismatch")]


def test_lists_and_nested_values_are_joined_without_brackets() -> None:
    text = ct.describe(
        _event(
            Action.EXPORTED,
            {"item_nos": ["KZCG-2020-0042-001D", "KZCG-2020-0042-002V"], "filters": {"actor": "张三"}},
            subject="KZCG-2020-0042",
        ),
        "zh",
        ZONE,
    )
    fields = {f.label: f.text for f in text.fields}
    assert fields["共同编号"] == "KZCG-2020-0042-001D、KZCG-2020-0042-002V"
    assert fields["筛选条件"] == "操作人: 张三"
    _readable(text.details_text())


def test_an_unknown_key_is_shown_under_its_own_name_never_dropped() -> None:
    fields = ct.describe(_event(Action.STORED, {"new_fact": "值"}), "zh", ZONE).fields
    assert [(f.label, f.text) for f in fields] == [("new_fact", "值")]


def test_values_naming_a_hidden_record_are_redacted() -> None:
    secret = "KZCG-20201105-ST01-0099"
    text = ct.describe(
        _event(Action.EXPORTED, {"item_nos": ["A", secret], "archive_no": secret}, subject=secret),
        "zh",
        ZONE,
        hidden={secret},
    )
    assert secret not in text.subject and secret not in text.details_text()
    assert "（受保护记录）" in text.details_text()


@pytest.mark.parametrize("cell", ['=HYPERLINK("http://x")', "+1", "-1+2", "@SUM(A1)", "\tx"])
def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(cell: str) -> None:
    assert ct.csv_cell(cell) == "'" + cell
    assert ct.csv_cell("KZCG-2020-0042") == "KZCG-2020-0042"
