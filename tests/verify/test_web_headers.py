"""Security headers on every answer of the web pages (a real server), and on served files."""

import re

from archive.store import Capabilities
from tests.verify.test_web import PASSWORD, site  # noqa: F401  (the fixture)
from tests.verify.web_server import Browser
from verify.web.headers import policy


def _assert_headers(headers, *, cached: bool = False) -> None:
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
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
