"""The web pages: the access matrix over every route and role, on a real HTTP server."""

import re
from datetime import datetime, timezone
from urllib.parse import quote

import pytest
from starlette.routing import Mount, Route

from archive.derivatives import store_derivative
from archive.encryption import generate_kek
from archive.links import link_recordings
from catalog import custody
from catalog.users import add_user
from tests.conftest import FORMATS
from tests.verify.web_server import Browser, LiveServer
from verify.web import WebContext, create_app
from verify.web.access import PUBLIC, RULES

PASSWORD = "a long enough password"


@pytest.fixture
def site(env):
    now = datetime.now(timezone.utc)
    with env.sessions.begin() as s:
        for name, role, protected in [("aud", "auditor", False), ("leg", "legal", True),
                                      ("adm", "admin", True)]:
            add_user(s, name, role, PASSWORD, protected=protected, now=now)
    case = env.case("开城管罚立〔2020〕42号")
    rec = env.recording(1)
    kek = generate_kek()
    secret = env.recording(2, protected=True, kek=kek)
    (pair_a, pair_b) = link_recordings(env.as_("r"), case.number, [rec.archive_no, secret.archive_no])
    proxy = env.tmp / "proxy.mp4"
    proxy.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 400)
    store_derivative(env.as_("station:ST01"), rec, kind="proxy", path=proxy, ext="mp4",
                     content_type="video/mp4", method="remux")
    ctx = WebContext(services=env.as_("web", kek=kek), zone=env.policy.zone, secret=b"k" * 32,
                     language="zh")
    app = create_app(ctx)
    server = LiveServer(app)
    yield {"server": server, "case": case, "item": pair_a[1], "secret_item": pair_b[1], "env": env,
           "app": app}
    server.stop()


def sample_path(route: Route, site) -> str:
    values = {"key": site["case"].case_key, "item_no": site["item"], "subject": site["item"],
              "token": "forged.token"}
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], route.path)


def test_every_route_has_a_rule(site) -> None:
    names = {r.name for r in site["app"].routes}
    assert names <= set(RULES), f"routes without an access rule: {names - set(RULES)}"


@pytest.mark.parametrize("who", [None, "aud", "leg", "adm"])
def test_access_matrix(site, who) -> None:
    role = {None: None, "aud": "auditor", "leg": "legal", "adm": "admin"}[who]
    rank = {"auditor": 0, "legal": 1, "admin": 2}
    browser = Browser(site["server"].base)
    if who:
        assert browser.login(who, PASSWORD) == 303
    for route in site["app"].routes:
        if isinstance(route, Mount) or route.name in ("login", "login_post", "logout"):
            continue
        for method in sorted(route.methods - {"HEAD"}):
            data = {"csrf": browser.csrf, "reason": "matrix", "archive_nos": ""} if method == "POST" else None
            status, headers, body = browser.request(method, sample_path(route, site), data)
            rule = RULES[route.name]
            label = f"{method} {route.path} as {who}"
            if rule == PUBLIC:
                assert status < 400, label
            elif who is None:
                assert status in (303, 401), label
                if status == 303:
                    assert headers["location"].startswith("/login"), label
            elif rank[role] < rank[rule]:
                assert status == 403 and b"role may not use" in body, label
            else:  # allowed in: any answer but a refusal of the role (a forged link is still 403)
                assert status != 401 and b"role may not use" not in body, f"{label}: {status}"


def test_forms_without_the_csrf_token_are_refused(site) -> None:
    browser = Browser(site["server"].base)
    browser.login("leg", PASSWORD)
    status, _, _ = browser.request("POST", f"/holds/{site['item']}/set", {"reason": "no token"})
    assert status == 403
    status, _, _ = browser.request("POST", f"/holds/{site['item']}/set",
                                   {"reason": "with token", "csrf": browser.csrf, "back": "/"})
    assert status == 303


def test_login_is_throttled_and_failures_recorded(site) -> None:
    browser = Browser(site["server"].base)
    statuses = [browser.login("aud", "wrong password!") for _ in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    with site["env"].sessions() as s:
        assert sum(e.action == "login_failed" for e in custody.events(s)) == 5


def test_protected_items_show_only_their_numbers_without_the_grant(site) -> None:
    aud, leg = Browser(site["server"].base), Browser(site["server"].base)
    aud.login("aud", PASSWORD)
    leg.login("leg", PASSWORD)
    _, _, page = aud.request("GET", f"/items/{site['secret_item']}")
    assert "受保护记录".encode() in page and b"<video" not in page
    _, _, page = leg.request("GET", f"/items/{site['secret_item']}")
    assert b"<video" in page or "暂无可播放版本".encode() in page
    status, _, _ = aud.request("GET", f"/items/{site['secret_item']}/download?reason=x")
    assert status == 403


def test_views_downloads_and_refusals_are_custody_events(site) -> None:
    aud = Browser(site["server"].base)
    aud.login("aud", PASSWORD)
    aud.request("GET", f"/items/{site['item']}")
    status, headers, body = aud.request("GET", f"/items/{site['item']}/download?reason=" + quote("法院调取"))
    assert status == 200 and headers["Content-Disposition"].startswith("attachment")
    status, _, _ = aud.request("GET", f"/items/{site['item']}/download")
    assert status == 400  # a download needs a reason
    status, _, _ = aud.request("POST", f"/holds/{site['item']}/set", {"reason": "x", "csrf": aud.csrf})
    assert status == 403
    anonymous = Browser(site["server"].base)
    for _ in range(3):
        assert anonymous.request("GET", "/media/forged.token")[0] == 401
    site["app"].state.flush_refusals(everything=True)
    with site["env"].sessions() as s:
        events = list(custody.events(s))
    actions = [(e.action, e.actor) for e in events]
    assert ("viewed", "web:aud") in actions and ("downloaded", "web:aud") in actions
    download = next(e for e in events if e.action == "downloaded")
    assert download.details["reason"] == "法院调取"
    refused = {e.details["route"]: e for e in events if e.action == "refused"}
    assert refused["hold_set"].actor == "web:aud" and refused["hold_set"].details["role"] == "auditor"
    assert "reason" in refused["item_download"].details["why"]
    (counted,) = [e for e in events if e.action == "refused_anonymous"]
    assert counted.details["count"] == 3 and counted.actor == "web:anonymous"


def test_media_links_are_pinned_signed_and_personal(site) -> None:
    aud, other = Browser(site["server"].base), Browser(site["server"].base)
    aud.login("aud", PASSWORD)
    other.login("adm", PASSWORD)
    _, _, page = aud.request("GET", f"/items/{site['item']}")
    url = re.search(rb'src="(/media/[^"]+)"', page).group(1).decode()
    status, headers, body = aud.request("GET", url, headers={"Range": "bytes=0-99"})
    if status == 302:  # S3: a presigned URL pinned to the version
        assert "versionId=" in headers["location"] and "X-Amz-Expires=300" in headers["location"]
    else:
        assert status == 206 and len(body) == 100 and headers["Content-Range"].startswith("bytes 0-99/")
    assert other.request("GET", url)[0] == 403  # another account's link
    assert aud.request("GET", url[:-3] + "xyz")[0] == 403  # altered


def test_redirects_never_leave_the_site(site) -> None:
    browser = Browser(site["server"].base)
    status, headers, _ = browser.request("POST", "/login", {"name": "leg", "password": PASSWORD,
                                                            "next": "//evil.example/x"})
    assert status == 303 and headers["location"] == "/"
    browser.login("leg", PASSWORD)
    status, headers, _ = browser.request("POST", f"/holds/{site['item']}/set",
                                         {"reason": "r", "csrf": browser.csrf, "back": "https://evil.example"})
    assert status == 303 and headers["location"] == "/"


def test_a_legal_reviewer_holds_releases_and_unlinks_from_the_item_page(site) -> None:
    leg = Browser(site["server"].base)
    leg.login("leg", PASSWORD)
    _, _, page = leg.request("GET", f"/items/{site['item']}")
    assert b'action="/holds/' in page and b"/unlink" in page
    for action, reason in [("set", "复议"), ("release", "结案")]:
        status, headers, _ = leg.request("POST", f"/holds/{site['item']}/{action}",
                                         {"reason": reason, "csrf": leg.csrf, "back": f"/items/{site['item']}"})
        assert status == 303 and headers["location"] == f"/items/{site['item']}"
    status, _, _ = leg.request("POST", f"/items/{site['item']}/unlink", {"reason": "误关联", "csrf": leg.csrf})
    assert status == 303
    with site["env"].sessions() as s:
        actions = [e.action for e in custody.events(s, subject=site["item"])]
    assert {"held", "released", "unlinked"} <= set(actions)
