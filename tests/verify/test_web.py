"""The web pages on a real HTTP server: the access matrix over every route and role, and no
blocking work (SQL, store reads, exports) on the event loop."""

import asyncio
import dataclasses
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from archive.derivatives import store_derivative
from archive.encryption import generate_kek
from archive.links import link_recordings
from catalog import custody
from catalog.users import add_user
from tests.verify.web_server import Browser, LiveServer
from verify.export import export_case
from verify.web import WebContext, create_app
from verify.web.access import PUBLIC, RULES

PASSWORD = "a long enough password"


class LoopWatch:
    """Blocking calls (SQL statements, store calls and reads, exports) made on a running event
    loop, i.e. on the server's loop thread instead of a worker thread."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def check(self, what: str) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a thread without a loop: a worker thread, or the test itself
        self.calls.append(what)


class WatchedStore:
    """The store, with every call and every chunk read checked by a ``LoopWatch``."""

    def __init__(self, store, watch: LoopWatch) -> None:
        self._store, self._watch = store, watch

    def __getattr__(self, name: str):
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self._watch.check(f"store.{name}")
            result = attr(*args, **kwargs)
            return self._chunks(result) if name == "read" else result

        return call

    def _chunks(self, chunks):
        for chunk in chunks:
            self._watch.check("store.read (a chunk)")
            yield chunk


def exporter(services, watch: LoopWatch):
    """What ``config`` hands the pages as ``export``: the real export, zipped."""
    key = Ed25519PrivateKey.generate()

    def export(case_key: str, folder: Path, *, reason: str, actor: str, include_protected: bool) -> Path:
        watch.check("export")
        return Path(
            export_case(
                services.acting_as(actor),
                case_key,
                folder,
                signing_key=key,
                reason=reason,
                zip_it=True,
                include_protected=include_protected,
            ).path
        )

    return export


@pytest.fixture
def site(env):
    now = datetime.now(UTC)
    with env.sessions.begin() as s:
        for name, role, protected in [
            ("aud", "auditor", False),
            ("leg", "legal", True),
            ("adm", "admin", True),
        ]:
            add_user(s, name, role, PASSWORD, protected=protected, now=now)
    case = env.case("开城管罚立〔2020〕42号")
    rec = env.recording(1)
    kek = generate_kek()
    secret = env.recording(2, protected=True, kek=kek)
    (pair_a, pair_b) = link_recordings(env.as_("r"), case.number, [rec.archive_no, secret.archive_no])
    proxy = env.tmp / "proxy.mp4"
    proxy.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 400)
    store_derivative(
        env.as_("station:ST01"),
        rec,
        kind="proxy",
        path=proxy,
        ext="mp4",
        content_type="video/mp4",
        method="remux",
    )
    watch = LoopWatch()
    event.listen(env.engine, "before_cursor_execute", lambda *_: watch.check("sql"))
    services = dataclasses.replace(env.as_("web", kek=kek), store=WatchedStore(env.store, watch))
    ctx = WebContext(
        services=services,
        zone=env.policy.zone,
        secret=b"k" * 32,
        language="zh",
        export=exporter(services, watch),
    )
    app = create_app(ctx)
    server = LiveServer(app)
    yield {
        "server": server,
        "case": case,
        "item": pair_a[1],
        "secret_item": pair_b[1],
        "env": env,
        "app": app,
        "ctx": ctx,
        "on_loop": watch.calls,
    }
    server.stop()


def sample_path(route: Route | Mount, site, token: str) -> str:
    if isinstance(route, Mount):
        return route.path + "/style.css"
    values = {
        "key": site["case"].case_key,
        "item_no": site["item"],
        "subject": site["item"],
        "token": token,
        "name": "aud",
        "kind": "poster",
        "page": "1",
        "event": "1",
    }
    path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], route.path)
    return path + "?reason=matrix" if route.name in ("item_download", "case_file_pdf", "audit_csv") else path


def media_url(browser: Browser, item: str) -> str:
    _, _, page = browser.request("GET", f"/items/{item}")
    return re.search(rb'src="(/media/[^"]+)"', page).group(1).decode()


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
    token = media_url(browser, site["item"]).removeprefix("/media/") if who else "forged.token"
    # Signing out and in change the browser's session: those two go last.
    last = {"logout": 1, "login_post": 2}
    routes = sorted(site["app"].routes, key=lambda r: last.get(r.name, 0))
    tried = set()
    for route in routes:
        methods = {"GET"} if isinstance(route, Mount) else route.methods - {"HEAD"}
        for method in sorted(methods):
            if route.name == "login_post":
                data = {"name": who or "aud", "password": PASSWORD, "next": "/"}
            elif method == "POST":
                data = {"csrf": browser.csrf, "reason": "matrix", "archive_nos": ""}
            else:
                data = None
            status, headers, body = browser.request(method, sample_path(route, site, token), data)
            tried.add(route.name)
            rule = RULES[route.name]
            label = f"{method} {route.path} as {who}: {status}"
            if rule == PUBLIC:
                assert status < 400, label
            elif who is None:
                assert status in (303, 401), label
                if status == 303:
                    assert headers["location"].startswith("/login"), label
            elif rank[role] < rank[rule]:
                assert status == 403 and b"role may not use" in body, label
            else:  # allowed in: answered, neither refused nor failed
                assert status < 500 and status not in (401, 403), label
    assert tried == {r.name for r in site["app"].routes}
    assert site["on_loop"] == [], "blocking work ran on the event loop"


def test_a_route_without_a_rule_answers_403_to_everybody(site) -> None:
    site["app"].router.routes.insert(
        0, Route("/unruled", lambda _request: PlainTextResponse("x"), name="unruled")
    )
    admin, anonymous = Browser(site["server"].base), Browser(site["server"].base)
    admin.login("adm", PASSWORD)
    assert admin.request("GET", "/unruled")[0] == 403
    assert anonymous.request("GET", "/unruled")[0] == 403
    assert anonymous.request("GET", "/static/style.css")[0] == 200


def test_pages_answer_while_an_export_runs(site) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow_export(case_key: str, folder: Path, *, reason: str, actor: str, include_protected: bool) -> Path:
        entered.set()
        release.wait(30)
        (folder / "x.zip").write_bytes(b"PK\x05\x06" + bytes(18))
        return folder / "x.zip"

    site["ctx"].export = slow_export
    exporting, reader = Browser(site["server"].base), Browser(site["server"].base)
    exporting.login("aud", PASSWORD)
    reader.login("aud", PASSWORD)
    answers: list[int] = []
    worker = threading.Thread(
        target=lambda: answers.append(
            exporting.request(
                "POST",
                f"/cases/{quote(site['case'].case_key)}/export",
                {"csrf": exporting.csrf, "reason": "court"},
            )[0]
        )
    )
    worker.start()
    try:
        assert entered.wait(20)
        for path in ["/?q=42", f"/cases/{quote(site['case'].case_key)}", f"/items/{site['item']}"]:
            began = time.monotonic()
            assert reader.request("GET", path)[0] == 200
            assert time.monotonic() - began < 5, f"{path} waited for the export"
    finally:
        release.set()
        worker.join(30)
    assert answers == [200]


def test_forms_without_the_csrf_token_are_refused(site) -> None:
    browser = Browser(site["server"].base)
    browser.login("leg", PASSWORD)
    status, _, _ = browser.request("POST", f"/holds/{site['item']}/set", {"reason": "no token"})
    assert status == 403
    for wrong in [{"csrf": "tökén"}, {"csrf": browser.csrf[:-1] + "é"}]:
        status, _, _ = browser.request("POST", f"/holds/{site['item']}/set", {"reason": "x", **wrong})
        assert status == 403
    status, _, _ = browser.request(
        "POST", f"/holds/{site['item']}/set", {"reason": "x"}, headers={"X-CSRF-Token": "é" * 32}
    )
    assert status == 403
    status, _, _ = browser.request(
        "POST", f"/holds/{site['item']}/set", {"reason": "with token", "csrf": browser.csrf, "back": "/"}
    )
    assert status == 303


def test_login_is_throttled_across_processes_and_failures_recorded(site) -> None:
    # A second server over the same catalog, as `evidence serve` runs one per worker process:
    # failures at either count against both, so more workers give a guesser no more tries.
    other = LiveServer(create_app(site["ctx"]))
    try:
        here, there = Browser(site["server"].base), Browser(other.base)
        statuses = [(here if n % 2 else there).login("aud", "wrong password!") for n in range(5)]
        assert statuses == [401] * 5
        assert here.login("aud", "wrong password!") == 429
        assert there.login("aud", PASSWORD) == 429  # even the right password, for now
        assert Browser(other.base).login("leg", "wrong password!") == 401  # per account name
    finally:
        other.stop()
    with site["env"].sessions() as s:
        assert sum(e.action == "login_failed" for e in custody.events(s)) == 6


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
    status, headers, _ = browser.request(
        "POST", "/login", {"name": "leg", "password": PASSWORD, "next": "//evil.example/x"}
    )
    assert status == 303 and headers["location"] == "/"
    browser.login("leg", PASSWORD)
    status, headers, _ = browser.request(
        "POST",
        f"/holds/{site['item']}/set",
        {"reason": "r", "csrf": browser.csrf, "back": "https://evil.example"},
    )
    assert status == 303 and headers["location"] == "/"


def test_a_legal_reviewer_holds_releases_and_unlinks_from_the_item_page(site) -> None:
    leg = Browser(site["server"].base)
    leg.login("leg", PASSWORD)
    _, _, page = leg.request("GET", f"/items/{site['item']}")
    assert b'action="/holds/' in page and b"/unlink" in page
    for action, reason in [("set", "复议"), ("release", "结案")]:
        status, headers, _ = leg.request(
            "POST",
            f"/holds/{site['item']}/{action}",
            {"reason": reason, "csrf": leg.csrf, "back": f"/items/{site['item']}"},
        )
        assert status == 303 and headers["location"] == f"/items/{site['item']}"
    status, _, _ = leg.request(
        "POST", f"/items/{site['item']}/unlink", {"reason": "误关联", "csrf": leg.csrf}
    )
    assert status == 303
    with site["env"].sessions() as s:
        actions = [e.action for e in custody.events(s, subject=site["item"])]
    assert {"held", "released", "unlinked"} <= set(actions)
