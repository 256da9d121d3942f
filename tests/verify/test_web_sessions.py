"""Sessions of the web pages end on the server: logout, an administrator, idle time, age."""

import hashlib
import re
from datetime import timedelta

from sqlalchemy import update

from archive.documents import NewDocument, store_document
from catalog import users
from catalog.models import User, WebSession
from catalog.users import check_password, hash_password
from tests.verify.test_web import PASSWORD, site  # noqa: F401  (the fixture)
from tests.verify.web_server import Browser


def _stolen(browser: Browser, base: str) -> Browser:
    """Another client holding a copy of the browser's cookie (and CSRF token)."""
    thief = Browser(base)
    for cookie in browser.jar:
        thief.jar.set_cookie(cookie)
    thief.csrf = browser.csrf
    return thief


def test_logout_ends_the_session_on_the_server(site) -> None:  # noqa: F811
    base = site["server"].base
    leg = Browser(base)
    leg.login("leg", PASSWORD)
    kept = _stolen(leg, base)
    case_page = f"/cases/{site['case'].case_key}"
    assert kept.request("GET", case_page)[0] == 200
    assert leg.request("POST", "/logout", {"csrf": leg.csrf})[0] == 303
    # The old cookie opens nothing and sets no hold.
    status, headers, _ = kept.request("GET", case_page)
    assert status == 303 and headers["location"].startswith("/login")
    hold = kept.request("POST", f"/holds/{site['item']}/set", {"csrf": kept.csrf, "reason": "x"})
    assert hold[0] == 401
    # Another session of the same account goes on.
    other = Browser(base)
    other.login("leg", PASSWORD)
    assert other.request("GET", case_page)[0] == 200


def test_an_administrator_ends_an_accounts_sessions(site) -> None:  # noqa: F811
    base = site["server"].base
    aud_a, aud_b, adm, leg = (Browser(base) for _ in range(4))
    for browser, name in [(aud_a, "aud"), (aud_b, "aud"), (adm, "adm"), (leg, "leg")]:
        assert browser.login(name, PASSWORD) == 303
    assert leg.request("POST", "/admin/users/aud/logout", {"csrf": leg.csrf})[0] == 403
    assert adm.request("POST", "/admin/users/aud/logout", {"csrf": adm.csrf})[0] == 303
    for browser in (aud_a, aud_b):
        assert browser.request("GET", "/")[0] == 303
    assert adm.request("GET", "/")[0] == 200 and leg.request("GET", "/")[0] == 200
    assert aud_a.login("aud", PASSWORD) == 303  # signing in again works
    assert aud_a.request("GET", "/")[0] == 200


def _age(site, **change) -> None:  # noqa: F811
    with site["env"].sessions.begin() as s:
        s.execute(update(WebSession).values(**change))


def test_sessions_expire_after_idle_time_and_a_lifetime(site) -> None:  # noqa: F811
    base = site["server"].base
    aud = Browser(base)
    aud.login("aud", PASSWORD)
    now = site["env"].now()
    _age(site, last_seen_at=now - timedelta(minutes=29))
    assert aud.request("GET", "/")[0] == 200  # activity within the idle time keeps it open
    _age(site, last_seen_at=now - timedelta(minutes=31))
    assert aud.request("GET", "/")[0] == 303
    aud.login("aud", PASSWORD)
    _age(site, created_at=now - timedelta(hours=12, minutes=1))
    assert aud.request("GET", "/")[0] == 303  # active, but older than the lifetime


def test_plays_and_media_fetches_count_as_activity(site) -> None:  # noqa: F811
    base = site["server"].base
    aud = Browser(base)
    aud.login("aud", PASSWORD)
    now = site["env"].now()
    _, _, page = aud.request("GET", f"/items/{site['item']}")
    url = re.search(rb'src="(/media/[^"]+)"', page).group(1).decode()
    for fetch in (
        lambda: aud.request("GET", url, headers={"Range": "bytes=0-9"})[0],
        lambda: aud.request(
            "POST",
            f"/items/{site['item']}/play",
            json_body={"start": 0, "watched": 5},
            headers={"X-CSRF-Token": aud.csrf},
        )[0],
    ):
        _age(site, last_seen_at=now - timedelta(minutes=25))
        assert fetch() in (200, 206, 302)
        with site["env"].sessions() as s:
            (row,) = s.query(WebSession).filter(WebSession.ended_at.is_(None)).all()
            assert now - row.last_seen_at < timedelta(minutes=1)


def test_a_media_link_stops_working_when_the_grant_is_revoked(site) -> None:  # noqa: F811
    env = site["env"]
    path = env.tmp / "secret.pdf"
    path.write_bytes(b"%PDF-1.4 protected")
    link, _doc = store_document(
        site["ctx"].services.acting_as("clerk"),
        NewDocument(site["case"].case_key, path, "询问笔录", protected=True),
        doc_types=["询问笔录"],
    )
    leg = Browser(site["server"].base)
    leg.login("leg", PASSWORD)
    status, headers, _ = leg.request("GET", f"/items/{link.item_no}/document")
    assert status == 303
    url = headers["Location"]
    assert leg.request("GET", url)[0] == 200
    with env.sessions.begin() as s:
        s.execute(update(User).where(User.name == "leg").values(protected_access=False))
    status, _, body = leg.request("GET", url)
    assert status == 403 and b"%PDF" not in body
    with env.sessions.begin() as s:
        s.execute(update(User).where(User.name == "leg").values(disabled=True))
    assert leg.request("GET", url)[0] == 401


def test_passwords_cost_2_17_are_always_hashed_and_upgraded_at_login(site, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setattr(users, "COST_LOG2", 17)
    assert hash_password("x" * 12).startswith("scrypt$17$8$1$")
    env = site["env"]
    with env.sessions() as s:
        old = s.query(User).filter(User.name == "aud").one().password_hash
    assert old.startswith("scrypt$12$")  # made at the tests' cheaper cost
    calls: list[int] = []
    real = hashlib.scrypt

    def counted(*args, **kwargs):
        calls.append(kwargs["n"])
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counted)
    with env.sessions.begin() as s:
        s.query(User).filter(User.name == "leg").update({"disabled": True})
    browser = Browser(site["server"].base)
    for name in ("leg", "nobody-here"):  # disabled, missing: a full-cost hash all the same
        calls.clear()
        assert browser.login(name, PASSWORD) == 401
        assert 2**17 in calls, name
    calls.clear()
    assert browser.login("aud", PASSWORD) == 303
    assert 2**17 in calls
    with env.sessions() as s:
        new = s.query(User).filter(User.name == "aud").one().password_hash
    assert new.startswith("scrypt$17$") and check_password(PASSWORD, new)
    assert browser.request("GET", "/")[0] == 200  # the upgrade does not end the session
