"""The record as people read and print it, in the real headless Chromium (Debian's): custody
in Chinese with labelled fields, the audit page and its CSV, the case page printed as its case
file index, the server's PDF, and one name per number on the pages and in a package.

One server for the module (ingest with ffmpeg is the costly part); each test signs in anew.
Screenshots of every page go to the module's folder (``RECORD_SHOTS`` names another)."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archive.checkpoints import make_and_publish
from archive.documents import NewDocument, store_document
from archive.links import link_recordings
from catalog import custody
from catalog.users import add_user
from tests import synthetic
from tests.verify.test_web_browser import ARGS, CHROMIUM, PASSWORD
from tests.verify.web_server import LiveServer

pytestmark = pytest.mark.slow

HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
LOCAL_SECOND = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    from archive.cases import open_case
    from catalog.cases import NewCase
    from config.app import App
    from config.settings import load_settings
    from verify.web import create_app

    tmp = tmp_path_factory.mktemp("record")
    inbox = tmp / "inbox"
    inbox.mkdir()
    synthetic.make_video(inbox / "A123456@202011050850560000.mp4", seconds=2)
    synthetic.make_video(inbox / "A123456@202011050905000000.mp4", seconds=2, tone=660)
    env = {
        "EVIDENCE_DATA_DIR": str(tmp / "data"),
        "EVIDENCE_DATABASE_URL": f"sqlite:///{tmp / 'catalog.sqlite3'}",
        "EVIDENCE_UNIT": "KZCG",
    }
    settings, _ = load_settings(None, env)
    app = App(settings, actor="station:ST01")
    app.init()
    archived = app.pipeline("ST01").scan([inbox]).archived
    clerk = app.services.acting_as("clerk")
    case = open_case(
        clerk,
        NewCase(
            number="开城管罚立〔2020〕42号",
            unit="KZCG",
            opened_on=datetime(2020, 11, 5).date(),
            title="占道经营",
            case_type="市容管理",
        ),
    )
    paper = tmp / "笔录.pdf"
    paper.write_bytes(b"%PDF-1.4\n% a scanned record\n")
    doc_type = settings.documents.types[0]
    store_document(
        clerk,
        NewDocument(
            case=case.number,
            path=paper,
            doc_type=doc_type,
            doc_date=datetime(2020, 11, 5, 1, 0, tzinfo=UTC),
            officer="JX0227",
        ),
        doc_types=list(settings.documents.types),
    )
    link_recordings(clerk, case.number, sorted(archived))
    # Enough written records for the printed index to run over more than one page.
    for n in range(30):
        more = tmp / f"record-{n:02d}.pdf"
        more.write_bytes(b"%PDF-1.4\n% record " + str(n).encode() + b"\n")
        store_document(
            clerk,
            NewDocument(case=case.case_key, path=more, doc_type=doc_type, doc_number=f"开城管〔2020〕{n}号"),
            doc_types=list(settings.documents.types),
        )
    now = datetime.now(UTC)
    with app.sessions.begin() as s:
        add_user(s, "aud", "auditor", PASSWORD, protected=False, now=now)
        add_user(s, "adm", "admin", PASSWORD, protected=True, now=now)
    make_and_publish(app.services.acting_as("curator"), app.signing_key)
    server = LiveServer(create_app(app.web_context()))
    shots = Path(os.environ.get("RECORD_SHOTS") or tmp / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with app.sessions() as s:
        from catalog.cases import get_case
        from catalog.views import case_items

        items = sorted(case_items(s, get_case(s, case.case_key)), key=lambda i: i.seq)
    yield {"base": server.base, "app": app, "case": case, "items": items, "shots": shots}
    server.stop()
    app.close()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def signed_in(chromium, record, name: str):
    context = chromium.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(record["base"] + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    # The session cookie is set by the answer to the form: wait for it before going on.
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def test_an_items_custody_table_reads_in_chinese_with_labelled_fields(record, chromium) -> None:
    page = signed_in(chromium, record, "aud")
    video = next(i for i in record["items"] if i.kind == "video")
    page.goto(f"{record['base']}/items/{video.item_no}")
    table = page.inner_text("#custody-log")
    actions = page.eval_on_selector_all("#custody-log td.action", "cells => cells.map(c => c.textContent)")
    assert {"采集入库", "存储确认", "关联到案件"} <= set(actions), actions
    assert not {"ingested", "stored", "linked"} & set(actions)
    for bad in ("{", "}", "\\u", '":'):
        assert bad not in table, f"{bad!r} in the custody table"
    labels = page.eval_on_selector_all("#custody-log dt", "cells => cells.map(c => c.textContent)")
    assert {"SHA-256", "原始文件名", "采集站", "执法人员", "共同编号", "案件代码", "保留至"} <= set(labels), (
        labels
    )
    assert video.sha256 in table and "A123456@202011050850560000.mp4" in table
    times = page.eval_on_selector_all("#custody-log td.when", "cells => cells.map(c => c.textContent)")
    assert times and all(LOCAL_SECOND.fullmatch(t) for t in times), times
    assert "(UTC+08:00)" in page.inner_text("#custody-log thead")
    page.screenshot(path=str(record["shots"] / "item.png"), full_page=True)


def test_the_audit_page_filters_by_actor_and_its_csv_holds_the_filtered_events(record, chromium) -> None:
    auditor = signed_in(chromium, record, "aud")
    auditor.goto(f"{record['base']}/cases/{record['case'].case_key}")
    auditor.goto(f"{record['base']}/items/{record['items'][0].item_no}")
    page = signed_in(chromium, record, "adm")
    page.goto(record["base"] + "/audit")
    assert "完整" in page.inner_text("#chain-verdict")
    assert "#1" in page.inner_text("#last-checkpoint")
    page.fill("#audit-filter input[name=actor]", "aud")
    page.click("#audit-filter button")
    actors = page.eval_on_selector_all(
        "#audit-log tbody tr td:nth-child(3)", "c => c.map(x => x.textContent)"
    )
    with record["app"].sessions() as s:
        by_aud = [e.seq for e in custody.events(s) if e.actor == "web:aud"]
    assert actors and set(actors) == {"网页账号 aud"}
    assert int(page.inner_text("#audit-total")) == len(by_aud) == len(actors)
    assert "登录" in page.inner_text("#audit-log") and "查看" in page.inner_text("#audit-log")
    page.screenshot(path=str(record["shots"] / "audit.png"), full_page=True)

    page.fill("#audit-export input[name=reason]", "月度审计 2020-11")
    with page.expect_download() as download:
        page.click("#audit-export button")
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text("utf-8-sig"))))
    assert rows[0][:4] == ["序号", "时间 (UTC+08:00)", "操作人", "操作"]
    assert [int(r[0]) for r in rows[1:]] == by_aud
    assert all(r[2] == "网页账号 aud" for r in rows[1:])
    with record["app"].sessions() as s:
        exported = [e for e in custody.events(s) if e.action == "exported" and e.actor == "web:adm"]
    assert exported[-1].details["reason"] == "月度审计 2020-11"
    assert exported[-1].details["filters"] == {"actor": "aud"}
    assert exported[-1].details["rows"] == len(by_aud)


def _pdf_text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def _assert_lists_every_item(text: str, record) -> None:
    flat = re.sub(r"\s+", " ", text)
    positions = []
    for item in record["items"]:
        assert item.item_no in flat, f"{item.item_no} not in the printed file"
        assert item.sha256 in flat, f"the SHA-256 of {item.item_no} is not printed in full"
        positions.append(flat.index(item.item_no))
    assert positions == sorted(positions), "items are not in item-number order"
    assert record["case"].number in flat and record["case"].case_key in flat


def test_the_case_page_prints_as_its_case_file_index(record, chromium) -> None:
    page = signed_in(chromium, record, "aud")
    page.goto(f"{record['base']}/cases/{record['case'].case_key}")
    page.screenshot(path=str(record["shots"] / "case.png"), full_page=True)
    assert page.is_hidden("#casefile")  # on screen: the page; on paper: the index
    page.emulate_media(media="print")
    page.screenshot(path=str(record["shots"] / "case-print.png"), full_page=True)
    pdf = record["shots"] / "case-printed.pdf"
    page.pdf(path=str(pdf), format="A4", landscape=True, print_background=True)
    text = _pdf_text(pdf)
    _assert_lists_every_item(text, record)
    pages = text.split("\f")[:-1]
    assert len(pages) >= 2 and all("打印人 aud" in p for p in pages), "the footer is not on every page"
    assert "卷宗目录" in text and "占道经营" in text and "市容管理" in text and "KZCG" in text
    assert "打印人 aud" in text and "打印时间" in text
    # No navigation, no forms: neither the menu nor a button's words are on paper.
    for word in ("退出", "案件检索", "导出证据包", "卷宗目录 PDF", "设置保全", "事由"):
        assert word not in text, f"{word!r} printed"


def test_the_server_pdf_lists_every_item_in_extractable_chinese(record, chromium) -> None:
    from pypdf import PdfReader

    page = signed_in(chromium, record, "aud")
    page.goto(f"{record['base']}/cases/{record['case'].case_key}")
    page.fill("#case-file-pdf input[name=reason]", "移送法制审核")
    with page.expect_download() as download:
        page.click("#case-file-pdf button")
    path = Path(download.value.path())
    text = "\n".join(p.extract_text() for p in PdfReader(path).pages)
    _assert_lists_every_item(text, record)
    assert "卷宗目录" in text and "共同编号" in text and "打印人 aud" in text
    _assert_lists_every_item(_pdf_text(path), record)
    import hashlib

    with record["app"].sessions() as s:
        got = [e for e in custody.events(s, subject=record["case"].case_key) if e.action == "downloaded"]
    assert got[-1].actor == "web:aud" and got[-1].details["reason"] == "移送法制审核"
    assert got[-1].details["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(path), str(record["shots"] / "case-file")],
        check=True,
    )


def test_one_name_per_number_on_the_pages_and_in_a_package(record, chromium) -> None:
    case, video = record["case"], next(i for i in record["items"] if i.kind == "video")
    page = signed_in(chromium, record, "aud")
    page.goto(f"{record['base']}/cases/{case.case_key}")
    case_text = page.inner_text("main")
    assert f"案号 {case.number}" in case_text and f"案件代码 {case.case_key}" in case_text
    headings = page.eval_on_selector_all("#timeline th", "c => c.map(x => x.textContent)")
    assert "共同编号" in headings and "档案号 / 文书类型" in headings
    page.goto(f"{record['base']}/items/{video.item_no}")
    assert f"档案号 {video.archive_no}" in page.inner_text("main")
    page.goto(f"{record['base']}/?q=" + "42号")
    assert page.eval_on_selector_all("main th", "c => c.map(x => x.textContent)")[:2] == ["案号", "案件代码"]
    page.screenshot(path=str(record["shots"] / "search.png"), full_page=True)
    page.goto(f"{record['base']}/cases/{case.case_key}/gaps")
    assert f"案号 {case.number} · 案件代码 {case.case_key}" in page.inner_text("main")
    page.screenshot(path=str(record["shots"] / "gaps.png"), full_page=True)
    page.goto(f"{record['base']}/cases/{case.case_key}")
    page.fill("form[action$='/export'] input[name=reason]", "术语核对")
    with page.expect_download() as download:
        page.click("form[action$='/export'] button")
    with zipfile.ZipFile(download.value.path()) as z:
        name = next(n for n in z.namelist() if n.endswith("data/index.html"))
        index = z.read(name).decode()
        z.extractall(record["shots"] / "package")
    for term, value in (
        ("案号 Case number", case.number),
        ("案件代码 Case key", case.case_key),
        ("共同编号 Item number", video.item_no),
        ("档案号 / 文书类型 Archive number", video.archive_no),
    ):
        assert term in index and value in index, term
    pages = case_text + page.inner_text("main")
    for text in (index, pages):
        assert "案件编号" not in text and "案件键" not in text and "Item No." not in text
    # Times in the settings' zone with the offset: the recording began at 08:50:56 in Shanghai.
    assert "2020-11-05 08:50:56 +08:00" in index and "Z</td>" not in index
    viewer = chromium.new_page(viewport={"width": 1280, "height": 900})
    viewer.goto((record["shots"] / "package" / name).as_uri())
    viewer.screenshot(path=str(record["shots"] / "package-index.png"), full_page=True)


def test_the_accounts_page_names_roles_and_the_grant_in_chinese(record, chromium) -> None:
    page = signed_in(chromium, record, "adm")
    page.goto(record["base"] + "/admin/users")
    rows = {
        r[0]: r[1:3]
        for r in page.eval_on_selector_all(
            "main table tr", "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => c.textContent))"
        )
        if r
    }
    assert rows["adm"] == ["管理员", "是"] and rows["aud"] == ["审计员", "否"]
    assert "可查看受保护记录" in page.inner_text("main table tr:first-child")
    assert "auditor" not in page.inner_text("header")
    page.screenshot(path=str(record["shots"] / "users.png"), full_page=True)
