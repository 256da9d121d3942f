"""The audit page, its CSV and the case file PDF on a real server, attacked: other roles, an
administrator without the protected grant, hostile filters and names, a tampered chain."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from sqlalchemy import text

from catalog import custody
from catalog.users import add_user
from tests.verify.test_web import PASSWORD, site  # noqa: F401  # the live server fixture
from tests.verify.web_server import Browser

AUDIT_ROUTES = [("GET", "/audit"), ("GET", "/audit/events.csv?reason=x"), ("POST", "/audit/verify")]


@pytest.fixture
def store(local_store):
    """The local store only: what is read here is the catalog; storage is tested elsewhere."""
    return local_store


def _as(site, name: str) -> Browser:  # noqa: F811
    browser = Browser(site["server"].base)
    assert browser.login(name, PASSWORD) == 303
    return browser


def _csv(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")  # a BOM: spreadsheets then read the CJK as UTF-8
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_only_administrators_use_the_audit_routes(site) -> None:  # noqa: F811
    for name in ("aud", "leg"):
        browser = _as(site, name)
        for method, path in AUDIT_ROUTES:
            data = {"csrf": browser.csrf} if method == "POST" else None
            status, _, body = browser.request(method, path, data)
            assert status == 403 and b"role may not use" in body, (name, path, status)
    anonymous = Browser(site["server"].base)
    assert anonymous.request("GET", "/audit")[0] == 303
    assert anonymous.request("GET", "/audit/events.csv?reason=x")[0] == 401
    admin = _as(site, "adm")
    assert admin.request("GET", "/audit")[0] == 200
    with site["env"].sessions() as s:
        refused = [e for e in custody.events(s) if e.action == "refused"]
    assert {e.details["route"] for e in refused} >= {"audit", "audit_csv", "audit_verify"}
    assert not any(e.actor == "web:adm" for e in refused)


def test_an_administrator_without_the_grant_sees_no_event_of_a_protected_record(site) -> None:  # noqa: F811
    env, secret = site["env"], site["secret_item"]
    with env.sessions.begin() as s:
        add_user(s, "adm2", "admin", PASSWORD, protected=False, now=datetime.now(UTC))
        secret_archive_no = next(e.subject for e in custody.events(s) if e.details.get("item_no") == secret)
    granted, plain = _as(site, "adm"), _as(site, "adm2")
    granted.request("GET", f"/items/{secret}")  # an event about the protected item
    hidden = (secret.encode(), secret_archive_no.encode())
    _, _, page = granted.request("GET", "/audit")
    assert all(h in page for h in hidden)
    _, _, page = plain.request("GET", "/audit")
    assert not any(h in page for h in hidden), "the page names a protected record"
    _, _, page = plain.request("GET", f"/audit?subject={quote(secret)}")
    assert b'id="audit-total">0<' in page
    status, _, body = plain.request("GET", "/audit/events.csv?reason=" + quote("抽查"))
    assert status == 200 and not any(h in body for h in hidden)
    status, _, body = granted.request("GET", "/audit/events.csv?reason=" + quote("抽查"))
    assert all(h in body for h in hidden)


def test_the_csv_is_a_custody_event_needs_a_reason_and_quotes_formulas(site) -> None:  # noqa: F811
    env = site["env"]
    hostile = '=HYPERLINK("http://evil.example","点我")'
    with env.sessions.begin() as s:
        custody.append(
            s, actor="station:ST01", action="seen_again", subject=hostile, details={"path": "+cmd|calc"}
        )
    admin = _as(site, "adm")
    status, _, _ = admin.request("GET", "/audit/events.csv")
    assert status == 400
    status, headers, body = admin.request(
        "GET", "/audit/events.csv?action=seen_again&reason=" + quote("核查重复")
    )
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = _csv(body)
    assert rows[0][0] == "序号" and len(rows) == 2
    (row,) = rows[1:]
    assert row[5] == "'" + hostile and row[3] == "重复采集（已有相同内容）" and row[4] == "seen_again"
    assert row[6] == "路径: +cmd|calc"  # inside a cell that starts with a label, not a formula
    with env.sessions() as s:
        exported = [e for e in custody.events(s) if e.action == "exported" and e.actor == "web:adm"]
    assert exported[-1].details == {
        "format": "csv",
        "page": "audit",
        "reason": "核查重复",
        "filters": {"action": "seen_again"},
        "rows": 1,
    }


def test_hostile_filters_are_refused_cleanly(site) -> None:  # noqa: F811
    admin = _as(site, "adm")
    for query in (
        "action=dropped_table",
        "from=yesterday",
        "to=2020-13-45",
        "before=-1",
        "before=99999999999999999999999",
        "subject=" + "x" * 201,
    ):
        status, _, body = admin.request("GET", "/audit?" + query)
        assert status == 400, query
    status, _, page = admin.request("GET", "/audit?subject=" + quote("%' OR 1=1 --"))
    assert status == 200 and b'id="audit-total">0<' in page


def test_an_altered_event_shows_after_a_full_walk(site) -> None:  # noqa: F811
    env = site["env"]
    admin = _as(site, "adm")
    _, _, page = admin.request("GET", "/audit")
    assert "完整".encode() in page
    with env.engine.begin() as conn:
        conn.execute(text("UPDATE custody_events SET actor = 'someone else' WHERE seq = 2"))
    status, _, _ = admin.request("POST", "/audit/verify", {"csrf": admin.csrf})
    assert status == 303
    _, _, page = admin.request("GET", "/audit")
    assert "发现问题".encode() in page and b"altered" in page


def test_the_case_file_pdf_needs_a_reason_and_withholds_protected_items(site) -> None:  # noqa: F811
    from pypdf import PdfReader

    key = site["case"].case_key
    with site["env"].sessions() as s:
        digests = {e.subject: e.details["sha256"] for e in custody.events(s) if e.action == "ingested"}
        numbers = {e.details["item_no"]: e.subject for e in custody.events(s) if e.action == "linked"}
    secret_sha = digests[numbers[site["secret_item"]]]
    plain_sha = digests[numbers[site["item"]]]
    aud, leg = _as(site, "aud"), _as(site, "leg")
    assert aud.request("GET", f"/cases/{key}/file.pdf")[0] == 400
    assert aud.request("GET", "/cases/NO-SUCH-CASE/file.pdf?reason=x")[0] == 404
    texts = {}
    for name, browser in (("aud", aud), ("leg", leg)):
        status, headers, body = browser.request("GET", f"/cases/{key}/file.pdf?reason=" + quote("移送"))
        assert status == 200 and headers["Content-Type"] == "application/pdf"
        texts[name] = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(body)).pages)
    assert (
        site["secret_item"] in texts["aud"] and secret_sha not in texts["aud"] and plain_sha in texts["aud"]
    )
    assert secret_sha in texts["leg"] and plain_sha in texts["leg"]
    with site["env"].sessions() as s:
        got = [e for e in custody.events(s, subject=key) if e.action == "downloaded"]
    assert [(e.actor, e.details["reason"], e.details["format"]) for e in got] == [
        ("web:aud", "移送", "pdf"),
        ("web:leg", "移送", "pdf"),
    ]


def test_events_removed_from_the_end_show_without_a_full_walk(site) -> None:  # noqa: F811
    env = site["env"]
    admin = _as(site, "adm")
    admin.request("GET", "/audit")  # the first visit walks the whole chain
    with env.sessions() as s:
        head, _ = custody.head(s)
        keep = head - 3
        kept_hash = next(e.hash for e in custody.events(s, after_seq=keep - 1, limit=1))
    with env.engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_events WHERE seq > :keep"), {"keep": keep})
        conn.execute(text("UPDATE custody_head SET seq = :keep, hash = :h"), {"keep": keep, "h": kept_hash})
    _, _, page = admin.request("GET", "/audit")
    assert "发现问题".encode() in page and b"truncated" in page
