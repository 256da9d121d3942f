"""Attacks an outsider or a careless administrator could try on a real server (issue 14)."""

import base64
import hashlib
import hmac
import http.client
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from catalog.models import User
from catalog.users import add_user
from tests.verify.test_web import PASSWORD, site  # noqa: F401  # the live server fixture
from tests.verify.web_server import Browser


def test_an_admin_without_the_grant_cannot_make_an_account_with_it(site) -> None:  # noqa: F811
    env = site["env"]
    with env.sessions.begin() as s:
        add_user(s, "plainadm", "admin", PASSWORD, protected=False, now=datetime.now(UTC))
    plain, holder = Browser(site["server"].base), Browser(site["server"].base)
    assert plain.login("plainadm", PASSWORD) == 303
    assert holder.login("adm", PASSWORD) == 303
    form = {"name": "sneak", "role": "auditor", "password": PASSWORD, "protected": "on"}
    status, _, _ = plain.request("POST", "/admin/users", {**form, "csrf": plain.csrf})
    assert status in (400, 403)
    with env.sessions() as s:
        assert s.query(User).filter_by(name="sneak").one_or_none() is None
    status, _, _ = holder.request("POST", "/admin/users", {**form, "csrf": holder.csrf})
    assert status == 303
    with env.sessions() as s:
        assert s.query(User).filter_by(name="sneak").one().protected_access


def _raw_get(server, path: str, cookie: bytes) -> int:
    """A GET with a Cookie header of raw bytes (urllib would refuse to send them)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("GET", path)
        conn.putheader("Cookie", cookie)
        conn.endheaders()
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize(
    "cookie",
    [
        "evidence_session=abc.dé".encode(),
        "evidence_session=abc.dé".encode("latin-1"),
        "evidence_session=é".encode(),
        b"evidence_session=W10.x",  # a JSON list where an object belongs, and a wrong MAC
    ],
)
def test_a_cookie_with_odd_characters_is_no_session(site, cookie) -> None:  # noqa: F811
    status = _raw_get(site["server"], f"/cases/{quote(site['case'].case_key)}", cookie)
    assert status == 303  # to the login page, as without a cookie


def test_a_list_payload_with_a_good_mac_is_no_session(site) -> None:  # noqa: F811
    data = base64.urlsafe_b64encode(b"[1]").decode().rstrip("=")
    mac = base64.urlsafe_b64encode(hmac.new(b"k" * 32, data.encode(), hashlib.sha256).digest())
    cookie = f"evidence_session={data}.{mac.decode().rstrip('=')}".encode()
    assert _raw_get(site["server"], "/", cookie) == 303


def test_an_overlong_search_is_refused_cleanly(site) -> None:  # noqa: F811
    browser = Browser(site["server"].base)
    assert browser.login("aud", PASSWORD) == 303
    status, _, body = browser.request("GET", "/?q=" + "4" * 100_000)
    assert status == 400 and b"at most" in body
    assert browser.request("GET", "/?q=" + "4" * 200)[0] == 200


def test_csrf_tokens_are_compared_in_constant_time(site, monkeypatch) -> None:  # noqa: F811
    compared: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def watching(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", watching)
    browser = Browser(site["server"].base)
    assert browser.login("leg", PASSWORD) == 303
    compared.clear()
    # A wrong token: the right one with its last character changed (never to itself).
    wrong = browser.csrf[:-1] + ("A" if browser.csrf[-1] != "A" else "B")
    status, _, _ = browser.request("POST", f"/holds/{site['item']}/set", {"reason": "x", "csrf": wrong})
    assert status == 403
    assert wrong.encode() in {a for a, _ in compared}
