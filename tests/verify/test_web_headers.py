"""Security headers on every answer of the web pages (a real server), and on served files."""

import re

from archive.documents import NewDocument, store_document
from archive.store import Capabilities
from tests.verify.test_web import PASSWORD, site  # noqa: F401  (the fixture)
from tests.verify.web_server import Browser
from verify.web.headers import policy


def _assert_headers(headers, *, cached: bool = False) -> None:
    csp = headers["Content-Security-Policy"]
    # The pages' policy, or a served file's stricter one (sandboxed, loading nothing).
    assert "frame-ancestors 'none'" in csp, csp
    assert "default-src 'self'" in csp or csp.startswith("sandbox; default-src 'none'"), csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    if not cached:
        assert headers["Cache-Control"] == "no-store"


def test_every_answer_carries_the_security_headers(site) -> None:  # noqa: F811
    anonymous, aud = Browser(site["server"].base), Browser(site["server"].base)
    for path in ["/login", "/", f"/items/{site['item']}", "/no/such/page"]:
        status, headers, _ = anonymous.request("GET", path)
        assert status in (200, 303, 404), path
        _assert_headers(headers)
    aud.login("aud", PASSWORD)
    for path in ["/", f"/cases/{site['case'].case_key}", f"/items/{site['item']}", "/admin/users"]:
        status, headers, _ = aud.request("GET", path)
        assert status in (200, 403), path
        _assert_headers(headers)
    _, _, page = aud.request("GET", f"/items/{site['item']}")
    url = re.search(rb'src="(/media/[^"]+)"', page).group(1).decode()
    status, headers, _ = aud.request("GET", url, headers={"Range": "bytes=0-9"})
    assert status in (206, 302)
    _assert_headers(headers)
    status, headers, _ = aud.request("GET", "/static/style.css")
    assert status == 200
    _assert_headers(headers, cached=True)


class _Store:
    def __init__(self, presigned: bool) -> None:
        self.capabilities = Capabilities(presigned_urls=presigned)
        self.origin = "https://s3.example:9000"


def test_media_from_the_store_only_where_presigned_urls_are_used() -> None:
    assert "s3.example" not in policy(_Store(False))  # type: ignore[arg-type]
    csp = policy(_Store(True))  # type: ignore[arg-type]
    assert "media-src 'self' https://s3.example:9000" in csp
    assert "img-src 'self' https://s3.example:9000" in csp
    assert "default-src 'self';" in csp and "frame-ancestors 'none'" in csp


def _document(site, name: str, content: bytes) -> str:  # noqa: F811
    env = site["env"]
    path = env.tmp / name
    path.write_bytes(content)
    link, _doc = store_document(
        env.as_("clerk"), NewDocument(site["case"].case_key, path, "询问笔录"), doc_types=["询问笔录"]
    )
    return link.item_no


def test_documents_that_could_run_script_are_served_as_attachments(site) -> None:  # noqa: F811
    script = b"<html><script>fetch('/admin/users')</script></html>"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    html_item = _document(site, "note.html", script)
    svg_item = _document(site, "sketch.svg", svg)
    pdf_item = _document(site, "record.pdf", b"%PDF-1.4 a record")
    aud = Browser(site["server"].base)
    aud.login("aud", PASSWORD)
    for item, content in [(html_item, script), (svg_item, svg)]:
        # Never opened in the browser: only downloaded, with a reason, as an attachment.
        assert aud.request("GET", f"/items/{item}/document")[0] == 415
        status, headers, body = aud.request("GET", f"/items/{item}/download?reason=review")
        assert status == 200 and body == content
        assert headers["Content-Disposition"].startswith("attachment;")
        assert headers["Content-Security-Policy"].startswith("sandbox;")
        assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, _ = aud.request("GET", f"/items/{pdf_item}/document")
    assert status == 303
    status, headers, _ = aud.request("GET", headers["Location"])
    if status != 302:  # S3 redirects a PDF to a presigned URL
        assert status == 200 and headers["Content-Type"] == "application/pdf"
        assert headers["Content-Disposition"] == "inline"
        assert headers["Content-Security-Policy"].startswith("sandbox;")
