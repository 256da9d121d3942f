"""Written records on a real server: opening one and downloading one are distinct custody
events; a download needs a reason; a protected record opens only with the grant."""

from __future__ import annotations

from archive.documents import NewDocument, store_document
from catalog import custody
from catalog.actions import Action
from tests.verify.test_web import PASSWORD, site  # noqa: F401  # the live server fixture
from tests.verify.web_server import Browser

PDF = b"%PDF-1.4 \xe7\x8e\xb0\xe5\x9c\xba\xe6\xa3\x80\xe6\x9f\xa5\xe7\xac\x94\xe5\xbd\x95"


def _document(site, name: str, content: bytes, *, protected: bool = False) -> str:  # noqa: F811
    path = site["env"].tmp / name
    path.write_bytes(content)
    link, _doc = store_document(
        site["ctx"].services.acting_as("clerk"),
        NewDocument(site["case"].case_key, path, "询问笔录", protected=protected),
        doc_types=["询问笔录"],
    )
    return link.item_no


def _actions(site, subject: str, actor: str) -> list[str]:  # noqa: F811
    with site["env"].sessions() as s:
        return [e.action for e in custody.events(s, subject=subject) if e.actor == actor]


def test_opening_and_downloading_a_record_are_distinct_events(site) -> None:  # noqa: F811
    item = _document(site, "笔录.pdf", PDF)
    aud = Browser(site["server"].base)
    aud.login("aud", PASSWORD)
    _, _, page = aud.request("GET", f"/items/{item}")
    # The page carries no direct content link: only the route that records the opening.
    assert b"/media/" not in page and f"/items/{item}/document".encode() in page
    assert _actions(site, item, "web:aud") == [Action.VIEWED]

    status, headers, _ = aud.request("GET", f"/items/{item}/document")
    assert status == 303 and headers["Location"].startswith("/media/")
    status, headers, body = aud.request("GET", headers["Location"])
    if status == 302:  # S3: a presigned link pinned to the version
        assert "X-Amz-Expires" in headers["Location"]
    else:
        assert status == 200 and body == PDF and headers["Content-Disposition"] == "inline"
    assert _actions(site, item, "web:aud") == [Action.VIEWED, Action.DOCUMENT_VIEWED]

    assert aud.request("GET", f"/items/{item}/download")[0] == 400
    assert aud.request("GET", f"/items/{item}/download?reason=+")[0] == 400
    status, headers, body = aud.request("GET", f"/items/{item}/download?reason=%E5%A4%8D%E6%A0%B8")
    assert status == 200 and body == PDF and headers["Content-Disposition"].startswith("attachment;")
    assert _actions(site, item, "web:aud") == [Action.VIEWED, Action.DOCUMENT_VIEWED, Action.DOWNLOADED]
    with site["env"].sessions() as s:
        downloaded = [e for e in custody.events(s, subject=item) if e.action == Action.DOWNLOADED]
    assert downloaded[0].details["reason"] == "复核"


def test_a_record_that_could_run_script_is_never_opened_only_downloaded(site) -> None:  # noqa: F811
    item = _document(site, "note.html", b"<script>fetch('/admin/users')</script>")
    aud = Browser(site["server"].base)
    aud.login("aud", PASSWORD)
    _, _, page = aud.request("GET", f"/items/{item}")
    assert b'id="download-only"' in page and b"/document" not in page
    status, _, body = aud.request("GET", f"/items/{item}/document")
    assert status == 415 and b"<script>" not in body
    assert Action.DOCUMENT_VIEWED not in _actions(site, item, "web:aud")


def test_a_protected_record_opens_only_with_the_grant(site) -> None:  # noqa: F811
    item = _document(site, "秘密笔录.pdf", PDF, protected=True)
    aud, leg = Browser(site["server"].base), Browser(site["server"].base)
    aud.login("aud", PASSWORD)
    leg.login("leg", PASSWORD)
    for path in (f"/items/{item}/document", f"/items/{item}/download?reason=x"):
        status, _, body = aud.request("GET", path)
        assert status == 403 and PDF not in body
    assert _actions(site, item, "web:aud") == []
    status, headers, _ = leg.request("GET", f"/items/{item}/document")
    assert status == 303
    status, _, body = leg.request("GET", headers["Location"])
    assert status == 200 and body == PDF  # protected content is always streamed, decrypted
    # The link is personal: another account cannot use it.
    assert aud.request("GET", headers["Location"])[0] == 403
    assert _actions(site, item, "web:leg") == [Action.DOCUMENT_VIEWED]


def test_a_recording_is_not_opened_as_a_record(site) -> None:  # noqa: F811
    aud = Browser(site["server"].base)
    aud.login("aud", PASSWORD)
    assert aud.request("GET", f"/items/{site['item']}/document")[0] == 404
    assert _actions(site, site["item"], "web:aud") == []
